/**
 * Image–text matching (docs/formats.md, "Matcher model directory"): load a matcher, embed images and sentences,
 * calibrated scores. The Captioner (src/pipeline/captioner.ts) loads one beside the decoder: `Captioner.match`,
 * caption `confidence`, `rerank: 'match'`, `returnEmbedding`.
 */
export type { MatchScore, MatchCalibration, MatcherModel } from './types.js';
export { matcherCardSchema, matcherCalibrationSchema, parseMatcherCard, MATCHER_CARD_FORMAT, type MatcherCard } from './card.js';
export { calibrate, cosineAt, scorePairs } from './score.js';
export {
  loadMatcher,
  OnnxMatcher,
  tokenizeTexts,
  MATCHER_FILES,
  type MatcherLoadOptions,
  type TokenisedTexts,
} from './matcher.js';
export { defaultMatcherDir, DEFAULT_MATCHER_NAME } from '../pipeline/captioner.js';
