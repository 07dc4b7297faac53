/**
 * Greedy and beam search over a StepModel, batched over images: every live beam of every image goes into one
 * step call. Beam 1 is plain greedy decoding (argmax each step, stop at <end>).
 *
 * Beam search keeps `beamSize` live (unfinished) beams per image. Each step ranks every one-token continuation
 * of the live beams by total log-probability; among the best 2·beamSize, an <end> continuation ranked within the
 * first beamSize becomes a finished hypothesis, and the best beamSize other continuations become the next live
 * beams (so beams that finish early do not shrink the beam). Finished hypotheses are ranked by
 *
 *     score = logProb / length^lengthPenalty        (length = words + 1, counting <end>)
 *
 * i.e. plain length normalisation: 0 (the default) is the raw sum of log-probabilities, as in Show-Attend-Tell;
 * 1 is the mean log-probability per token. An image stops once it has `nBest` finished hypotheses that no live
 * beam can still beat (exact: log-probabilities only fall, so a live beam's best possible score is bounded), or
 * when `maxLength` words are written, at which point every live beam is closed with its <end> probability.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { SPECIALS } from '../text/vocabulary.js';
import type { DecoderState, StepModel } from './step-model.js';

export interface SearchOptions {
  /** Live beams per image; 1 = greedy. Default 3. */
  beamSize?: number;
  /** Most words in a caption (not counting <start>/<end>). Default 20, the training cut. */
  maxLength?: number;
  /** Exponent of the length normalisation (see above). Default 0 = raw sum of log-probabilities. */
  lengthPenalty?: number;
  /** Hypotheses returned per image, best first; at most beamSize. Default 1. */
  nBest?: number;
  /** No n-gram of this many words may occur twice in a caption; 0 turns it off. Default 3. */
  noRepeatNgram?: number;
  /** Forbid the same word twice in a row ("a a dog"). Default true. */
  blockRepeatedToken?: boolean;
  /** Allow the <unk> token in captions. Default false: a caption never shows "<unk>". */
  allowUnk?: boolean;
  /** Keep the attention weights of every word. Default false. */
  returnAttention?: boolean;
  /** id → word; when given, hypotheses carry `words`. */
  vocabulary?: readonly string[];
  /** Special token ids; default the ones of docs/formats.md (pad 0, start 1, end 2, unk 3). */
  specials?: { pad: number; start: number; end: number; unk: number };
}

export const DEFAULT_SEARCH_OPTIONS = Object.freeze({
  beamSize: 3,
  maxLength: 20,
  lengthPenalty: 0,
  nBest: 1,
  noRepeatNgram: 3,
  blockRepeatedToken: true,
  allowUnk: false,
  returnAttention: false,
});

export interface Hypothesis {
  /** Word ids, without <start> and <end>. */
  tokens: number[];
  words?: string[];
  /** Sum of the log-probabilities of the words and of <end>. */
  logProb: number;
  /** logProb / (tokens.length + 1)^lengthPenalty; hypotheses are ranked by it. */
  score: number;
  /** Per word, the regions' attention weights used to predict it (49 = 7x7, row-major). */
  alphas?: Float32Array[];
}

interface Beam {
  tokens: number[];
  logProb: number;
  alphas?: Float32Array[];
}

interface Candidate {
  value: number;
  row: number;
  token: number;
}

interface ImageSearch {
  image: number;
  /** Live beams, best first; beam i is state row firstRow + i. */
  beams: Beam[];
  firstRow: number;
  finished: Hypothesis[];
}

type Resolved = Required<Omit<SearchOptions, 'vocabulary'>> & { vocabulary?: readonly string[] };

