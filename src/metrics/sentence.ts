/**
 * Cheap, synchronous scores of one caption, for the web app. Depends only on plain TypeScript modules
 * (no Node APIs), so it can be bundled for the browser.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { ptbTokenize } from '../text/ptb.js';
import { bleu } from './bleu.js';
import { ciderD } from './cider.js';
import { pythonSplit } from './numeric.js';

export interface SentenceScores {
  'BLEU-1': number;
  'BLEU-2': number;
  'BLEU-3': number;
  'BLEU-4': number;
  'CIDEr-D': number;
}

/**
 * BLEU-1..4 and CIDEr-D of one candidate against its references. Indicative only: BLEU is the
 * toolkit's formula on a one-sentence corpus, and CIDEr-D takes its document frequencies from these
 * references alone, each reference counting as one document, so n-grams shared by all references
 * weigh nothing and a single reference gives 0. The corpus scores of scoreCaptions are the numbers
 * to compare with published results.
 */
export function sentenceScores(references: readonly string[], candidate: string): SentenceScores {
  if (references.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'sentenceScores needs at least one reference');
  const refs = references.map((r) => pythonSplit(ptbTokenize(r).join(' ')));
  const cand = pythonSplit(ptbTokenize(candidate).join(' '));
  const b = bleu([refs], [cand], 4).scores;
  const c = ciderD([refs], [cand], { docFreqRefs: refs.map((r) => [r]) }).score;
  return { 'BLEU-1': b[0], 'BLEU-2': b[1], 'BLEU-3': b[2], 'BLEU-4': b[3], 'CIDEr-D': c };
}
