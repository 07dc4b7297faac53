/**
 * Evaluation of a decoder on a dataset split: caption every image of the split (from the images through the
 * encoder, or from a feature store made by the same encoder), score the captions against the split's
 * references with the COCO-toolkit metrics, and write results.json, references.json, metrics.json and
 * report.md into an output folder.
 *
 * Decoding is deterministic (fixed batches, fixed thread count, no sampling): two runs with the same
 * settings write byte-identical results.json files.
 */
import type { Int8Choice } from '../decoder/precision.js';
import type { EncoderPrecisionChoice } from '../encoder/int8.js';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { ImageEncoder, featureMapFloats } from '../encoder/index.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { Captioner, defaultModelDir, isCaptionFailure, requiredEncoderOf, resolveModelSpec } from '../pipeline/captioner.js';
import type { EnsembleCombine } from '../decoder/ensemble.js';
import type { GenerationConfig, GenerationOptions } from '../decoder/generation.js';
import { isDanglingEnding } from '../decoder/rules.js';
import { readModelDir } from '../decoder/model-dir.js';
import { loadDataset, type DatasetImage, type DatasetName, type Split } from '../data/datasets/index.js';
import { cocoImageIdOf, writeCocoAnnotations, writeCocoResults, writeJsonAtomic, type CocoImageId, type ReferenceEntry } from '../data/coco-format.js';
import { FeatureStoreReader } from '../data/feature-store.js';
import { checkSpiceInstall, defaultSpiceDir, evaluateCaptions, METRIC_NAMES, type MeteorMode, type MetricName, type SpiceOptions } from '../metrics/index.js';
import { pickExamples, writeReport, type ReportExample } from './report.js';
import { EVAL_SPLITS, type CaptionSlot, type EvalSplit, type EvaluationRecord } from './types.js';

export { EVAL_SPLITS, type EvalSplit, type EvaluationRecord, type FailedImage, type ResolvedDecoding } from './types.js';

export const ENCODER_MODEL_FILE = 'resnet50.onnx';

export interface EvaluateOptions {
  dataset: DatasetName;
  split: EvalSplit;
  /** Output folder (created). */
  out: string;
  /** Datasets folder: see resolveDataDir. */
  dataDir?: string;
  /** Decoder model spec (a directory, a shipped model's name, or an ensemble: src/pipeline/models.ts); default the packaged model. */
  modelDir?: string | readonly string[];
  /** Ensembles: how the members combine and their weights (Captioner's options). */
  ensembleCombine?: EnsembleCombine;
  ensembleWeights?: readonly number[];
  /** A feature store (`pixel-info features`) to read instead of running the encoder on the images. */
  features?: string;
  /** Decoding settings; what is left out comes from the model card, then the library defaults (src/decoder/generation.ts). */
  generation?: GenerationOptions;
  /** Only the first `limit` images of the split (in name order). */
  limit?: number;
  /** Images per encoder call and per beam search. Default 32. */
  batchSize?: number;
  /** onnxruntime intra-op threads; default all cores. */
  threads?: number;
  /** int8 decoder weights (Captioner's int8Decoder; default 'auto'). */
  int8Decoder?: Int8Choice;
  /** METEOR method (default auto: the toolkit's jar when Java and the jar are found, else native). */
  meteor?: MeteorMode;
  /** Also SPICE (the toolkit's jar; slow), in metrics.json, the report and the summary. Default off. */
  spice?: boolean | SpiceOptions;
  /** Example images in report.md; default 20. */
  examples?: number;
  /** The encoder's precision (ImageEncoder.load; default 'auto'). */
  encoderPrecision?: EncoderPrecisionChoice;
  /** The int8 encoder's card (default models/resnet50-int8/int8.json). */
  encoderInt8Card?: string;
  /** Encoder cache folder (default the user's cache). */
  encoderCacheDir?: string;
  onProgress?: (done: number, total: number, failed: number) => void;
}

export interface EvaluationRun {
  record: EvaluationRecord;
  out: string;
  files: { results: string; references: string; metrics: string; report: string };
}

