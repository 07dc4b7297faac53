/** The `pixel-info` library: caption images from Node. */
export {
  Captioner,
  defaultModelDir,
  defaultMatcherDir,
  isCaptionFailure,
  type CaptionerOptions,
  type CaptionOptions,
  type MatchOptions,
  type MatcherInfo,
  type Caption,
  type CaptionResult,
  type CaptionFailure,
  type CaptionOutcome,
  type CaptionTimings,
} from './pipeline/captioner.js';
export { DEFAULT_MODEL, resolveModelSpec } from './pipeline/models.js';
export { EnsembleStepModel, type EnsembleCombine, type EnsembleOptions } from './decoder/ensemble.js';
export { tagsFromLogits, type ImageTag, type TagClass } from './encoder/tags.js';
export {
  ImageEncoder,
  ENCODER_GEOMETRY,
  type EncoderOptions,
  type EncodedBatch,
  type EncoderGeometry,
  type FeatureGeometry,
} from './encoder/index.js';
export type { ImageLimits } from './image/index.js';
export type { StepModel, DecoderState, StepOutput } from './decoder/step-model.js';
export { beamSearch, type SearchVocabulary, type Hypothesis } from './decoder/search.js';
export {
  resolveGeneration,
  DEFAULT_GENERATION,
  RULE_NAMES,
  type GenerationConfig,
  type GenerationOptions,
  type RuleName,
  type DanglingWords,
} from './decoder/generation.js';
export { buildRules, type DecodingRule, type SpecialTokens } from './decoder/rules.js';
export { ARCHITECTURES, type DecoderArchitecture, type LoadedDecoder } from './decoder/registry.js';
export { readModelDir, loadDecoder, type ModelCard, type ModelDirContents } from './decoder/model-dir.js';
export { renderAttentionHeatmap, type HeatmapOptions, type RgbImage } from './render/heatmap.js';
export { toAltText, ALT_TEXT_MAX } from './text/alt-text.js';
export {
  loadMatcher,
  OnnxMatcher,
  calibrate,
  scorePairs,
  tokenizeTexts,
  parseMatcherCard,
  matcherCardSchema,
  MATCHER_FILES,
  type MatchScore,
  type MatchCalibration,
  type MatcherModel,
  type MatcherCard,
  type MatcherLoadOptions,
  type TokenisedTexts,
} from './match/index.js';
export { ONNX_BACKEND, type OnnxBackendName } from './backend/onnx.js';
export { EncoderSession, type EncoderSessionOptions } from './encoder/session.js';
export * from './errors.js';
