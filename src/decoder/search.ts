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
 *
 * What a beam may write next is decided by the decoding rules the GenerationConfig names (./rules.ts); at
 * maxLength a beam the rules forbid to end (a dangling ending) is dropped unless no beam of the image may end.
 * Settings come from one resolver (./generation.ts). trainer/decoding.py is the same search in Python, proven
 * equal on the shared fixture test/fixtures/decoder/beam-parity.json.
 *
 * Guided decoding (config.tagBonus > 0 and per-image guide words, e.g. the ImageNet tags of src/encoder/tags.ts,
 * each with the forms it favours, dog/dogs, and the words that name it, dog/dogs/puppy/terrier): at every step each
 * beam's distribution is reweighted, p'(w) ∝ p(w)·e^bonus for the favoured words of the tags the beam has not named
 * yet, i.e.
 *
 *     log p'(w) = log p(w) + bonus·[w is such a word] − log(1 + (e^bonus − 1)·P(such words))
 *
 * so a beam is pushed towards naming each tag once, and no further ("a dog plays with a dog"). Beams and finished
 * hypotheses are ranked by the sums of log p' (so `score` is guided), while `logProb` stays the sum of the model's
 * own log p. p' is a distribution, so guided sums only fall too and the stopping bound stays exact. With no guide
 * words (or bonus 0) log p' = log p and the search is the plain one, bit for bit.
 */
import { resolveGeneration, type GenerationConfig, type GenerationOptions } from './generation.js';
import { bannedTokens, buildRules, type DecodingRule, type SpecialTokens } from './rules.js';
import { SPECIALS } from '../text/vocabulary.js';
import type { DecoderState, StepModel } from './step-model.js';

/** What the search needs to know of the vocabulary. */
export interface SearchVocabulary {
  /** id → word; hypotheses carry `words`, and the no-dangling-ending rule needs it. */
  words?: readonly string[];
  /** Special token ids; default the ones of docs/formats.md (pad 0, start 1, end 2, unk 3). */
  specials?: SpecialTokens;
}

export interface Hypothesis {
  /** Word ids, without <start> and <end>. */
  tokens: number[];
  words?: string[];
  /** Sum of the log-probabilities of the words and of <end>. */
  logProb: number;
  /**
   * logProb / (tokens.length + 1)^lengthPenalty; hypotheses are ranked by it. With guided decoding, the guided
   * log-probabilities' sum takes logProb's place.
   */
  score: number;
  /** Per word, the attention weights over the regions used to predict it (row-major grid). */
  alphas?: Float32Array[];
}

/** Words to favour, per image (guided decoding; see the top of this file). */
export interface SearchGuidance {
  /**
   * Per image (in input order), one entry per tag: while a beam has written none of `names`, the probabilities of
   * `boost` are multiplied by e^tagBonus.
   */
  groups: ReadonlyArray<ReadonlyArray<GuideGroup>>;
}

export interface GuideGroup {
  boost: readonly number[];
  names: readonly number[];
}

interface Beam {
  tokens: number[];
  /** The model's log-probability of the words so far. */
  logProb: number;
  /** What beams are ranked by: logProb, or with guidance the guided log-probability. */
  value: number;
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
  /** Guided decoding: the image's guide groups; undefined without guidance. */
  guide?: ReadonlyArray<GuideGroup>;
}