/** Runs the whole evaluation and writes its files; see EvaluateOptions. */
export async function evaluateModel(options: EvaluateOptions): Promise<EvaluationRun> {
  const t0 = performance.now();
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalid(`batchSize must be a positive integer, got ${batchSize}`);
  if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 1)) throw invalid(`limit must be a positive integer, got ${options.limit}`);
  const exampleCount = options.examples ?? 20;
  if (!Number.isInteger(exampleCount) || exampleCount < 0) throw invalid(`examples must be an integer >= 0, got ${exampleCount}`);
  if (!(EVAL_SPLITS as readonly string[]).includes(options.split)) throw invalid(`unknown split '${options.split}' (expected ${EVAL_SPLITS.join(', ')})`);

  const dataset = await loadDataset(options.dataset, { dataDir: options.dataDir });
  let images = dataset.images.filter((image) => image.split === options.split);
  if (images.length === 0) throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${options.dataset} has no ${options.split} images`);
  if (options.limit !== undefined) images = images.slice(0, options.limit);

  // The model folder, the store and SPICE's jars are checked before anything heavy is loaded, so a wrong one is refused in a moment.
  const models: Awaited<ReturnType<typeof readModelDir>>[] = [];
  for (const dir of resolveModelSpec(options.modelDir ?? defaultModelDir())) models.push(await readModelDir(dir));
  // A decoder fine-tuned with its encoder (the card's encoder.finetuned) is evaluated on that encoder's features.
  const finetuned = requiredEncoderOf(models);
  if (options.spice) checkSpiceInstall((options.spice === true ? undefined : options.spice.dir) ?? defaultSpiceDir());
  const store = options.features ? openStore(options.features, options.dataset, images) : undefined;
  const encoder = await ImageEncoder.load({
    cacheDir: options.encoderCacheDir,
    threads: options.threads,
    outputs: ['features'],
    precision: options.encoderPrecision,
    int8Card: options.encoderInt8Card,
    ...(finetuned && { modelFile: finetuned.path, modelSha256: finetuned.sha256 }),
  });
  let captioner: Captioner | undefined;
  try {
    const encoderSha256 = encoder.modelSha256;
    if (store && store.index.encoder.modelSha256 !== encoderSha256) {
      const made = `${store.dir} was made by encoder ${store.index.encoder.modelSha256.slice(0, 12)}… (${store.index.encoder.source})`;
      throw new PixelInfoError(
        ErrorCodes.FEATURE_STORE_INVALID,
        finetuned
          ? `${made}, but the decoder ${finetuned.dir} was trained on the features of its fine-tuned encoder ${finetuned.path} ` +
              `(${encoderSha256.slice(0, 12)}…); evaluate it without --features (from the images, through that encoder)`
          : `${made}, but the cached encoder is ${encoderSha256.slice(0, 12)}… (${encoder.manifest.source}); ` +
              `extract the features again with \`pixel-info features\` or evaluate without --features`,
        { subject: store.dir },
      );
    }
    captioner = await Captioner.load({
      modelDir: options.modelDir ?? defaultModelDir(),
      ensembleCombine: options.ensembleCombine,
      ensembleWeights: options.ensembleWeights,
      encoder,
      threads: options.threads, batchSize, int8Decoder: options.int8Decoder });
    // One caption per image, with attention for the report; bad settings fail here, before any image is captioned.
    const decoding = captioner.generationConfig({ ...options.generation, nBest: 1, returnAttention: true });
    // The encoder the decoder was trained on: the fine-tuned one (which this run loaded, by its sha256), else the
    // card's architecture.encoder (features of the fp32 conversion; an int8 encoder is built from that same one).
    const cardEncoderSha = finetuned ? finetuned.sha256 : cardEncoderSha256(captioner.card);
    const fp32Sha256 = finetuned ? encoderSha256 : (encoder.manifest.files[ENCODER_MODEL_FILE]?.sha256 ?? '');
    if (cardEncoderSha && cardEncoderSha !== fp32Sha256) {
      process.emitWarning(`the model card says the decoder was trained on encoder ${cardEncoderSha.slice(0, 12)}…, but the cached encoder is ${encoderSha256.slice(0, 12)}…`);
    }
    const t1 = performance.now();

    options.onProgress?.(0, images.length, 0);
    const captions = store
      ? await captionFromStore(captioner, store, images, decoding, batchSize, options.onProgress)
      : await captionFromImages(captioner, images, decoding, batchSize, options.onProgress);
    const t2 = performance.now();

    // Score: the split's references of the images that got a caption, in dataset (name) order.
    const key = (id: CocoImageId) => JSON.stringify(id);
    const entries: ReferenceEntry[] = images.map((image) => ({ imageId: cocoImageIdOf(image), captions: image.captions, fileName: image.name }));
    const refs = new Map(entries.map((e) => [key(e.imageId), e.captions]));
    const candidates = new Map<string, string>();
    images.forEach((image, i) => {
      const c = captions[i];
      if ('caption' in c) candidates.set(key(cocoImageIdOf(image)), c.caption.text);
    });
    if (candidates.size === 0) throw new PixelInfoError(ErrorCodes.INTERNAL, 'no image could be captioned; nothing to score');
    const evaluation = await evaluateCaptions(refs, candidates, { meteor: options.meteor ?? 'auto', spice: options.spice });
    const t3 = performance.now();

    const out = resolve(options.out);
    await mkdir(out, { recursive: true });
    const files = {
      results: join(out, 'results.json'),
      references: join(out, 'references.json'),
      metrics: join(out, 'metrics.json'),
      report: join(out, 'report.md'),
    };
    await writeCocoResults(
      files.results,
      images.flatMap((image, i) => {
        const c = captions[i];
        return 'caption' in c ? [{ image_id: cocoImageIdOf(image), caption: c.caption.text }] : [];
      }),
    );
    await writeCocoAnnotations(files.references, entries, `${options.dataset} ${options.split} (Karpathy split) references`);

    const perImageIndex = new Map(evaluation.imageIds.map((id, i) => [id, i]));
    const scored = images.flatMap((image, i) => {
      const c = captions[i];
      return 'caption' in c ? [{ image, caption: c.caption }] : [];
    });
    const examples: ReportExample[] = pickExamples(scored.length, exampleCount).map((i) => {
      const { image, caption } = scored[i];
      const at = perImageIndex.get(key(cocoImageIdOf(image)))!;
      return {
        name: image.name,
        path: image.path,
        references: image.captions,
        caption,
        scores: Object.fromEntries(METRIC_NAMES.map((m) => [m, evaluation.perImage[m][at]])) as Record<MetricName, number>,
      };
    });

    const record: EvaluationRecord = {
      format: 'pixel-info-eval',
      version: 1,
      dataset: options.dataset,
      split: options.split,
      images: candidates.size,
      selected: images.length,
      failed: images.flatMap((image, i) => {
        const c = captions[i];
        return 'error' in c ? [{ name: image.name, error: c.error }] : [];
      }),
      metrics: {
        ...(Object.fromEntries(METRIC_NAMES.map((m) => [m, Number.isNaN(evaluation.scores[m]) ? null : evaluation.scores[m]])) as Record<MetricName, number | null>),
        ...(evaluation.spice ? { SPICE: Number.isNaN(evaluation.spice.score) ? null : evaluation.spice.score } : {}),
      },
      meteor: evaluation.meteorMethod,
      decoding,
      danglingEndings: scored.filter(({ caption }) => isDanglingEnding(caption.tokens, decoding.danglingWords)).length,
      input: store
        ? { source: 'features', featureStore: store.dir, encoderSha256: store.index.encoder.modelSha256, encoderSource: store.index.encoder.source }
        : { source: 'images', encoderSha256, encoderSource: encoder.manifest.source, encoderPrecision: encoder.precision },
      model: {
        dir: captioner.modelDir,
        name: typeof captioner.card.name === 'string' ? captioner.card.name : null,
        ...(captioner.modelDirs.length > 1 && { ensemble: { dirs: [...captioner.modelDirs], combine: options.ensembleCombine ?? 'mean-prob', weights: options.ensembleWeights ?? null } }),
        encoderSha256: cardEncoderSha,
        encoderMatches: cardEncoderSha ? cardEncoderSha === fp32Sha256 : null,
        int8Decoder: captioner.int8Decoder,
      },
      batchSize,
      threads: options.threads ?? 'all',
      cpus: availableParallelism(),
      seconds: { load: secs(t1 - t0), caption: secs(t2 - t1), score: secs(t3 - t2), write: 0, total: 0 },
      date: new Date().toISOString(),
      node: process.version,
    };
    await writeReport(out, record, examples);
    const t4 = performance.now();
    record.seconds.write = secs(t4 - t3);
    record.seconds.total = secs(t4 - t0);
    await writeJsonAtomic(files.metrics, record);
    return { record, out, files };
  } finally {
    await captioner?.release();
    await encoder.release();
  }
}

