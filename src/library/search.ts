/**
 * User search text → the query of each full-text engine. A query is only ever words: letters and digits, lower
 * case, at most 16 of them, each cut to 64 characters. Every word must match, as a word prefix ("dog" finds
 * "dogs"). Quotes, operators and brackets of either engine's syntax are separators, so no input can be a syntax
 * error or change the query's meaning.
 *
 * English stop words ("a", "the", "with") are left out of every query: PostgreSQL's english configuration does
 * not index them, so leaving them out in SQLite as well makes both stores answer "the dog" alike. A query of
 * stop words only matches nothing (in both).
 */

const MAX_WORDS = 16;
const MAX_WORD_LENGTH = 64;
export const SEARCH_LIMIT_DEFAULT = 24;
export const SEARCH_LIMIT_MAX = 100;

/** PostgreSQL's english stop words (share/tsearch_data/english.stop): not indexed there, left out of queries here. */
const STOP_WORDS = new Set(
  (
    'i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself it its itself they them their theirs themselves what which who whom this that these those am is are was were be been being have has had having do does did doing a an the and but if or because as until while of at by for with about against between into through during before after above below to from up down in out on off over under again further then once here there when where why how all any both each few more most other some such no nor not only own same so than too very s t can will just don should now'
  ).split(' '),
);

export interface SearchWords {
  /** The words to match, stop words left out; none: list the newest images (unless onlyStopWords). */
  words: string[];
  /** The query had words, all of them stop words: nothing matches. */
  onlyStopWords: boolean;
}

/** The words of a search, as both engines see them. */
export function searchWords(query: string | undefined): SearchWords {
  const all = (query ?? '').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const words = all
    .filter((w) => !STOP_WORDS.has(w))
    .slice(0, MAX_WORDS)
    .map((w) => w.slice(0, MAX_WORD_LENGTH));
  return { words, onlyStopWords: all.length > 0 && words.length === 0 };
}

/** SQLite FTS5: each word a quoted prefix term (`"dog"*`), all required; '' for no words. */
export function toFtsQuery(words: readonly string[]): string {
  return words.map((w) => `"${w.replace(/"/g, '""')}"*`).join(' ');
}

/**
 * PostgreSQL `to_tsquery`: each word a quoted lexeme with a prefix mark (`'dog':*`), joined by `&`; '' for no
 * words. The words hold neither quotes nor backslashes, the only characters special inside a quoted lexeme.
 */
export function toTsQuery(words: readonly string[]): string {
  return words.map((w) => `'${w}':*`).join(' & ');
}

/** A requested page size as 1..100 (default 24). */
export function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return SEARCH_LIMIT_DEFAULT;
  return Math.max(1, Math.min(SEARCH_LIMIT_MAX, Math.floor(limit)));
}
