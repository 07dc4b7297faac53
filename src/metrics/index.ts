/**
 * Caption metrics identical to the COCO caption evaluation toolkit (pycocoevalcap): BLEU-1..4,
 * METEOR, ROUGE-L and CIDEr (the toolkit's CIDEr-D), and on request SPICE (the toolkit's jar, ./spice.ts),
 * computed on captions tokenised the way the toolkit tokenises them (src/text/ptb.ts).
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { ptbTokenizeLines } from '../text/ptb.js';
import { bleu } from './bleu.js';
import { ciderD } from './cider.js';
import { meteor, type MeteorMode } from './meteor.js';
import type { MeteorJar } from './meteor-jar.js';
import { pythonSplit } from './numeric.js';
import { rougeL } from './rouge.js';
import { checkSpiceInstall, defaultSpiceDir, spice, type SpiceOptions, type SpiceResult } from './spice.js';

export { bleu, type BleuResult } from './bleu.js';
export { ciderD, type CiderOptions } from './cider.js';
export { rougeL, rougeLSentence } from './rouge.js';
export { meteor, METEOR_MODES, type MeteorMode, type MeteorResult } from './meteor.js';
export { meteorNative } from './meteor-native.js';
export { MeteorJar, findMeteorJar, meteorJarIfUsable } from './meteor-jar.js';
export { ptbTokenize, ptbTokenizeLines } from '../text/ptb.js';
export { sentenceScores, type SentenceScores } from './sentence.js';
export {
  spice,
  checkSpiceInstall,
  defaultSpiceDir,
  SPICE_FETCH_COMMAND,
  SPICE_HEAP_ENV,
  type SpiceOptions,
  type SpiceResult,
  type SpiceCategoryScore,
} from './spice.js';

export type MetricName = 'BLEU-1' | 'BLEU-2' | 'BLEU-3' | 'BLEU-4' | 'METEOR' | 'ROUGE-L' | 'CIDEr';
export const METRIC_NAMES: readonly MetricName[] = ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'METEOR', 'ROUGE-L', 'CIDEr'];

export interface ScoreOptions {
  /** How to compute METEOR (default auto). With 'off' METEOR is NaN. */
  meteor?: MeteorMode;
  /** A running jar to reuse (it takes seconds to start); used unless meteor is 'native' or 'off'. */
  meteorJar?: MeteorJar;
  /** Also SPICE, with the toolkit's jar (slow: Java and CoreNLP parsing); off by default. */
  spice?: boolean | SpiceOptions;
}

export interface CaptionEvaluation {
  scores: Record<MetricName, number>;
  /** Image ids in evaluation order, and each metric's per-image scores in that order. */
  imageIds: string[];
  perImage: Record<MetricName, number[]>;
  meteorMethod: 'jar' | 'native' | 'off';
  /** SPICE when asked for: the corpus score, and per image (`perImage`, `categories`) in `imageIds` order. */
  spice?: SpiceResult;
  /** The tokenised captions the metrics saw (joined by spaces, as the toolkit passes them). */
  tokenized: { refs: string[][]; candidates: string[] };
}

/**
 * Evaluates like `COCOEvalCap` with `params['image_id']` set to the result images: the images are
 * those in `candidates`, taken in the order of `refs` (the annotation file's order), each with all
 * of its reference captions. Every candidate needs at least one reference.
 */