async function captionFromImages(
  captioner: Captioner,
  images: DatasetImage[],
  decoding: GenerationConfig,
  batchSize: number,
  onProgress: EvaluateOptions['onProgress'],
): Promise<CaptionSlot[]> {
  const slots: CaptionSlot[] = [];
  let failed = 0;
  for (let start = 0; start < images.length; start += batchSize) {
    const chunk = images.slice(start, start + batchSize);
    const outcomes = await captioner.caption(
      chunk.map((image) => image.path),
      decoding,
    );
    for (const outcome of outcomes) {
      if (isCaptionFailure(outcome)) {
        failed++;
        slots.push({ error: outcome.error });
      } else slots.push({ caption: outcome.captions[0] });
    }
    onProgress?.(slots.length, images.length, failed);
  }
  return slots;
}

async function captionFromStore(
  captioner: Captioner,
  store: FeatureStoreReader,
  images: DatasetImage[],
  decoding: GenerationConfig,
  batchSize: number,
  onProgress: EvaluateOptions['onProgress'],
): Promise<CaptionSlot[]> {
  const errorOf = new Map(store.index.images.flatMap((im) => (im.error ? [[im.name, im.error] as const] : [])));
  const slots: CaptionSlot[] = [];
  let failed = 0;
  const rowFloats = featureMapFloats(store.index); // one image's feature map
  const buffer = new Float32Array(batchSize * rowFloats);
  for (let start = 0; start < images.length; start += batchSize) {
    const chunk = images.slice(start, start + batchSize);
    const good = chunk.filter((image) => !errorOf.has(image.name));
    good.forEach((image, j) => buffer.set(store.read(image.name, 'spatial'), j * rowFloats));
    const captions = good.length ? await captioner.captionFeatures(buffer.subarray(0, good.length * rowFloats), good.length, decoding) : [];
    let j = 0;
    for (const image of chunk) {
      const error = errorOf.get(image.name);
      if (error) {
        failed++;
        slots.push({ error });
      } else slots.push({ caption: captions[j++][0] });
    }
    onProgress?.(slots.length, images.length, failed);
  }
  return slots;
}

