/**
 * Image–text matching: the contract between the matcher model directory (docs/formats.md, "Matcher model
 * directory"), the pipeline (Captioner.match, caption confidence), the library (semantic search) and the audit.
 *
 * A matcher embeds an image (from the encoder's 7x7x2048 grid) and a sentence into the same unit-length space;
 * their cosine, through the card's calibration, is a `score` in [0, 1] (see MatchScore).
 */

/** One (image, text) pair. */
export interface MatchScore {
  text: string;
  /**
   * Calibrated probability in [0, 1]: sigmoid(logit). What it estimates is stated in the card (`calibration.meaning`)
   * and in the README: that the sentence is a description written by people for this image rather than for another
   * image (calibrated on the Flickr8k val split).
   */
  score: number;
  /** a * cosine + b, the card's calibration (`calibration.a`, `calibration.b`). */
  logit: number;
  /** Cosine of the two embeddings, in [-1, 1]. */
  cosine: number;
}

/** The calibration of a matcher's card: logit = a * cosine + b; score = 1 / (1 + exp(-logit)). */
export interface MatchCalibration {
  a: number;
  b: number;
}

export interface MatcherModel {
  /** Embedding size D. */
  readonly dim: number;
  readonly calibration: MatchCalibration;
  /** Image embeddings from encoder features [count, 49, 2048] → [count, D], each row unit length. */
  embedImages(features: Float32Array, count: number): Promise<Float32Array>;
  /** Sentence embeddings → [texts.length, D], each row unit length. A sentence with no known word still embeds. */
  embedTexts(texts: readonly string[]): Promise<Float32Array>;
  release(): Promise<void>;
}