export function resolveSearchOptions(options: SearchOptions = {}): Resolved {
  const o = { ...DEFAULT_SEARCH_OPTIONS, specials: SPECIALS, ...stripUndefined(options) } as Resolved;
  const bad = (what: string) => new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, what, { subject: 'search options' });
  if (!Number.isInteger(o.beamSize) || o.beamSize < 1 || o.beamSize > 100) throw bad(`beamSize must be an integer from 1 to 100, got ${o.beamSize}`);
  if (!Number.isInteger(o.maxLength) || o.maxLength < 1 || o.maxLength > 500) throw bad(`maxLength must be an integer from 1 to 500, got ${o.maxLength}`);
  if (!Number.isInteger(o.nBest) || o.nBest < 1 || o.nBest > o.beamSize) throw bad(`nBest must be an integer from 1 to beamSize (${o.beamSize}), got ${o.nBest}`);
  if (!Number.isFinite(o.lengthPenalty) || o.lengthPenalty < 0) throw bad(`lengthPenalty must be a number >= 0, got ${o.lengthPenalty}`);
  if (!Number.isInteger(o.noRepeatNgram) || o.noRepeatNgram < 0) throw bad(`noRepeatNgram must be an integer >= 0, got ${o.noRepeatNgram}`);
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Per image (in input order), up to nBest hypotheses, best first. */
export async function beamSearch<S extends DecoderState>(
  model: StepModel<S>,
  features: Float32Array,
  count: number,
  options: SearchOptions = {},
): Promise<Hypothesis[][]> {
  const o = resolveSearchOptions(options);
  const K = o.beamSize;
  const { end, start } = o.specials;
  const lengthNorm = (words: number) => Math.pow(words + 1, o.lengthPenalty);
  if (count === 0) return [];

  let state = await model.init(features, count);
  if (state.rows !== count) throw new RangeError(`init gave ${state.rows} rows for ${count} images`);
  let searches: ImageSearch[] = Array.from({ length: count }, (_, image) => ({
    image,
    beams: [{ tokens: [], logProb: 0, alphas: o.returnAttention ? [] : undefined }],
    firstRow: image,
    finished: [],
  }));
  const results: Hypothesis[][] = new Array(count);
  let tokens: number[] = new Array(count).fill(start);
  let mask = new Uint8Array(0);

  for (let t = 0; searches.length > 0; t++) {
    const out = await model.step(tokens, state);
    const V = out.logProbs.length / state.rows;
    if (!Number.isInteger(V) || V < 1) throw new RangeError(`step gave ${out.logProbs.length} log-probabilities for ${state.rows} rows`);
    const R = out.alpha.length / state.rows;
    if (mask.length !== V) mask = new Uint8Array(V);
    const closing = t === o.maxLength; // maxLength words written

    const nextSearches: ImageSearch[] = [];
    const parentRows: number[] = [];
    const nextTokens: number[] = [];
    for (const search of searches) {
      // The best 2K continuations (K of them at least are words: each beam has one <end>). At maxLength
      // words every beam must end, so the candidates are the beams' <end> continuations.
      const top = closing
        ? search.beams.map((beam, b) => ({ value: beam.logProb + out.logProbs[(search.firstRow + b) * V + end], row: search.firstRow + b, token: end }))
        : topCandidates(search, out.logProbs, V, 2 * K, mask, (beam) => bannedTokens(beam.tokens, t, V, o));
      const live: Beam[] = [];
      const liveRows: number[] = [];
      top.forEach((cand, rank) => {
        const beam = search.beams[cand.row - search.firstRow];
        if (cand.token === end) {
          // As in fairseq and Hugging Face: an ended beam counts only if it ranks among the step's best K;
          // keeping lower-ranked ones too searches "better" but favours very short captions.
          if (rank < K && cand.value > -Infinity) {
            const hyp: Hypothesis = { tokens: beam.tokens, logProb: cand.value, score: cand.value / lengthNorm(beam.tokens.length) };
            if (o.vocabulary) hyp.words = beam.tokens.map((id) => o.vocabulary![id] ?? `<${id}>`);
            if (beam.alphas) hyp.alphas = beam.alphas;
            search.finished.push(hyp);
          }
        } else if (live.length < K) {
          live.push({
            tokens: [...beam.tokens, cand.token],
            logProb: cand.value,
            alphas: beam.alphas ? [...beam.alphas, out.alpha.slice(cand.row * R, (cand.row + 1) * R)] : undefined,
          });
          liveRows.push(cand.row);
        }
      });
      search.finished.sort(compareHypotheses);
      if (isDone(search.finished, live, t, o, lengthNorm)) {
        results[search.image] = search.finished.slice(0, o.nBest);
        continue;
      }
      nextSearches.push({ image: search.image, beams: live, firstRow: parentRows.length, finished: search.finished });
      parentRows.push(...liveRows);
      nextTokens.push(...live.map((b) => b.tokens[b.tokens.length - 1]));
    }
    searches = nextSearches;
    if (searches.length === 0) break;
    state = model.select(out.state, parentRows);
    tokens = nextTokens;
  }
  return results;
}