/** Per image (in input order), up to nBest hypotheses, best first. */
export async function beamSearch<S extends DecoderState>(
  model: StepModel<S>,
  features: Float32Array,
  count: number,
  options: GenerationOptions = {},
  vocabulary: SearchVocabulary = {},
  guidance?: SearchGuidance,
): Promise<Hypothesis[][]> {
  const o = resolveGeneration(options);
  const words = vocabulary.words;
  const { end, start } = vocabulary.specials ?? SPECIALS;
  const rules = buildRules(o, vocabulary.specials ?? SPECIALS, words);
  const K = o.beamSize;
  const lengthNorm = (words: number) => Math.pow(words + 1, o.lengthPenalty);
  if (count === 0) return [];
  if (guidance && guidance.groups.length !== count) throw new RangeError(`guidance for ${guidance.groups.length} images, searching ${count}`);
  const bonus = o.tagBonus;

  let state = await model.init(features, count);
  if (state.rows !== count) throw new RangeError(`init gave ${state.rows} rows for ${count} images`);
  let searches: ImageSearch[] = Array.from({ length: count }, (_, image) => {
    const guide = bonus > 0 ? guidance?.groups[image].filter((group) => group.boost.length > 0) : undefined;
    return {
      image,
      beams: [{ tokens: [], logProb: 0, value: 0, alphas: o.returnAttention ? [] : undefined }],
      firstRow: image,
      finished: [],
      guide: guide && guide.length > 0 ? guide : undefined,
    };
  });
  const results: Hypothesis[][] = new Array(count);
  let tokens: number[] = new Array(count).fill(start);

  for (let t = 0; searches.length > 0; t++) {
    const out = await model.step(tokens, state);
    const V = out.logProbs.length / state.rows;
    if (!Number.isInteger(V) || V < 1) throw new RangeError(`step gave ${out.logProbs.length} log-probabilities for ${state.rows} rows`);
    const R = out.alpha.length / state.rows;
    const closing = t === o.maxLength; // maxLength words written

    const nextSearches: ImageSearch[] = [];
    const parentRows: number[] = [];
    const nextTokens: number[] = [];
    for (const search of searches) {
      const guided = search.guide ? guidedRows(search, out.logProbs, V, bonus) : undefined;
      // The best 2K continuations (K of them at least are words: each beam has one <end>). At maxLength
      // words every beam must end, so the candidates are the beams' <end> continuations.
      const top = closing
        ? closingCandidates(search, out.logProbs, V, end, rules, guided)
        : topCandidates(search, out.logProbs, V, 2 * K, (beam) => bannedTokens(rules, beam.tokens, V), guided);
      const live: Beam[] = [];
      const liveRows: number[] = [];
      top.forEach((cand, rank) => {
        const beam = search.beams[cand.row - search.firstRow];
        const logProb = guided ? beam.logProb + out.logProbs[cand.row * V + cand.token] : cand.value;
        if (cand.token === end) {
          // As in fairseq and Hugging Face: an ended beam counts only if it ranks among the step's best K;
          // keeping lower-ranked ones too searches "better" but favours very short captions.
          if (rank < K && cand.value > -Infinity) {
            const hyp: Hypothesis = { tokens: beam.tokens, logProb, score: cand.value / lengthNorm(beam.tokens.length) };
            if (words) hyp.words = beam.tokens.map((id) => words[id] ?? `<${id}>`);
            if (beam.alphas) hyp.alphas = beam.alphas;
            search.finished.push(hyp);
          }
        } else if (live.length < K) {
          live.push({
            tokens: [...beam.tokens, cand.token],
            logProb,
            value: cand.value,
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
      nextSearches.push({ image: search.image, beams: live, firstRow: parentRows.length, finished: search.finished, guide: search.guide });
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
  o: GenerationConfig,
  lengthNorm: (words: number) => number,
): boolean {
  if (live.length === 0) return true;
  if (o.beamSize === 1) return finished.length > 0; // greedy: the argmax was <end>
  if (finished.length < o.nBest) return false;
  // The best score any live beam can still reach: its log-probability can only fall, and it will end with
  // between t+2 and maxLength+1 tokens; dividing a log-probability (<= 0) by the largest norm gives the bound.
  const wordsNow = t + 1;
  const bound = live[0].value / Math.max(lengthNorm(wordsNow), lengthNorm(o.maxLength));
  return finished[o.nBest - 1].score >= bound;
}

/**
 * At maxLength words every beam must end: the candidates are the beams' <end> continuations, in beam order,
 * except those a rule forbids (a dangling ending) — unless that leaves none, since the image needs a caption.
 */
function closingCandidates(
  search: ImageSearch,
  logProbs: Float32Array,
  V: number,
  end: number,
  rules: readonly DecodingRule[],
  guided?: GuidedRows,
): Candidate[] {
  const all = search.beams.map((beam, b) => {
    const row = search.firstRow + b;
    // <end> is never a guide word: only the normaliser applies
    const value = guided ? beam.value - guided.shifts[b] + logProbs[row * V + end] : beam.value + logProbs[row * V + end];
    return { value, row, token: end, allowed: !bannedTokens(rules, beam.tokens, V).includes(end) };
  });
  const allowed = all.filter((c) => c.allowed);
  return (allowed.length > 0 ? allowed : all).filter((c) => c.value > -Infinity).map(({ value, row, token }) => ({ value, row, token }));
}

/**
 * The `limit` best continuations of an image's live beams, best first; ties go to the lower row, then the
 * lower token id, so results do not depend on how rows are batched.
 *
 * Each beam's row is scanned once in a tight loop that keeps that beam's `limit` best in two small typed arrays
 * (only a value above the current threshold costs more than a comparison; the rare banned id is checked only
 * then), and the beams' lists are merged. The overall best `limit` are among the per-beam best `limit`, so this is
 * exactly the global selection.
 */
function topCandidates(
  search: ImageSearch,
  logProbs: Float32Array,
  V: number,
  limit: number,
  banned: (beam: Beam) => number[],
  guided?: GuidedRows,
): Candidate[] {
  if (topValues.length < limit) {
    topValues = new Float64Array(limit);
    topTokens = new Int32Array(limit);
  }
  const values = topValues;
  const tokens = topTokens;
  const merged: Candidate[] = [];
  search.beams.forEach((beam, b) => {
    const row = search.firstRow + b;
    const base = row * V;
    const ban = banned(beam);
    const offset = guided ? beam.value - guided.shifts[b] : beam.value;
    const bias = guided?.bias;
    if (guided) for (const id of guided.active[b]) guided.bias[id] = guided.bonus;
    let count = 0;
    let threshold = -Infinity; // the value to beat once `limit` are kept
    for (let v = 0; v < V; v++) {
      const value = bias ? offset + logProbs[base + v] + bias[v] : offset + logProbs[base + v];
      if (!(value > threshold)) {
        if (count === limit || !(value > -Infinity)) continue; // -Infinity and NaN: impossible continuations
      }
      if (ban.length > 0 && ban.includes(v)) continue;
      // insert after every kept value >= this one (equal values keep the lower token first)
      let i = count < limit ? count++ : limit - 1;
      while (i > 0 && values[i - 1] < value) {
        values[i] = values[i - 1];
        tokens[i] = tokens[i - 1];
        i--;
      }
      values[i] = value;
      tokens[i] = v;
      if (count === limit) threshold = values[limit - 1];
    }
    if (guided) for (const id of guided.active[b]) guided.bias[id] = 0;
    for (let i = 0; i < count; i++) merged.push({ value: values[i], row, token: tokens[i] });
  });
  merged.sort((a, b) => b.value - a.value || a.row - b.row || a.token - b.token);
  if (merged.length > limit) merged.length = limit;
  return merged;
}

/** Guided decoding, one step of one image: per live beam, the ids still favoured and the normaliser. */
interface GuidedRows {
  bonus: number;
  /** Per beam, the ids of the guide groups it has not written yet. */
  active: number[][];
  /** Per beam, log(1 + (e^bonus − 1)·P(active ids)), subtracted from every continuation of that beam. */
  shifts: Float64Array;
  /** Scratch, length V, all 0: topCandidates sets a beam's active ids to `bonus` while it scans that beam's row. */
  bias: Float32Array;
}

function guidedRows(search: ImageSearch, logProbs: Float32Array, V: number, bonus: number): GuidedRows {
  const factor = Math.expm1(bonus);
  const active: number[][] = [];
  const shifts = new Float64Array(search.beams.length);
  search.beams.forEach((beam, b) => {
    const open = search.guide!.filter((group) => !group.names.some((id) => beam.tokens.includes(id)));
    const ids = [...new Set(open.flatMap((group) => group.boost))].filter((id) => id >= 0 && id < V);
    const base = (search.firstRow + b) * V;
    let mass = 0;
    for (const id of ids) mass += Math.exp(logProbs[base + id]);
    active.push(ids);
    shifts[b] = Math.log1p(factor * Math.min(1, mass));
  });
  if (guidedBias.length !== V) guidedBias = new Float32Array(V);
  return { bonus, active, shifts, bias: guidedBias };
}

/** Scratch of guided decoding (all zeros between uses). */
let guidedBias = new Float32Array(0);

/** Scratch space of topCandidates, reused across calls (the search is synchronous between awaits). */
let topValues = new Float64Array(0);
let topTokens = new Int32Array(0);
