/**
 * The library's captioning API: images (paths or buffers) → ResNet50 features → beam search over the
 * ONNX decoder → captions, in batches, with a per-image error slot so one bad file never fails the rest.
 */
import { resolveInt8Decoder, type Int8Choice } from '../decoder/precision.js';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ImageEncoder, type EncoderPrecision, type EncoderPrecisionChoice } from '../encoder/index.js';
import type { ImageLimits } from '../image/index.js';
import { loadImagesSettled } from '../backend/image.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { loadDecoder, readModelDir, type ModelCard, type ModelDirContents } from '../decoder/model-dir.js';
import { finetunedEncoderOf } from '../decoder/model-card.js';
import { checkSameVocabulary, EnsembleStepModel, type EnsembleCombine } from '../decoder/ensemble.js';
import { defaultMatcherDir, defaultModelDir, resolveModelSpec } from './models.js';
import type { LoadedDecoder } from '../decoder/registry.js';
import { resolveGeneration, type GenerationConfig } from '../decoder/generation.js';
import type { Vocabulary } from '../text/vocabulary.js';
import { tagsFromLogits, type ImageTag } from '../encoder/tags.js';
import { loadMatcher, type OnnxMatcher } from '../match/matcher.js';
import { scorePairs } from '../match/score.js';
import type { MatchCalibration, MatchScore } from '../match/types.js';
import {
  caffeBatch,
  captionLoaded,
  checkGeometry,
  encodeFeatures,
  decodeFeatures,
  isCaptionFailure,
  resolveMatchOptions,
  scoreCaptions,
  type Caption,
  type MatchOptions,
  type CaptionOptions,
  type CaptionOutcome,
  type CaptionResult,
  type CaptionModels,
} from './core.js';

export {
  PACKAGE_ROOT,
  DEFAULT_MODEL,
  DEFAULT_MODEL_NAME,
  DEFAULT_MATCHER_NAME,
  defaultModelDir,
  defaultMatcherDir,
  resolveModelSpec,
} from './models.js';

/** Which matcher a captioner has (e.g. to key stored embeddings by model). */
export interface MatcherInfo {
  /** The matcher card's name, else its folder's. */
  name: string;
  /** Embedding size. */
  dim: number;
  /** Absolute path of the matcher directory. */
  dir: string;
  /** The card's calibration: logit = a·cosine + b, score = sigmoid(logit). */
  calibration: MatchCalibration;
}

export interface CaptionerOptions {
  /**
   * Decoder model directory (docs/formats.md), a shipped model's name (`flickr8k-sat`), or several of them (an array
   * or a comma-separated string): an ensemble, whose members' next-word distributions are combined at every step
   * (src/decoder/ensemble.ts). Default: defaultModelDir().
   */
  modelDir?: string | readonly string[];
  /** Ensembles: how the members' distributions combine (default 'mean-prob') and their weights (default equal). */
  ensembleCombine?: EnsembleCombine;
  ensembleWeights?: readonly number[];
  /** onnxruntime intra-op threads for the encoder and the decoder; default all cores. */
  threads?: number;
  /** A loaded encoder to share (it is not released by release()); default: one loaded for this captioner. */
  encoder?: ImageEncoder;
  /** The encoder's precision when the captioner loads it: 'fp32', 'int8' or 'auto' (default; src/encoder/int8.ts). */
  encoderPrecision?: EncoderPrecisionChoice;
  /** Limits on input images (bytes, pixels). */
  limits?: ImageLimits;
  /** Images per encoder call and per decoder search. Default 8. */
  batchSize?: number;
  /**
   * int8 weights for the decoder's dense layers (about 2x faster steps). Default 'auto': on in Node when the model
   * card records that int8 passed its val quality gate (src/decoder/precision.ts); true / false force it.
   */
  int8Decoder?: Int8Choice;
  /**
   * Image–text matcher directory (docs/formats.md): gives captions a `confidence`, `match`, `embedTexts`,
   * `rerank: 'match'` and `returnEmbedding`. Default: defaultMatcherDir() when that directory exists (no matcher
   * when it does not; a warning and no matcher when it does not load). A directory given here (or in
   * $PIXEL_INFO_MATCHER_DIR) must exist and load.
   */
  matcherDir?: string;
  /** false: load no matcher, even when one is there. */
  matcher?: boolean;
}

