/**
 * The library's captioning API: images (paths or buffers) → ResNet50 features → beam search over the
 * ONNX decoder → captions, in batches, with a per-image error slot so one bad file never fails the rest.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageEncoder } from '../encoder/index.js';
import type { ImageLimits } from '../image/index.js';
import { loadImagesSettled } from '../backend/image.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { loadDecoder, readModelDir, type ModelCard } from '../decoder/model-dir.js';
import type { LoadedDecoder } from '../decoder/registry.js';
import { resolveGeneration, type GenerationConfig } from '../decoder/generation.js';
import type { Vocabulary } from '../text/vocabulary.js';
import {
  captionLoaded,
  checkGeometry,
  decodeFeatures,
  isCaptionFailure,
  type Caption,
  type CaptionOptions,
  type CaptionOutcome,
  type CaptionResult,
  type CaptionModels,
} from './core.js';

/** <package root>/models/flickr8k-sat; the same from src/pipeline (tsx) and dist/pipeline (built). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_MODEL_NAME = 'flickr8k-sat';

/** $PIXEL_INFO_MODEL_DIR, else the model shipped in the package. */
export function defaultModelDir(): string {
  return process.env.PIXEL_INFO_MODEL_DIR || join(PACKAGE_ROOT, 'models', DEFAULT_MODEL_NAME);
}

export interface CaptionerOptions {
  /** Decoder model directory (docs/formats.md). Default: defaultModelDir(). */
  modelDir?: string;
  /** onnxruntime intra-op threads for the encoder and the decoder; default all cores. */
  threads?: number;
  /** A loaded encoder to share (it is not released by release()); default: one loaded for this captioner. */
  encoder?: ImageEncoder;
  /** Limits on input images (bytes, pixels). */
  limits?: ImageLimits;
  /** Images per encoder call and per decoder search. Default 8. */
  batchSize?: number;
  /** int8 weights for the decoder's dense layers: ~2x faster steps; val CIDEr 0.586 vs 0.587 (fp32). Default false. */
  int8Decoder?: boolean;
}

export {
  isCaptionFailure,
  type CaptionOptions,
  type Caption,
  type CaptionTimings,
  type CaptionResult,
  type CaptionFailure,
  type CaptionOutcome,
} from './core.js';

export class Captioner {
  private constructor(
    private readonly decoder: LoadedDecoder,
    private readonly encoder: ImageEncoder,
    private readonly ownsEncoder: boolean,
    readonly modelDir: string,
    readonly vocabulary: Vocabulary,
    private readonly modelCard: ModelCard,
    private readonly options: CaptionerOptions,
  ) {}

  static async load(options: CaptionerOptions = {}): Promise<Captioner> {
    const batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `batchSize must be a positive integer, got ${batchSize}`);
    }
    // The decoder first: a missing model fails fast, before the encoder is converted or loaded.
    const model = await readModelDir(options.modelDir ?? defaultModelDir());
    const decoder = await loadDecoder(model, { threads: options.threads, int8: options.int8Decoder });
    let encoder = options.encoder;
    try {
      encoder ??= await ImageEncoder.load({ threads: options.threads, outputs: ['features'] });
      checkGeometry(decoder, encoder.geometry, model.dir);
    } catch (err) {
      await decoder.release();
      if (encoder && !options.encoder) await encoder.release();
      throw err;
    }
    return new Captioner(decoder, encoder, !options.encoder, model.dir, model.vocabulary, model.card, { ...options, batchSize });
  }

  /** The model card of the decoder (architecture, training data, metrics). */
  get card(): ModelCard {
    return this.modelCard;
  }

  /** One image: its result, or a PixelInfoError (bad file, too large, ...). */
  caption(input: string | Buffer, options?: CaptionOptions): Promise<CaptionResult>;
  /** Many images: one slot per input, in order; a bad image gets `{ source, error }` and the rest go on. */
  caption(inputs: ReadonlyArray<string | Buffer>, options?: CaptionOptions): Promise<CaptionOutcome[]>;
  async caption(input: string | Buffer | ReadonlyArray<string | Buffer>, options: CaptionOptions = {}): Promise<CaptionResult | CaptionOutcome[]> {
    const search = this.generationConfig(options); // bad options fail the call, not each image
    if (typeof input === 'string' || Buffer.isBuffer(input)) {
      const [one] = await this.captionBatch([{ input, source: typeof input === 'string' ? input : '<buffer>' }], search);
      if (isCaptionFailure(one)) throw new PixelInfoError(one.error.code, one.error.message, { subject: one.source });
      return one;
    }
    if (!Array.isArray(input)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'caption expects a path, a Buffer or an array of them');
    const items = input.map((x, i) => ({ input: x, source: typeof x === 'string' ? x : `<buffer ${i}>` }));
    const outcomes: CaptionOutcome[] = [];
    const batchSize = this.options.batchSize!;
    for (let start = 0; start < items.length; start += batchSize) {
      outcomes.push(...(await this.captionBatch(items.slice(start, start + batchSize), search)));
    }
    return outcomes;
  }

  /** Captions for features the caller already has (count × regions × channels), e.g. from a feature store: per image, nBest captions. */
  async captionFeatures(features: Float32Array, count: number, options: CaptionOptions = {}): Promise<Caption[][]> {
    return this.decode(features, count, this.generationConfig(options));
  }

  async release(): Promise<void> {
    await this.decoder.release();
    if (this.ownsEncoder) await this.encoder.release();
  }

  /** The settings a call runs with (call options > model card > defaults); bad options fail here, once per call. */
  generationConfig(options: CaptionOptions = {}): GenerationConfig {
    return resolveGeneration(options, this.modelCard.decoding);
  }

  private get models(): CaptionModels {
    return { encoder: this.encoder, decoder: this.decoder, vocabulary: this.vocabulary };
  }

  private decode(features: Float32Array, count: number, search: GenerationConfig): Promise<Caption[][]> {
    return decodeFeatures(this.models, features, count, search);
  }

  private async captionBatch(items: Array<{ input: string | Buffer; source: string }>, search: GenerationConfig): Promise<CaptionOutcome[]> {
    const t0 = performance.now();
    const loaded = await loadImagesSettled(
      items.map((item) => item.input),
      { ...this.options.limits, names: items.map((item) => item.source) },
    );
    return captionLoaded(this.models, loaded, search, t0);
  }
}
