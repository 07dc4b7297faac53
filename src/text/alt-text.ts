/**
 * The alt-text rule, in one place for the CLI, the server and the web page (it has no Node imports, so the
 * browser bundle uses this same file).
 */

/** Screen readers and many CMSs cut alt text around 125 characters. */
export const ALT_TEXT_MAX = 125;

/** Words that make a cut caption read as unfinished ("a dog with a"), dropped from the end of a cut. */
const DANGLING = new Set(['a', 'an', 'the', 'and', 'or', 'of', 'in', 'on', 'at', 'with', 'to', 'for', 'from', 'by', 'while', 'is', 'are']);

/**
 * Sentence case, ending with a period, at most `max` characters: a longer caption is cut at a word boundary
 * (and dangling function words are dropped) before the period is added.
 */
export function toAltText(caption: string, max = ALT_TEXT_MAX): string {
  let text = caption.trim().replace(/\s+/g, ' ').replace(/[\s.]+$/, '');
  if (text.length === 0) return '';
  if (text.length + 1 > max) {
    const words = text.slice(0, max).split(' ');
    if (text.length > max && text[max] !== ' ' && words.length > 1) words.pop(); // the last word was cut through
    while (words.length > 1 && (DANGLING.has(words[words.length - 1].toLowerCase()) || words.join(' ').length + 1 > max)) words.pop();
    text = words.join(' ');
    if (text.length + 1 > max) text = text.slice(0, max - 1); // one word longer than max: hard cut
  }
  return text[0].toUpperCase() + text.slice(1) + '.';
}
