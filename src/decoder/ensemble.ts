/**
 * Ensembles: K decoders (any mix of architectures) searched as one StepModel. Every step runs each member on the
 * same rows and combines their next-word distributions; the beam search sees one model, so an ensemble keeps "one
 * step call for all beams of all images" per member, and `select` reorders every member's state with the same rows.
 *
 *   combine 'mean-prob'    log Σ_k w_k p_k(w)      (the mixture; what self-critical.pytorch's AttEnsemble does)
 *   combine 'mean-logprob' Σ_k w_k log p_k(w)      (a product of experts, renormalised; sharper)
 *
 * with weights w_k summing to 1. The members must share the vocabulary (same words, same ids) and read the same
 * encoder features (regions × channels); attention for heat-maps is the weighted mean of the members'.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { Vocabulary } from '../text/vocabulary.js';
import type { LoadedDecoder } from './registry.js';
import type { DecoderState, StepOutput } from './step-model.js';

export type EnsembleCombine = 'mean-prob' | 'mean-logprob';
export const ENSEMBLE_COMBINES: readonly EnsembleCombine[] = ['mean-prob', 'mean-logprob'];

export interface EnsembleState extends DecoderState {
  /** One state per member, each with the same rows in the same order. */
  readonly members: readonly DecoderState[];
}

export interface EnsembleOptions {
  /** How the members' distributions combine (default 'mean-prob'). */
  combine?: EnsembleCombine;
  /** One non-negative weight per member (normalised here); default equal. */
  weights?: readonly number[];
  /** Names of the members, for error messages (e.g. their directories). */
  names?: readonly string[];
}

export class EnsembleStepModel implements LoadedDecoder {
  readonly vocabSize: number;
  readonly regions: number;
  readonly featureDim: number;
  readonly combine: EnsembleCombine;
  /** Normalised weights, one per member. */
  readonly weights: Float64Array;
  private readonly logWeights: Float64Array;

