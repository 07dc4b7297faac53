/**
 * PTB tokenisation exactly as the COCO caption toolkit (pycocoevalcap) applies it before scoring.
 *
 * The toolkit writes every caption on its own line, runs Stanford CoreNLP 3.4.1's PTBTokenizer with
 * `-preserveLines -lowerCase`, and drops the tokens in its PUNCTUATIONS list. Here the Java tokenizer
 * is emulated in TypeScript (src/text/tokenizer/ptb-lexer.ts), so no Java is needed.
 *
 * Note what the toolkit keeps: brackets become `-lrb-`, `-rrb-`, `-lsb-`, ... (its punctuation list
 * has only the upper-case forms, and the tokens are lower-cased first), contractions are split
 * (`isn't` -> `is n't`, `dog's` -> `dog 's`), hyphenated words stay whole.
 */
import { lexPtb } from './tokenizer/ptb-lexer.js';

/** pycocoevalcap's PUNCTUATIONS, compared against the lower-cased tokens. */
export const PTB_PUNCTUATION: ReadonlySet<string> = new Set([
  "''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-', '--', '...', ';',
]);

// Characters the Java tokenizer treats as line breaks. The toolkit only replaces '\n' inside a caption,
// so with any of these its output lines shift against its captions; here they count as spaces instead.
const OTHER_LINE_BREAKS = /\r\n?|[\u2028\u2029\u000B\u000C]/g;

function toLine(caption: string): string {
  return caption.replace(/\n/g, ' ').replace(OTHER_LINE_BREAKS, ' ');
}

/**
 * The tokens the Java tokenizer prints for each line (lower-cased, punctuation still in).
 * All lines are scanned as one text, as the toolkit does: a few rules look past the end of a line.
 */
export function ptbLexLines(captions: readonly string[]): string[][] {
  const lines: string[][] = [[]];
  for (const tok of lexPtb(captions.map(toLine).join('\n'))) {
    if (tok === null) lines.push([]);
    else lines[lines.length - 1].push(tok.toLowerCase());
  }
  while (lines.length < captions.length) lines.push([]);
  return lines.slice(0, captions.length);
}

/** Tokenises a batch of captions exactly as the toolkit's PTBTokenizer.tokenize does with one call. */
export function ptbTokenizeLines(captions: readonly string[]): string[][] {
  return ptbLexLines(captions).map((toks) => toks.filter((w) => !PTB_PUNCTUATION.has(w)));
}

/**
 * Tokenises one caption as the toolkit does (lower case, PTB split, punctuation tokens removed).
 * The caption is scanned as a line followed by another, the usual place of a caption in the toolkit's
 * batch (a few rules look at what follows the line end; outside punctuation this rarely matters).
 */
export function ptbTokenize(text: string): string[] {
  return ptbTokenizeLines([text, ''])[0];
}
