/**
 * `pixel-info/web`: caption images in the browser, on the device — the same Captioner API as Node's, on
 * onnxruntime-web (WebAssembly with SIMD and threads, WebGPU when present), with models from `pixel-info serve`.
 */
export { Captioner, type WebCaptionerOptions, type LoadProgress, type LoadStats, type ModelManifest } from './captioner.js';
export {
  isCaptionFailure,
  type CaptionOptions,
  type Caption,
  type CaptionResult,
  type CaptionFailure,
  type CaptionOutcome,
  type CaptionTimings,
} from '../pipeline/core.js';
export type { ImageInput } from '../backend/image.browser.js';
export type { ImageLimits } from '../image/types.js';
export { resolveGeneration, DEFAULT_GENERATION, RULE_NAMES, type GenerationConfig, type GenerationOptions, type RuleName } from '../decoder/generation.js';
export type { ModelCard } from '../decoder/model-card.js';
export { toAltText, ALT_TEXT_MAX } from '../text/alt-text.js';
export { PixelInfoError, ErrorCodes, type ErrorCode } from '../errors.js';
