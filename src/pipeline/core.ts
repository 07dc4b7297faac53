/**
 * The captioning steps both sides share, with no Node or DOM imports: the result types, the encoder → beam
 * search step for a batch of loaded images, and the geometry check between encoder and decoder. Node's
 * Captioner (./captioner.ts) loads images with sharp and models from folders; the browser's (src/web) with a
 * canvas and from URLs; both end here, so captions, n-best lists and attention are the same.
 */
import type { EncoderSession } from '../encoder/session.js';
import type { EncoderGeometry } from '../encoder/geometry.js';
import { writeCaffeTensor, IMAGE_FLOATS } from '../image/tensor.js';
import type { LoadedImage } from '../image/types.js';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';
import type { LoadedDecoder } from '../decoder/registry.js';
import type { GenerationConfig, GenerationOptions } from '../decoder/generation.js';
import { beamSearch, type Hypothesis } from '../decoder/search.js';
import type { Vocabulary } from '../text/vocabulary.js';

/** Decoding settings for one call; what is left out comes from the model card, then the library defaults. */
export type CaptionOptions = GenerationOptions;

export interface Caption {
  /** Words joined by spaces, lower case as the model writes them, no final period. */
  text: string;
  tokens: string[];
  /** The search's ranking score: logProb / (tokens + 1)^lengthPenalty. */
  score: number;
  /** Sum of the log-probabilities of the words and of <end>. */
  logProb: number;
  /** Per token, one attention weight per region of the encoder's grid (row-major); only with returnAttention. */
  attention?: number[][];
}

export interface CaptionTimings {
  preprocessMs: number;
  encoderMs: number;
  decoderMs: number;
  totalMs: number;
}

export interface CaptionResult {
  /** The file path, or `<buffer>` / `<buffer i>` for buffers. */
  source: string;
  /** Format and size of the input image (after EXIF orientation). */
  image: { format: string; width: number; height: number };
  /** Best first; nBest of them. */
  captions: Caption[];
  /** Per image. Images are processed in batches; a batch's stage times are shared evenly among its images. */
  timings: CaptionTimings;
}

export interface CaptionFailure {
  source: string;
  error: { code: ErrorCode; message: string };
}

/** One slot of an array call. */
export type CaptionOutcome = CaptionResult | CaptionFailure;

export function isCaptionFailure(outcome: CaptionOutcome): outcome is CaptionFailure {
  return 'error' in outcome;
}

/** One image after loading: its 224x224 pixels, or why it could not be loaded. */
export type LoadOutcome = { ok: true; image: LoadedImage } | { ok: false; source: string; error: PixelInfoError };

/** The models a caption needs. */
export interface CaptionModels {
  encoder: EncoderSession;
  decoder: LoadedDecoder;
  vocabulary: Vocabulary;
}

/** MODEL_CORRUPT when the decoder does not read the features the encoder gives. */
export function checkGeometry(decoder: LoadedDecoder, geometry: EncoderGeometry, where: string): void {
  const { regions, channels } = geometry;
  if (decoder.regions !== regions || decoder.featureDim !== channels) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_CORRUPT,
      `${where}: the decoder reads ${decoder.regions} × ${decoder.featureDim} features, the encoder gives ${regions} × ${channels}`,
      { subject: where },
    );
  }
}

/** Per image, nBest captions for count × regions × channels features. */
export async function decodeFeatures(models: Omit<CaptionModels, 'encoder'>, features: Float32Array, count: number, search: GenerationConfig): Promise<Caption[][]> {
  const hypotheses = await beamSearch(models.decoder, features, count, search, { words: models.vocabulary.words });
  return hypotheses.map((list, i) => {
    if (list.length === 0) throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `the decoder gave no caption for image ${i} (non-finite log-probabilities?)`);
    return list.map(toCaption);
  });
}

/**
 * One batch: the loaded images through the encoder, then one search; failed loads keep their slot.
 * `startedAt` (performance.now()) is when loading began, so preprocessing time includes it.
 */
export async function captionLoaded(models: CaptionModels, loaded: readonly LoadOutcome[], search: GenerationConfig, startedAt: number): Promise<CaptionOutcome[]> {
  const good = loaded.flatMap((r, i) => (r.ok ? [{ i, image: r.image }] : []));
  const batch = new Float32Array(good.length * IMAGE_FLOATS);
  good.forEach((g, j) => writeCaffeTensor(g.image.pixels, batch, j));
  const t1 = performance.now();
  let captions: Caption[][] = [];
  let t2 = t1;
  if (good.length) {
    const { features } = await models.encoder.encode(batch, good.length);
    if (!features) throw new PixelInfoError(ErrorCodes.INTERNAL, 'the encoder was loaded without the features output');
    t2 = performance.now();
    captions = await decodeFeatures(models, features, good.length, search);
  }
  const t3 = performance.now();
  const share = (ms: number) => round2(ms / Math.max(1, good.length));
  const timings: CaptionTimings = { preprocessMs: share(t1 - startedAt), encoderMs: share(t2 - t1), decoderMs: share(t3 - t2), totalMs: share(t3 - startedAt) };
  const captionsOf = new Map(good.map((g, j) => [g.i, captions[j]]));
  return loaded.map((r, i): CaptionOutcome => {
    if (!r.ok) return { source: r.source, error: r.error.toJSON() };
    const { source, format, width, height } = r.image;
    return { source, image: { format, width, height }, captions: captionsOf.get(i)!, timings: { ...timings } };
  });
}

function toCaption(h: Hypothesis): Caption {
  const tokens = h.words ?? h.tokens.map(String);
  const caption: Caption = { text: tokens.join(' '), tokens, score: h.score, logProb: h.logProb };
  if (h.alphas) caption.attention = h.alphas.map((a) => Array.from(a));
  return caption;
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}