export {
  isCaptionFailure,
  type CaptionOptions,
  type Caption,
  type CaptionTimings,
  type CaptionResult,
  type CaptionFailure,
  type CaptionOutcome,
  type MatchOptions,
} from './core.js';
export type { MatchScore } from '../match/types.js';

/** The fine-tuned encoder that decoder model directories require (their cards' `encoder.finetuned`). */
export interface RequiredEncoder {
  /** Absolute path of the encoder file (in the first directory that names it). */
  path: string;
  sha256: string;
  /** The model directory it is in. */
  dir: string;
}

/**
 * The fine-tuned encoder the decoders need, or null when they run on the product's (base) encoder. The decoders
 * of an ensemble read the same features, so they must agree: all on the same fine-tuned encoder (same sha256), or
 * all on the base one; otherwise INVALID_ARGUMENT naming them.
 */
export function requiredEncoderOf(models: readonly Pick<ModelDirContents, 'dir' | 'card'>[]): RequiredEncoder | null {
  const needs = models.map((m) => {
    const entry = finetunedEncoderOf(m.card);
    return entry ? { path: join(m.dir, entry.file), sha256: entry.sha256, dir: m.dir } : null;
  });
  const first = needs[0] ?? null;
  const describe = (need: RequiredEncoder | null, dir: string) =>
    need ? `${dir} runs on its fine-tuned encoder ${need.path} (sha256 ${need.sha256.slice(0, 12)}…)` : `${dir} runs on the base encoder`;
  const odd = needs.findIndex((n) => (n?.sha256 ?? null) !== (first?.sha256 ?? null));
  if (odd > 0) {
    throw new PixelInfoError(
      ErrorCodes.INVALID_ARGUMENT,
      `the ensemble's decoders were trained on the features of different encoders: ${describe(first, models[0].dir)}, but ${describe(needs[odd], models[odd].dir)}; ` +
        'an ensemble combines decoders of one encoder',
      { subject: models[odd].dir },
    );
  }
  return first;
}

export class Captioner {
  private constructor(
    private readonly decoder: LoadedDecoder,
    private readonly encoder: ImageEncoder,
    private readonly ownsEncoder: boolean,
    /** The decoder directories, absolute: one, or an ensemble's members in order. */
    readonly modelDirs: readonly string[],
    readonly vocabulary: Vocabulary,
    private readonly modelCard: ModelCard,
    private readonly options: CaptionerOptions,
    private readonly matcher: OnnxMatcher | undefined,
    private readonly int8Members: readonly boolean[],
  ) {}

  /** The (first) decoder directory, absolute; an ensemble's are `modelDirs`. */
  get modelDir(): string {
    return this.modelDirs[0];
  }