/** Opens a feature store and checks that it is for this dataset and holds every selected image. */
function openStore(dir: string, dataset: DatasetName, images: DatasetImage[]): FeatureStoreReader {
  const store = new FeatureStoreReader(resolve(dir));
  if (store.index.dataset !== dataset) {
    throw new PixelInfoError(ErrorCodes.FEATURE_STORE_INVALID, `${store.dir} holds features of ${store.index.dataset}, not ${dataset}`, { subject: store.dir });
  }
  const rowOf = new Map(store.index.images.map((im, r) => [im.name, r]));
  const missing = images.filter((image) => !((rowOf.get(image.name) ?? Infinity) < store.index.done));
  if (missing.length) {
    throw new PixelInfoError(
      ErrorCodes.FEATURE_STORE_INVALID,
      `${store.dir} has no features for ${missing.length} of the ${images.length} images (e.g. ${missing[0].name}); finish it with \`pixel-info features\``,
      { subject: store.dir },
    );
  }
  return store;
}

function cardEncoderSha256(card: Record<string, unknown>): string | null {
  const architecture = card.architecture as { encoder?: { modelSha256?: unknown } } | undefined;
  const sha = architecture?.encoder?.modelSha256;
  return typeof sha === 'string' ? sha : null;
}

function invalid(message: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, message);
}

function secs(ms: number): number {
  return Math.round(ms) / 1000;
}