export async function evaluateCaptions(
  refs: ReadonlyMap<string, readonly string[]>,
  candidates: ReadonlyMap<string, string>,
  options: ScoreOptions = {},
): Promise<CaptionEvaluation> {
  for (const id of candidates.keys()) {
    if (!(refs.get(id)?.length ?? 0)) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `no reference captions for image ${id}`, { subject: id });
    }
  }
  if (candidates.size === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'no candidate captions to score');
  const spiceOptions = options.spice === true ? {} : options.spice || undefined;
  if (spiceOptions) checkSpiceInstall(spiceOptions.dir ?? defaultSpiceDir()); // before the other metrics, not after them
  const imageIds = [...refs.keys()].filter((id) => candidates.has(id));

  // Tokenised in two batches, references then candidates, as the toolkit does.
  const refCounts = imageIds.map((id) => refs.get(id)!.length);
  const refLines = ptbTokenizeLines(imageIds.flatMap((id) => refs.get(id)!)).map((t) => t.join(' '));
  const refStrings: string[][] = [];
  let at = 0;
  for (const n of refCounts) {
    refStrings.push(refLines.slice(at, at + n));
    at += n;
  }
  const candStrings = ptbTokenizeLines(imageIds.map((id) => candidates.get(id)!)).map((t) => t.join(' '));

  // Each scorer splits the caption strings its own way, as in the toolkit.
  const refWords = refStrings.map((rs) => rs.map(pythonSplit));
  const candWords = candStrings.map(pythonSplit);
  const b = bleu(refWords, candWords, 4);
  const r = rougeL(
    refStrings.map((rs) => rs.map((s) => s.split(' '))),
    candStrings.map((s) => s.split(' ')),
  );
  const c = ciderD(refWords, candWords);
  const mode = options.meteor ?? 'auto';
  const m =
    options.meteorJar && (mode === 'auto' || mode === 'jar')
      ? { ...(await options.meteorJar.score(refStrings, candStrings)), method: 'jar' as const }
      : await meteor(refStrings, candStrings, mode);
  const s = spiceOptions ? await spiceInToolkitOrder(imageIds, refStrings, candStrings, spiceOptions) : undefined;

  const nan = imageIds.map(() => NaN);
  return {
    scores: {
      'BLEU-1': b.scores[0],
      'BLEU-2': b.scores[1],
      'BLEU-3': b.scores[2],
      'BLEU-4': b.scores[3],
      METEOR: m ? m.score : NaN,
      'ROUGE-L': r.score,
      CIDEr: c.score,
    },
    imageIds,
    perImage: {
      'BLEU-1': b.perImage[0],
      'BLEU-2': b.perImage[1],
      'BLEU-3': b.perImage[2],
      'BLEU-4': b.perImage[3],
      METEOR: m ? m.perImage : nan,
      'ROUGE-L': r.perImage,
      CIDEr: c.perImage,
    },
    meteorMethod: m ? m.method : 'off',
    ...(s ? { spice: s } : {}),
    tokenized: { refs: refStrings, candidates: candStrings },
  };
}

/** Corpus scores of raw captions keyed by image id (see evaluateCaptions for which images count). */
export async function scoreCaptions(
  refs: ReadonlyMap<string, readonly string[]>,
  candidates: ReadonlyMap<string, string>,
  options: ScoreOptions = {},
): Promise<Record<MetricName, number>> {
  return (await evaluateCaptions(refs, candidates, options)).scores;
}

/**
 * SPICE as spice.py runs it: the images in `sorted(gts.keys())` order (which only changes the rounding of the mean),
 * the results given back in `imageIds` order. (COCOEvalCap then pairs that sorted list with the unsorted image ids for
 * its per-image table; the per-image scores here are each image's own.)
 */
async function spiceInToolkitOrder(imageIds: string[], refs: string[][], cands: string[], options: SpiceOptions): Promise<SpiceResult> {
  const order = pythonSortedOrder(imageIds);
  const r = await spice(order.map((i) => refs[i]), order.map((i) => cands[i]), options);
  const perImage: number[] = new Array(imageIds.length);
  const categories: SpiceResult['categories'] = new Array(imageIds.length);
  order.forEach((i, k) => {
    perImage[i] = r.perImage[k];
    categories[i] = r.categories[k];
  });
  return { score: r.score, perImage, categories };
}

/**
 * Indices of `keys` in Python's sorted() order of the image ids they stand for: keys are JSON-encoded COCO ids
 * (numbers sort by value, strings by code point); a key that is not JSON is the id itself. Python cannot sort numbers
 * with strings: numbers come first here.
 */
function pythonSortedOrder(keys: readonly string[]): number[] {
  const ids = keys.map((k): number | string => {
    try {
      const v: unknown = JSON.parse(k);
      if (typeof v === 'number' || typeof v === 'string') return v;
    } catch {
      // not JSON: the key is the id
    }
    return k;
  });
  const cmp = (a: number | string, b: number | string): number => {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    if (typeof a === 'number') return -1;
    if (typeof b === 'number') return 1;
    const ca = Array.from(a, (c) => c.codePointAt(0)!);
    const cb = Array.from(b, (c) => c.codePointAt(0)!);
    for (let i = 0; i < Math.min(ca.length, cb.length); i++) if (ca[i] !== cb[i]) return ca[i] - cb[i];
    return ca.length - cb.length;
  };
  return ids.map((_, i) => i).sort((i, j) => cmp(ids[i], ids[j]) || i - j);
}