  static async load(options: CaptionerOptions = {}): Promise<Captioner> {
    const batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `batchSize must be a positive integer, got ${batchSize}`);
    }
    // The decoders first: a missing model fails fast, before the encoder is converted or loaded.
    const dirs = resolveModelSpec(options.modelDir ?? defaultModelDir());
    const models: ModelDirContents[] = [];
    for (const dir of dirs) models.push(await readModelDir(dir));
    checkSameVocabulary(models.map((m) => m.vocabulary), models.map((m) => m.dir));
    // A decoder fine-tuned with its encoder runs on that encoder's features (docs/formats.md, "Decoder model directory").
    const required = requiredEncoderOf(models);
    Captioner.checkEncoderChoice(options, required, models[0]);
    const int8s = models.map((m) => resolveInt8Decoder(options.int8Decoder, m.card));
    const members: LoadedDecoder[] = [];
    let decoder: LoadedDecoder;
    try {
      for (let k = 0; k < models.length; k++) members.push(await loadDecoder(models[k], { threads: options.threads, int8: int8s[k] }));
      decoder =
        members.length === 1
          ? members[0]
          : new EnsembleStepModel(members, { combine: options.ensembleCombine, weights: options.ensembleWeights, names: models.map((m) => m.dir) });
    } catch (err) {
      await Promise.all(members.map((m) => m.release()));
      throw err;
    }
    const model = models[0];
    let encoder = options.encoder;
    let matcher: OnnxMatcher | undefined;
    try {
      encoder ??= await ImageEncoder.load({
        threads: options.threads,
        outputs: ['features'],
        precision: options.encoderPrecision,
        ...(required && { modelFile: required.path, modelSha256: required.sha256 }),
      });
      checkGeometry(decoder, encoder.geometry, model.dir);
      matcher = await Captioner.loadMatcherFor(options, required);
      if (matcher && (matcher.regions !== encoder.geometry.regions || matcher.featureDim !== encoder.geometry.channels)) {
        const { regions, channels } = encoder.geometry;
        throw new PixelInfoError(
          ErrorCodes.MODEL_CORRUPT,
          `${matcher.dir}: the matcher reads ${matcher.regions} × ${matcher.featureDim} features, the encoder gives ${regions} × ${channels}`,
          { subject: matcher.dir },
        );
      }
    } catch (err) {
      await decoder.release();
      await matcher?.release();
      if (encoder && !options.encoder) await encoder.release();
      throw err;
    }
    const int8 = int8s.some(Boolean);
    return new Captioner(
      decoder,
      encoder,
      !options.encoder,
      models.map((m) => m.dir),
      model.vocabulary,
      model.card,
      { ...options, batchSize, int8Decoder: int8 },
      matcher,
      int8s,
    );
  }

  /**
   * The options' encoder against what the decoders need, before anything is loaded: a given encoder must be the
   * fine-tuned one the card names (by sha256), or, for a decoder of the base encoder, not an encoder file of
   * another model; a fine-tuned encoder takes no explicit matcher (the matcher reads the base encoder's features).
   */
  private static checkEncoderChoice(options: CaptionerOptions, required: RequiredEncoder | null, first: ModelDirContents): void {
    const given = options.encoder;
    if (given && required && given.modelSha256 !== required.sha256) {
      throw new PixelInfoError(
        ErrorCodes.INVALID_ARGUMENT,
        `${required.dir}: the decoder was trained on the features of its fine-tuned encoder ${required.path} (sha256 ${required.sha256.slice(0, 12)}…), ` +
          `but the encoder given runs ${given.modelPath ?? 'another graph'} (sha256 ${given.modelSha256?.slice(0, 12) ?? 'unknown'}…); ` +
          `pass no encoder (the captioner loads the fine-tuned one) or ImageEncoder.load({ modelFile, modelSha256 }) of that file`,
        { subject: required.path },
      );
    }
    if (given && !required && given.origin === 'file') {
      const baseSha = (first.card.architecture?.encoder as { modelSha256?: unknown } | null | undefined)?.modelSha256;
      if (given.modelSha256 !== baseSha) {
        throw new PixelInfoError(
          ErrorCodes.INVALID_ARGUMENT,
          `${first.dir}: the decoder was trained on the base encoder's features, but the encoder given runs ${given.modelPath} ` +
            `(sha256 ${given.modelSha256.slice(0, 12)}…); pass no encoder, or ImageEncoder.load() without modelFile`,
          { subject: given.modelPath },
        );
      }
    }
    const explicitMatcher = options.matcherDir !== undefined || Boolean(process.env.PIXEL_INFO_MATCHER_DIR);
    if (required && options.matcher !== false && explicitMatcher) {
      const from = options.matcherDir !== undefined ? resolve(options.matcherDir) : `${resolve(defaultMatcherDir())} (from $PIXEL_INFO_MATCHER_DIR)`;
      throw new PixelInfoError(
        ErrorCodes.INVALID_ARGUMENT,
        `the matcher ${from} cannot run with ${required.dir}: the matcher was trained on the base encoder's features, ` +
          `and this decoder runs on its fine-tuned encoder ${required.path}; load it without a matcher directory (or with matcher: false)`,
        { subject: options.matcherDir !== undefined ? resolve(options.matcherDir) : 'PIXEL_INFO_MATCHER_DIR' },
      );
    }
  }

  /**
   * The matcher the options ask for: none with matcher: false, or when the default directory does not exist; none,
   * with a warning, when the decoder runs on a fine-tuned encoder (the matcher reads the base encoder's features).
   */
  private static async loadMatcherFor(options: CaptionerOptions, required: RequiredEncoder | null = null): Promise<OnnxMatcher | undefined> {
    if (options.matcher === false) return undefined;
    const explicit = options.matcherDir !== undefined || Boolean(process.env.PIXEL_INFO_MATCHER_DIR);
    const dir = resolve(options.matcherDir ?? defaultMatcherDir());
    const isDir = (await stat(dir).catch(() => undefined))?.isDirectory() ?? false;
    if (required && !explicit) {
      // (an explicit one was refused by checkEncoderChoice)
      if (isDir) {
        process.emitWarning(
          `the matcher model at ${dir} is not loaded, so captions have no confidence: it was trained on the base encoder's features, ` +
            `and the decoder ${required.dir} runs on its fine-tuned encoder ${required.path}`,
          { code: 'PIXEL_INFO_MATCHER_ENCODER_MISMATCH' },
        );
      }
      return undefined;
    }
    if (!isDir) {
      if (!explicit) return undefined;
      const from = options.matcherDir !== undefined ? '' : ' (from $PIXEL_INFO_MATCHER_DIR)';
      throw new PixelInfoError(
        ErrorCodes.MODEL_NOT_FOUND,
        `no matcher model at ${dir}${from}: the directory does not exist (train one with python3 -m trainer.match, or pass --matcher DIR / matcherDir)`,
        { subject: dir },
      );
    }
    try {
      return await loadMatcher(dir, { threads: options.threads });
    } catch (err) {
      if (explicit || !(err instanceof PixelInfoError)) throw err;
      // The default matcher is an extra: when it is broken (or half-written), captions go on without confidence.
      process.emitWarning(`the matcher model at ${dir} cannot be loaded, so captions have no confidence: ${err.code}: ${err.message}`, {
        code: 'PIXEL_INFO_MATCHER_UNAVAILABLE',
      });
      return undefined;
    }
  }

  /**
   * Which encoder the decoder runs on: 'finetuned' when the model card names a fine-tuned encoder (`encoder.finetuned`,
   * the model directory's encoder.onnx), else 'base' (the product's ResNet50 from the model cache).
   */
  get encoderSource(): 'base' | 'finetuned' {
    return finetunedEncoderOf(this.modelCard) ? 'finetuned' : 'base';
  }

  /** SHA-256 of the encoder graph that runs (the fine-tuned file's, the cache's fp32 conversion's, or its int8 graph's). */
  get encoderSha256(): string {
    return this.encoder.modelSha256;
  }

  /** Which encoder graph runs (CaptionerOptions.encoderPrecision, resolved). */
  get encoderPrecision(): EncoderPrecision {
    return this.encoder.precision;
  }

  /** Whether the decoder runs with int8 weights (CaptionerOptions.int8Decoder, resolved); for an ensemble, any member. */
  get int8Decoder(): boolean {
    return this.options.int8Decoder === true;
  }

  /** Per decoder (one, or each ensemble member in `modelDirs` order): whether it runs with int8 weights. */
  get int8Decoders(): readonly boolean[] {
    return this.int8Members;
  }

  /** The loaded matcher's name, embedding size and folder; undefined when the captioner has none. */
  get matcherInfo(): MatcherInfo | undefined {
    const m = this.matcher;
    return m && { name: m.name, dim: m.dim, dir: m.dir, calibration: { ...m.calibration } };
  }

  /** The model card of the decoder (architecture, training data, metrics); an ensemble's first member's, whose decoding defaults it uses. */
  get card(): ModelCard {
    return this.modelCard;
  }

  /** One image: its result, or a PixelInfoError (bad file, too large, ...). */
  caption(input: string | Buffer, options?: CaptionOptions): Promise<CaptionResult>;
  /** Many images: one slot per input, in order; a bad image gets `{ source, error }` and the rest go on. */
  caption(inputs: ReadonlyArray<string | Buffer>, options?: CaptionOptions): Promise<CaptionOutcome[]>;
  async caption(input: string | Buffer | ReadonlyArray<string | Buffer>, options: CaptionOptions = {}): Promise<CaptionResult | CaptionOutcome[]> {
    const search = this.generationConfig(options); // bad options fail the call, not each image
    const match = resolveMatchOptions(options, this.matcher);
    if (typeof input === 'string' || Buffer.isBuffer(input)) {
      const [one] = await this.captionBatch([{ input, source: typeof input === 'string' ? input : '<buffer>' }], search, match);
      if (isCaptionFailure(one)) throw new PixelInfoError(one.error.code, one.error.message, { subject: one.source });
      return one;
    }
    if (!Array.isArray(input)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'caption expects a path, a Buffer or an array of them');
    const outcomes: CaptionOutcome[] = [];
    for await (const batch of this.captionBatches(input, options)) outcomes.push(...batch);
    return outcomes;
  }

  /**
   * Many images, one batch (batchSize images) at a time, in order: the outcomes of each batch as soon as it is
   * captioned. Reading, decoding and resizing the next batch (sharp, on libuv's threads) runs while this batch is
   * encoded and decoded, so the inference never waits for images it could have had; a batch's `preprocessMs` is the
   * time it still waited for its images.
   */
  async *captionBatches(inputs: ReadonlyArray<string | Buffer>, options: CaptionOptions = {}): AsyncGenerator<CaptionOutcome[]> {
    const search = this.generationConfig(options);
    const match = resolveMatchOptions(options, this.matcher);
    const items = inputs.map((x, i) => ({ input: x, source: typeof x === 'string' ? x : `<buffer ${i}>` }));
    const batchSize = this.options.batchSize!;
    const load = (start: number) => {
      const slice = items.slice(start, start + batchSize);
      return loadImagesSettled(
        slice.map((item) => item.input),
        { ...this.options.limits, names: slice.map((item) => item.source) },
      );
    };
    let next = items.length > 0 ? load(0) : undefined;
    for (let start = 0; next; start += batchSize) {
      const t0 = performance.now();
      const loaded = await next;
      next = start + batchSize < items.length ? load(start + batchSize) : undefined;
      yield await captionLoaded(this.models, loaded, search, t0, match);
    }
  }

  /**
   * Captions for features the caller already has (count × regions × channels), e.g. from a feature store: per
   * image, nBest captions (with `confidence` and `rerank` when there is a matcher; returnEmbedding does not apply).
   * Guided decoding (tagBonus > 0) takes the images' tags from `logits` (count × 1000, the encoder's ImageNet logits of
   * the same images) when given, else from the features through the encoder's classifier head (ImageEncoder
   * classifierHead: the same GlobalAveragePool + Dense), so features give the captions their images give.
   */
  async captionFeatures(features: Float32Array, count: number, options: CaptionOptions = {}, logits?: Float32Array): Promise<Caption[][]> {
    const search = this.generationConfig(options);
    const match = resolveMatchOptions(options, this.matcher);
    if (!logits && search.tagBonus > 0 && count > 0 && typeof this.encoder.classifierHead === 'function') {
      logits = (await this.encoder.classifierHead()).logitsFromFeatures(features, count);
    }
    const tags = logits && count > 0 ? tagsFromLogits(logits, count, search.tagThreshold) : undefined;
    const captions = await this.decode(features, count, search, tags);
    if (this.matcher && count > 0) await scoreCaptions(this.matcher, features, captions, match);
    return captions;
  }

  /**
   * How well each sentence describes the image: MatchScore per text, in order (score in [0, 1], logit, cosine).
   * The image is read, encoded and embedded once. MODEL_NOT_FOUND without a matcher; a bad image is its
   * PixelInfoError (FILE_NOT_FOUND, NOT_AN_IMAGE, ...).
   */
  async match(image: string | Buffer, texts: readonly string[]): Promise<MatchScore[]> {
    const matcher = this.requireMatcher('match');
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'match expects an array of sentences (strings)');
    }
    const source = typeof image === 'string' ? image : '<buffer>';
    const [loaded] = await loadImagesSettled([image], { ...this.options.limits, names: [source] });
    if (!loaded.ok) throw loaded.error;
    const features = await encodeFeatures(this.encoder, caffeBatch([loaded.image]), 1);
    const [imageEmbedding, textEmbeddings] = await Promise.all([matcher.embedImages(features, 1), matcher.embedTexts(texts)]);
    return scorePairs(matcher, imageEmbedding, texts, textEmbeddings);
  }

  /** The matcher's sentence embeddings, unit length (dot product with a CaptionResult.embedding = cosine). MODEL_NOT_FOUND without a matcher. */
  async embedTexts(texts: readonly string[]): Promise<number[][]> {
    const matcher = this.requireMatcher('embedTexts');
    const flat = await matcher.embedTexts(texts);
    return texts.map((_, i) => Array.from(flat.subarray(i * matcher.dim, (i + 1) * matcher.dim)));
  }

  async release(): Promise<void> {
    await this.decoder.release();
    await this.matcher?.release();
    if (this.ownsEncoder) await this.encoder.release();
  }

  /** The settings a call runs with (call options > model card > defaults); bad options fail here, once per call. */
  generationConfig(options: CaptionOptions = {}): GenerationConfig {
    return resolveGeneration(options, this.modelCard.decoding);
  }

  private get models(): CaptionModels {
    return { encoder: this.encoder, decoder: this.decoder, vocabulary: this.vocabulary, matcher: this.matcher };
  }

  private requireMatcher(what: string): OnnxMatcher {
    if (this.matcher) return this.matcher;
    const reason =
      this.options.matcher === false
        ? 'it was loaded with matcher: false'
        : this.encoderSource === 'finetuned'
          ? "the decoder runs on a fine-tuned encoder, whose features the matcher (trained on the base encoder's) does not read"
          : `there is no matcher model at ${resolve(defaultMatcherDir())} (pass matcherDir)`;
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `${what} needs a matcher model: ${reason}`, { subject: what });
  }

  private decode(features: Float32Array, count: number, search: GenerationConfig, tags?: ImageTag[][]): Promise<Caption[][]> {
    return decodeFeatures(this.models, features, count, search, tags);
  }

  private async captionBatch(
    items: Array<{ input: string | Buffer; source: string }>,
    search: GenerationConfig,
    match: Required<MatchOptions>,
  ): Promise<CaptionOutcome[]> {
    const t0 = performance.now();
    const loaded = await loadImagesSettled(
      items.map((item) => item.input),
      { ...this.options.limits, names: items.map((item) => item.source) },
    );
    return captionLoaded(this.models, loaded, search, t0, match);
  }
}