  constructor(
    readonly members: readonly LoadedDecoder[],
    options: EnsembleOptions = {},
  ) {
    const names = options.names ?? members.map((_, i) => `member ${i + 1}`);
    if (members.length < 1) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'an ensemble needs at least one decoder');
    const [first] = members;
    for (let k = 1; k < members.length; k++) {
      const m = members[k];
      for (const key of ['vocabSize', 'regions', 'featureDim'] as const) {
        if (m[key] !== first[key]) {
          throw new PixelInfoError(
            ErrorCodes.INVALID_ARGUMENT,
            `ensemble members disagree on ${key}: ${names[0]} has ${first[key]}, ${names[k]} has ${m[key]}`,
            { subject: names[k] },
          );
        }
      }
    }
    this.vocabSize = first.vocabSize;
    this.regions = first.regions;
    this.featureDim = first.featureDim;
    this.combine = options.combine ?? 'mean-prob';
    if (!ENSEMBLE_COMBINES.includes(this.combine)) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `unknown ensemble combine ${JSON.stringify(this.combine)} (known: ${ENSEMBLE_COMBINES.join(', ')})`);
    }
    const raw = options.weights ?? members.map(() => 1);
    if (raw.length !== members.length || !raw.every((w) => Number.isFinite(w) && w >= 0) || !raw.some((w) => w > 0)) {
      throw new PixelInfoError(
        ErrorCodes.INVALID_ARGUMENT,
        `ensemble weights must be ${members.length} non-negative numbers, not all 0; got [${raw.join(', ')}]`,
      );
    }
    const total = raw.reduce((a, b) => a + b, 0);
    this.weights = Float64Array.from(raw, (w) => w / total);
    this.logWeights = Float64Array.from(this.weights, Math.log);
  }

  async init(features: Float32Array, count: number): Promise<EnsembleState> {
    const states: DecoderState[] = [];
    // One after another: an onnxruntime session runs on the calling thread, so parallel calls would not overlap.
    for (const m of this.members) states.push(await m.init(features, count));
    return { rows: count, members: states };
  }

  async step(tokens: BigInt64Array | ArrayLike<number>, state: EnsembleState): Promise<StepOutput<EnsembleState>> {
    const outs: StepOutput[] = [];
    for (let k = 0; k < this.members.length; k++) outs.push(await this.members[k].step(tokens, state.members[k]));
    if (outs.length === 1) return { logProbs: outs[0].logProbs, alpha: outs[0].alpha, state: { rows: state.rows, members: [outs[0].state] } };
    const n = outs[0].logProbs.length;
    // logProbs: rows × V
    const logProbs = new Float32Array(n);
    const K = outs.length;
    if (this.combine === 'mean-logprob') {
      for (let k = 0; k < K; k++) {
        const lp = outs[k].logProbs;
        const w = this.weights[k];
        for (let i = 0; i < n; i++) logProbs[i] += w * lp[i];
      }
      // renormalise each row: a weighted sum of log-distributions is not one
      const V = this.vocabSize;
      for (let r = 0; r < n / V; r++) {
        const row = logProbs.subarray(r * V, (r + 1) * V);
        let max = -Infinity;
        for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
        const lse = max + Math.log(sum);
        for (let v = 0; v < V; v++) row[v] -= lse;
      }
    } else {
      // log Σ_k w_k exp(lp_k), stably: max_k (lp_k + log w_k) + log Σ_k exp(lp_k + log w_k − max)
      for (let i = 0; i < n; i++) {
        let max = -Infinity;
        for (let k = 0; k < K; k++) {
          const x = outs[k].logProbs[i] + this.logWeights[k];
          if (x > max) max = x;
        }
        if (max === -Infinity) {
          logProbs[i] = -Infinity;
          continue;
        }
        let sum = 0;
        for (let k = 0; k < K; k++) sum += Math.exp(outs[k].logProbs[i] + this.logWeights[k] - max);
        logProbs[i] = max + Math.log(sum);
      }
    }
    // alpha: rows × regions, the weighted mean (still sums to 1 per row)
    const alpha = new Float32Array(outs[0].alpha.length);
    for (let k = 0; k < K; k++) {
      const a = outs[k].alpha;
      const w = this.weights[k];
      for (let i = 0; i < alpha.length; i++) alpha[i] += w * a[i];
    }
    return { logProbs, alpha, state: { rows: state.rows, members: outs.map((o) => o.state) } };
  }

  select(state: EnsembleState, rowIndices: ArrayLike<number>): EnsembleState {
    return { rows: rowIndices.length, members: this.members.map((m, k) => m.select(state.members[k], rowIndices)) };
  }

  async release(): Promise<void> {
    await Promise.all(this.members.map((m) => m.release()));
  }
}

/**
 * Members of an ensemble must use one vocabulary: the same words with the same ids. INVALID_ARGUMENT naming the
 * first member that differs and the first word where it does.
 */
export function checkSameVocabulary(vocabularies: readonly Vocabulary[], names: readonly string[]): void {
  const [first] = vocabularies;
  for (let k = 1; k < vocabularies.length; k++) {
    const v = vocabularies[k];
    if (v.words.length !== first.words.length) {
      throw new PixelInfoError(
        ErrorCodes.INVALID_ARGUMENT,
        `ensemble members must share a vocabulary: ${names[0]} has ${first.words.length} words, ${names[k]} has ${v.words.length}`,
        { subject: names[k] },
      );
    }
    for (let id = 0; id < first.words.length; id++) {
      if (first.words[id] !== v.words[id]) {
        throw new PixelInfoError(
          ErrorCodes.INVALID_ARGUMENT,
          `ensemble members must share a vocabulary: word ${id} is ${JSON.stringify(first.words[id])} in ${names[0]} but ${JSON.stringify(v.words[id])} in ${names[k]}`,
          { subject: names[k] },
        );
      }
    }
  }
}
