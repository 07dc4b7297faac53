/**
 * The library's captioning API: images (paths or buffers) → ResNet50 features → beam search over the
 * ONNX decoder → captions, in batches, with a per-image error slot so one bad file never fails the rest.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageEncoder } from '../encoder/index.js';
import { loadImage, writeCaffeTensor, type ImageLimits, type LoadedImage } from '../image/index.js';
import { ErrorCodes, PixelInfoError, asPixelInfoError, type ErrorCode } from '../errors.js';
import { OnnxStepModel } from '../decoder/onnx-step-model.js';
import { readModelDir, type ModelCard } from '../decoder/model-dir.js';
import { beamSearch, resolveSearchOptions, type Hypothesis, type SearchOptions } from '../decoder/search.js';
import type { Vocabulary } from '../text/vocabulary.js';

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

export type CaptionOptions = Pick<SearchOptions, 'beamSize' | 'maxLength' | 'lengthPenalty' | 'nBest' | 'noRepeatNgram' | 'returnAttention'>;

export interface Caption {
  /** Words joined by spaces, lower case as the model writes them, no final period. */
  text: string;
  tokens: string[];
  /** The search's ranking score: logProb / (tokens + 1)^lengthPenalty. */
  score: number;
  /** Sum of the log-probabilities of the words and of <end>. */
  logProb: number;
  /** Per token, the 49 attention weights (7x7, row-major); only with returnAttention. */
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

export class Captioner {
  private constructor(
    private readonly decoder: OnnxStepModel,
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
    const decoder = await OnnxStepModel.load(model.dir, { threads: options.threads, vocabSize: model.vocabulary.size, int8: options.int8Decoder });
    let encoder = options.encoder;
    try {
      encoder ??= await ImageEncoder.load({ threads: options.threads, outputs: ['features'] });
    } catch (err) {
      await decoder.release();
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
    const search = this.searchOptions(options); // bad options fail the call, not each image
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

  /** Captions for features the caller already has (count × 49 × 2048), e.g. from a feature store: per image, nBest captions. */
  async captionFeatures(features: Float32Array, count: number, options: CaptionOptions = {}): Promise<Caption[][]> {
    return this.decode(features, count, this.searchOptions(options));
  }

  async release(): Promise<void> {
    await this.decoder.release();
    if (this.ownsEncoder) await this.encoder.release();
  }

  /** Call options over the model card's recommended decoding over the defaults; validated once per call. */
  private searchOptions(options: CaptionOptions): SearchOptions {
    const fromCard = this.modelCard.decoding ?? {};
    const picked: SearchOptions = {
      beamSize: options.beamSize ?? numberOrUndefined(fromCard.beamSize),
      maxLength: options.maxLength ?? numberOrUndefined(fromCard.maxLength),
      lengthPenalty: options.lengthPenalty ?? numberOrUndefined(fromCard.lengthPenalty),
      noRepeatNgram: options.noRepeatNgram ?? numberOrUndefined(fromCard.noRepeatNgram),
      nBest: options.nBest,
      returnAttention: options.returnAttention,
      vocabulary: this.vocabulary.words,
    };
    resolveSearchOptions(picked);
    return picked;
  }

  private async decode(features: Float32Array, count: number, search: SearchOptions): Promise<Caption[][]> {
    const hypotheses = await beamSearch(this.decoder, features, count, search);
    return hypotheses.map((list, i) => {
      if (list.length === 0) throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `the decoder gave no caption for image ${i} (non-finite log-probabilities?)`);
      return list.map(toCaption);
    });
  }

  private async captionBatch(items: Array<{ input: string | Buffer; source: string }>, search: SearchOptions): Promise<CaptionOutcome[]> {
    const t0 = performance.now();
    const loaded = await loadSettled(items, this.options.limits ?? {});
    const good = loaded.flatMap((r, i) => (r.ok ? [{ i, image: r.image }] : []));
    const batch = new Float32Array(good.length * ImageEncoder.imageFloats);
    good.forEach((g, j) => writeCaffeTensor(g.image.pixels, batch, j));
    const t1 = performance.now();
    let captions: Caption[][] = [];
    let t2 = t1;
    if (good.length) {
      const { features } = await this.encoder.encode(batch, good.length);
      if (!features) throw new PixelInfoError(ErrorCodes.INTERNAL, 'the encoder was loaded without the features output');
      t2 = performance.now();
      captions = await this.decode(features, good.length, search);
    }
    const t3 = performance.now();
    const share = (ms: number) => round2(ms / Math.max(1, good.length));
    const timings: CaptionTimings = { preprocessMs: share(t1 - t0), encoderMs: share(t2 - t1), decoderMs: share(t3 - t2), totalMs: share(t3 - t0) };
    const captionsOf = new Map(good.map((g, j) => [g.i, captions[j]]));
    return loaded.map((r, i): CaptionOutcome => {
      const source = items[i].source;
      if (!r.ok) return { source, error: r.error.toJSON() };
      const { format, width, height } = r.image;
      return { source, image: { format, width, height }, captions: captionsOf.get(i)!, timings: { ...timings } };
    });
  }
}

type Loaded = { ok: true; image: LoadedImage } | { ok: false; error: PixelInfoError };

/** Decodes images two at a time (the sharp pipelines are single-threaded; see src/image/batch.ts), in input order. */
async function loadSettled(items: Array<{ input: string | Buffer; source: string }>, limits: ImageLimits): Promise<Loaded[]> {
  const results: Loaded[] = new Array(items.length);
  let next = 0;
  const work = async () => {
    for (let i = next++; i < items.length; i = next++) {
      try {
        results[i] = { ok: true, image: await loadImage(items[i].input, { ...limits, name: items[i].source }) };
      } catch (err) {
        results[i] = { ok: false, error: asPixelInfoError(err, items[i].source) };
      }
    }
  };
  await Promise.all([work(), work()]);
  return results;
}

function toCaption(h: Hypothesis): Caption {
  const tokens = h.words ?? h.tokens.map(String);
  const caption: Caption = { text: tokens.join(' '), tokens, score: h.score, logProb: h.logProb };
  if (h.alphas) caption.attention = h.alphas.map((a) => Array.from(a));
  return caption;
}

function numberOrUndefined(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}
