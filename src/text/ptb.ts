/**
 * PTB-style tokenisation as the COCO caption toolkit applies it before scoring:
 * lower case, Penn Treebank splitting, punctuation tokens removed.
 * (First version; the metrics work refines it against the toolkit's own output.)
 */
const PUNCTUATION = new Set([
  "''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-', '--', '...', ';',
]);

export function ptbTokenize(text: string): string[] {
  const spaced = text
    .toLowerCase()
    .replace(/([.,!?;:()"`]|--)/g, ' $1 ')
    .replace(/(\S)'(s|re|ve|ll|d|m|t)\b/g, "$1 '$2")
    .replace(/n 't\b/g, " n't");
  return spaced.split(/\s+/).filter((t) => t.length > 0 && !PUNCTUATION.has(t) && !/^[()"]$/.test(t));
}
