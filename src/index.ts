/** The `pixel-info` library: caption images from Node. */
export {
  Captioner,
  defaultModelDir,
  isCaptionFailure,
  type CaptionerOptions,
  type CaptionOptions,
  type Caption,
  type CaptionResult,
  type CaptionFailure,
  type CaptionOutcome,
  type CaptionTimings,
} from './pipeline/captioner.js';
export { ImageEncoder, type EncoderOptions, type EncodedBatch } from './encoder/index.js';
export type { ImageLimits } from './image/index.js';
export { OnnxStepModel } from './decoder/onnx-step-model.js';
export type { StepModel, DecoderState, StepOutput } from './decoder/step-model.js';
export { beamSearch, DEFAULT_SEARCH_OPTIONS, type SearchOptions, type Hypothesis } from './decoder/search.js';
export { readModelDir, type ModelCard } from './decoder/model-dir.js';
export { renderAttentionHeatmap, type HeatmapOptions, type RgbImage } from './render/heatmap.js';
export { toAltText } from './pipeline/format.js';
export * from './errors.js';