function compareHypotheses(a: Hypothesis, b: Hypothesis): number {
  return b.score - a.score || b.logProb - a.logProb || compareTokens(a.tokens, b.tokens);
}

function compareTokens(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function isDone(
  finished: Hypothesis[],
  live: Beam[],
  t: number,
  o: Resolved,
  lengthNorm: (words: number) => number,
): boolean {
  if (live.length === 0) return true;
  if (o.beamSize === 1) return finished.length > 0; // greedy: the argmax was <end>
  if (finished.length < o.nBest) return false;
  // The best score any live beam can still reach: its log-probability can only fall, and it will end with
  // between t+2 and maxLength+1 tokens; dividing a log-probability (<= 0) by the largest norm gives the bound.
  const wordsNow = t + 1;
  const bound = live[0].logProb / Math.max(lengthNorm(wordsNow), lengthNorm(o.maxLength));
  return finished[o.nBest - 1].score >= bound;
}

/** Tokens a beam may not emit next. */
function bannedTokens(tokens: number[], t: number, V: number, o: Resolved): number[] {
  const { pad, start, end, unk } = o.specials;
  const banned = [pad, start];
  if (!o.allowUnk) banned.push(unk);
  if (t === 0) banned.push(end); // no empty captions
  const n = tokens.length;
  if (o.blockRepeatedToken && n > 0) banned.push(tokens[n - 1]);
  const N = o.noRepeatNgram;
  if (N > 0 && n >= N - 1) {
    // Any earlier occurrence of the last N-1 words bans the word that followed it.
    for (let i = 0; i + N - 1 < n; i++) {
      let same = true;
      for (let j = 0; j < N - 1 && same; j++) same = tokens[i + j] === tokens[n - N + 1 + j];
      if (same) banned.push(tokens[i + N - 1]);
    }
  }
  return banned.filter((id) => id >= 0 && id < V);
}

/**
 * The `limit` best continuations of an image's live beams, best first; ties go to the lower row, then the
 * lower token id, so results do not depend on how rows are batched.
 */
function topCandidates(
  search: ImageSearch,
  logProbs: Float32Array,
  V: number,
  limit: number,
  mask: Uint8Array,
  banned: (beam: Beam) => number[],
): Candidate[] {
  const top: Candidate[] = [];
  const consider = (value: number, row: number, token: number) => {
    if (!(value > -Infinity)) return; // -Infinity and NaN: impossible continuations
    if (top.length === limit && !(value > top[limit - 1].value)) return;
    let i = top.length === limit ? limit - 1 : top.length;
    while (i > 0 && top[i - 1].value < value) i--;
    top.splice(i, 0, { value, row, token });
    if (top.length > limit) top.pop();
  };
  search.beams.forEach((beam, b) => {
    const row = search.firstRow + b;
    const base = row * V;
    const ban = banned(beam);
    for (const id of ban) mask[id] = 1;
    for (let v = 0; v < V; v++) if (mask[v] === 0) consider(beam.logProb + logProbs[base + v], row, v);
    for (const id of ban) mask[id] = 0;
  });
  return top;
}
