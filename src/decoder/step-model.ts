/**
 * The decoder seen by the search: one initial state per image, then one step for many rows at once
 * (every live beam of every image), and a way to reorder rows when beams are pruned or duplicated.
 * Search code depends only on this interface, so it is tested against plain-TS toy models.
 */

/** Opaque per-model state; the search only reads how many rows it holds. */
export interface DecoderState {
  readonly rows: number;
}

export interface StepOutput<S extends DecoderState = DecoderState> {
  /** rows × vocabSize log-probabilities of the next token. */
  logProbs: Float32Array;
  /** rows × regions attention weights used to predict that token (each row sums to 1). */
  alpha: Float32Array;
  state: S;
}

export interface StepModel<S extends DecoderState = DecoderState> {
  readonly vocabSize: number;
  /** Attention regions per image (the encoder grid's cells). */
  readonly regions: number;
  /** One state row per image; `features` holds `count` images (count × regions × channels for the real decoder). */
  init(features: Float32Array, count: number): Promise<S>;
  /** Feeds `tokens[r]` to row r. The returned state has the same rows, in the same order. */
  step(tokens: BigInt64Array | ArrayLike<number>, state: S): Promise<StepOutput<S>>;
  /** A state whose row i is row `rowIndices[i]` of `state` (rows may repeat or be dropped). */
  select(state: S, rowIndices: ArrayLike<number>): S;
}
