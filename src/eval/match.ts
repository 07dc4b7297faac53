/**
 * `pixel-info eval-match`: how well an image–text matcher (src/match) does on a dataset split.
 *
 * 1. Retrieval over the split (VSE++ protocol, ./match-metrics.ts): text → image and image → text R@1/5/10 and
 *    median rank, every image of the split against every caption of the split.
 * 2. Agreement with people on Flickr8k's CrowdFlower judgments (./match-crowdflower.ts): Kendall tau-b × 100 of
 *    (a) the matcher's score and (b) the captioning decoder's teacher-forced likelihood (mean per-token
 *    log-probability of the caption and <end>, src/decoder/likelihood.ts) against the fraction of "yes", on all
 *    rows and on the rows whose image and caption source image are both outside the train split; beside them the
 *    published figures for the same file (Hessel et al. 2021). Rows whose image has no features are counted and
 *    skipped, as are rows whose caption id is not in Flickr8k.token.txt.
 * 3. Calibration on the split: the labelled pairs of buildCalibrationPairs (own captions and random (optionally hard)
 *    negatives), a 10-bin reliability table of the matcher's score and the expected calibration error.
 *
 * Image features come from a feature store (`pixel-info features`) or, without one, from the encoder run on the
 * images into a temporary store that is deleted afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ImageEncoder, featureMapFloats } from '../encoder/index.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { loadDataset, type DatasetName, type Split } from '../data/datasets/index.js';
import { FeatureStoreReader } from '../data/feature-store.js';
import { extractFeatures } from '../data/extract-features.js';
import { loadDecoder, readModelDir } from '../decoder/model-dir.js';
import { captionLogProbs, type TeacherForcedRow } from '../decoder/likelihood.js';
import { loadMatcher, calibrate } from '../match/matcher.js';
import { defaultMatcherDir, defaultModelDir } from '../pipeline/captioner.js';
import { ptbTokenizeLines } from '../text/ptb.js';
import { kendallTauB } from '../metrics/kendall.js';
import {
  CALIBRATION_PAIRS_SEED,
  buildCalibrationPairs,
  reliability,
  retrievalRecall,
  similarityMatrix,
  type ReliabilityBin,
  type RetrievalScores,
} from './match-metrics.js';
import { PUBLISHED_CROWDFLOWER_TAU_B, readCrowdFlower, type CrowdFlowerRow } from './match-crowdflower.js';

export const MATCH_SPLITS = ['test', 'val'] as const;
export type MatchSplit = (typeof MATCH_SPLITS)[number];

export type MatchStage = 'features' | 'images' | 'texts' | 'likelihood';

export interface EvalMatchOptions {
  dataset: DatasetName;
  split: MatchSplit;
  /** Datasets folder: see resolveDataDir. */
  dataDir?: string;
  /** A feature store (`pixel-info features`) to read instead of running the encoder on the images. */
  features?: string;
  /** Matcher model directory; default defaultMatcherDir() ($PIXEL_INFO_MATCHER_DIR, else models/flickr8k-match). */
  matcherDir?: string;
  /** Captioning decoder for the likelihood; default the packaged model. */
  modelDir?: string;
  /** Teacher-forced decoder likelihood on the CrowdFlower rows (the slow part); default true. */
  likelihood?: boolean;
  /** Only the first `limit` images of the split (by name) and the CrowdFlower rows of the first `limit` of its images. */
  limit?: number;
  /** Images per matcher call (and per encoder call without a store). Default 32. */
  batchSize?: number;
  /** Caption rows per teacher-forced batch (one decoder step call per time step). Default 128. */
  likelihoodBatch?: number;
  /** onnxruntime intra-op threads; default all cores. */
  threads?: number;
  /** Seed of the calibration pairs; default CALIBRATION_PAIRS_SEED. */
  seed?: number;
  /** Encoder cache folder (without a store). */
  encoderCacheDir?: string;
  onProgress?: (stage: MatchStage, done: number, total: number) => void;
}

export interface TauResult {
  /** Kendall tau-b × 100; null when it is undefined (fewer than 2 rows, or a constant side). */
  tauB100: number | null;
  rows: number;
}

/** metrics.json of `eval-match`. */
export interface MatchEvaluationRecord {
  format: 'pixel-info-eval-match';
  version: 1;
  dataset: DatasetName;
  split: MatchSplit;
  matcher: { dir: string; name: string; embeddingDim: number; calibration: { a: number; b: number; meaning: string | null; fittedOn: string | null; ece: number | null } };
  decoder: { dir: string; name: string | null } | null;
  input: { source: 'features' | 'images'; featureStore: string | null; encoderSha256: string; encoderSource: string };
  retrieval: RetrievalScores & {
    /** Images and captions ranked. */
    images: number;
    texts: number;
    /** Images of the split selected (after --limit) whose features could not be made: left out. */
    skippedImages: Array<{ name: string; error: { code: string; message: string } }>;
  };
  agreement: {
    file: string;
    /** Rows in the file, rows selected (after --limit), rows scored. */
    rows: number;
    selected: number;
    used: number;
    skipped: { missingImage: number; missingCaption: number };
    /** Distinct images of the rows scored. */
    images: number;
    /** Against the fraction of "yes". */
    matcher: TauResult;
    likelihood: TauResult | null;
    /** Rows whose image and caption source image are both outside the train split. */
    outsideTrain: { rows: number; matcher: TauResult; likelihood: TauResult | null };
    /** The mean per-token log-probability over the rows (likelihood only). */
    meanLogProb: number | null;
    published: { citation: string; values: Readonly<Record<string, number>> };
  } | null;
  calibration: {
    seed: number;
    pairs: number;
    positives: number;
    randomNegatives: number;
    hardNegatives: number;
    bins: ReliabilityBin[];
    ece: number;
    meanScore: number;
    rate: number;
  };
  settings: { limit: number | null; batchSize: number; likelihoodBatch: number; threads: number | 'all'; cpus: number };
  /** Loading and features; matcher embeddings, retrieval and calibration; agreement (likelihood included); all. */
  seconds: { features: number; matcher: number; agreement: number; total: number };
  date: string;
  node: string;
}

/** Features of images by name, from a store: `status` says whether an image has a row. */
interface FeatureSource {
  reader: FeatureStoreReader;
  rowFloats: number;
  errorOf(name: string): { code: string; message: string } | undefined;
  /** rows [names.length, regions × channels]. */
  read(names: readonly string[]): Float32Array;
}

function openFeatureSource(reader: FeatureStoreReader): FeatureSource {
  const rowOf = new Map(reader.index.images.map((im, r) => [im.name, r]));
  const errors = new Map(reader.index.images.flatMap((im) => (im.error ? [[im.name, im.error] as const] : [])));
  const rowFloats = featureMapFloats(reader.index);
  return {
    reader,
    rowFloats,
    errorOf(name) {
      const row = rowOf.get(name);
      if (row === undefined || row >= reader.index.done) return { code: ErrorCodes.FEATURE_STORE_INVALID, message: `${name} has no features in ${reader.dir}` };
      return errors.get(name);
    },
    read(names) {
      const out = new Float32Array(names.length * rowFloats);
      names.forEach((name, i) => out.set(reader.read(name, 'spatial'), i * rowFloats));
      return out;
    },
  };
}

/** Runs the whole evaluation; see the module comment. Writes nothing (writeMatchOutputs does). */
export async function evaluateMatcher(options: EvalMatchOptions): Promise<MatchEvaluationRecord> {
  const t0 = performance.now();
  const batchSize = options.batchSize ?? 32;
  const likelihoodBatch = options.likelihoodBatch ?? 128;
  for (const [name, v] of [['batchSize', batchSize], ['likelihoodBatch', likelihoodBatch], ['limit', options.limit ?? 1]] as const) {
    if (!Number.isInteger(v) || v < 1) throw invalid(`${name} must be a positive integer, got ${v}`);
  }
  if (!(MATCH_SPLITS as readonly string[]).includes(options.split)) throw invalid(`unknown split '${options.split}' (expected ${MATCH_SPLITS.join(', ')})`);
  const seed = options.seed ?? CALIBRATION_PAIRS_SEED;
  const withLikelihood = options.likelihood ?? true;
  const progress = options.onProgress ?? (() => undefined);

  const dataset = await loadDataset(options.dataset, { dataDir: options.dataDir });
  const splitOf = new Map<string, Split>(dataset.images.map((im) => [im.name, im.split]));
  let images = dataset.images.filter((im) => im.split === options.split);
  if (images.length === 0) throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${options.dataset} has no ${options.split} images`);
  if (options.limit !== undefined) images = images.slice(0, options.limit);

  // CrowdFlower judgments (Flickr8k only): rows of the first `limit` judged images when limited.
  const crowd = options.dataset === 'flickr8k' ? await readCrowdFlower(dataset.root) : null;
  let crowdRows: CrowdFlowerRow[] = [];
  if (crowd) {
    crowdRows = crowd.rows;
    if (options.limit !== undefined) {
      const keep = new Set([...new Set(crowd.rows.map((r) => r.image))].sort(compareNames).slice(0, options.limit));
      crowdRows = crowd.rows.filter((r) => keep.has(r.image));
    }
  }

  // Models first: a wrong folder is refused before any feature is made.
  const matcherDir = resolve(options.matcherDir ?? defaultMatcherDir());
  const decoderModel = withLikelihood && crowd ? await readModelDir(options.modelDir ?? defaultModelDir()) : undefined;
  const matcher = await loadMatcher(matcherDir, { threads: options.threads });
  let tmpStore: string | undefined;
  try {
    // Features: the store given, or one made now for the images needed.
    let reader: FeatureStoreReader;
    let encoderSource: string;
    if (options.features) {
      reader = new FeatureStoreReader(resolve(options.features));
      if (reader.index.dataset !== options.dataset) {
        throw new PixelInfoError(ErrorCodes.FEATURE_STORE_INVALID, `${reader.dir} holds features of ${reader.index.dataset}, not ${options.dataset}`, { subject: reader.dir });
      }
      const rowOf = new Map(reader.index.images.map((im, r) => [im.name, r]));
      const missing = images.filter((im) => !((rowOf.get(im.name) ?? Infinity) < reader.index.done));
      if (missing.length) {
        throw new PixelInfoError(
          ErrorCodes.FEATURE_STORE_INVALID,
          `${reader.dir} has no features for ${missing.length} of the ${images.length} ${options.split} images (e.g. ${missing[0].name}); finish it with \`pixel-info features\``,
          { subject: reader.dir },
        );
      }
      encoderSource = reader.index.encoder.source;
    } else {
      const names = [...new Set([...images.map((im) => im.name), ...crowdRows.map((r) => r.image)])].sort(compareNames);
      tmpStore = await mkdtemp(join(tmpdir(), 'pixel-info-eval-match-'));
      const encoder = await ImageEncoder.load({ cacheDir: options.encoderCacheDir, threads: options.threads, outputs: ['features', 'pooled'] });
      try {
        const sha = encoder.modelSha256;
        await extractFeatures({
          storeDir: tmpStore,
          dataset: options.dataset,
          imageDir: dataset.imageDir,
          imageNames: names,
          encoder,
          encoderInfo: { name: 'resnet50-imagenet', source: encoder.manifest.source, modelSha256: sha },
          batchSize,
          onProgress: (done, total) => progress('features', done, total),
        });
        encoderSource = encoder.manifest.source;
      } finally {
        await encoder.release();
      }
      reader = new FeatureStoreReader(tmpStore);
    }
    const features = openFeatureSource(reader);
    const decoderEncoder = (decoderModel?.card.architecture as { encoder?: { modelSha256?: unknown } } | undefined)?.encoder?.modelSha256;
    if (typeof decoderEncoder === 'string' && decoderEncoder !== reader.index.encoder.modelSha256) {
      process.emitWarning(`the decoder was trained on encoder ${decoderEncoder.slice(0, 12)}…, but the features come from ${reader.index.encoder.modelSha256.slice(0, 12)}…`);
    }
    if (matcher.regions * matcher.featureDim !== features.rowFloats) {
      throw new PixelInfoError(
        ErrorCodes.MODEL_CORRUPT,
        `${matcherDir}: the matcher reads ${matcher.regions} × ${matcher.featureDim} features, the store holds ${reader.index.regions} × ${reader.index.channels}`,
        { subject: matcherDir },
      );
    }
    const t1 = performance.now();

    // --- matcher embeddings: the split's images and the judged images, then the texts.
    const skippedImages = images.flatMap((im) => {
      const error = features.errorOf(im.name);
      return error ? [{ name: im.name, error }] : [];
    });
    const ranked = images.filter((im) => !features.errorOf(im.name));
    if (ranked.length === 0) throw new PixelInfoError(ErrorCodes.INTERNAL, `no ${options.split} image has features; nothing to evaluate`);
    const usableCrowdImages = [...new Set(crowdRows.map((r) => r.image))].filter((name) => !features.errorOf(name));
    const embedNames = [...new Set([...ranked.map((im) => im.name), ...usableCrowdImages])];
    const D = matcher.dim;
    const imageEmbeddings = new Float32Array(embedNames.length * D);
    const imageRow = new Map(embedNames.map((name, i) => [name, i]));
    progress('images', 0, embedNames.length);
    for (let start = 0; start < embedNames.length; start += batchSize) {
      const chunk = embedNames.slice(start, start + batchSize);
      imageEmbeddings.set(await matcher.embedImages(features.read(chunk), chunk.length), start * D);
      progress('images', start + chunk.length, embedNames.length);
    }

    // Split texts: each image's captions in order; then the judged captions (distinct ids).
    const splitTexts = ranked.flatMap((im) => im.captions);
    const textImage = Int32Array.from(ranked.flatMap((im, i) => im.captions.map(() => i)));
    const crowdIds = [...new Set(crowdRows.map((r) => r.captionId))].filter((id) => crowd!.captions.has(id));
    const crowdTexts = crowdIds.map((id) => crowd!.captions.get(id)!);
    const allTexts = [...splitTexts, ...crowdTexts];
    const textEmbeddings = new Float32Array(allTexts.length * D);
    const textChunk = 1024;
    progress('texts', 0, allTexts.length);
    for (let start = 0; start < allTexts.length; start += textChunk) {
      const chunk = allTexts.slice(start, start + textChunk);
      textEmbeddings.set(await matcher.embedTexts(chunk), start * D);
      progress('texts', start + chunk.length, allTexts.length);
    }

    // --- 1. retrieval over the split
    const splitImageEmb = imageEmbeddings.subarray(0, ranked.length * D);
    const splitTextEmb = textEmbeddings.subarray(0, splitTexts.length * D);
    const { sims, texts } = similarityMatrix(splitImageEmb, splitTextEmb, D);
    const retrieval = retrievalRecall(sims, ranked.length, texts, textImage);

    // --- 3. calibration on the split
    const pairs = buildCalibrationPairs(textImage, ranked.length, (i, j) => sims[i * texts + j], { seed });
    const pairScores = pairs.map((p) => calibrate(clampCosine(sims[p.image * texts + p.text]), matcher.calibration).score);
    const table = reliability(pairScores, pairs.map((p) => p.label));
    const t2 = performance.now();

    // --- 2. agreement with people
    let agreement: MatchEvaluationRecord['agreement'] = null;
    let decoderInfo: MatchEvaluationRecord['decoder'] = null;
    if (crowd) {
      const crowdTextRow = new Map(crowdIds.map((id, k) => [id, splitTexts.length + k]));
      let missingImage = 0;
      let missingCaption = 0;
      const used: CrowdFlowerRow[] = [];
      for (const row of crowdRows) {
        if (!imageRow.has(row.image)) missingImage++;
        else if (!crowdTextRow.has(row.captionId)) missingCaption++;
        else used.push(row);
      }
      const matcherScores = used.map((row) => {
        const i = imageRow.get(row.image)!;
        const j = crowdTextRow.get(row.captionId)!;
        let dot = 0;
        for (let k = 0; k < D; k++) dot += imageEmbeddings[i * D + k] * textEmbeddings[j * D + k];
        return calibrate(clampCosine(dot), matcher.calibration).score;
      });
      const human = used.map((row) => row.yesRate);
      let likelihood: number[] | null = null;
      if (decoderModel) {
        const decoder = await loadDecoder(decoderModel, { threads: options.threads });
        try {
          if (decoder.regions * decoder.featureDim !== features.rowFloats) {
            throw new PixelInfoError(
              ErrorCodes.MODEL_CORRUPT,
              `${decoderModel.dir}: the decoder reads ${decoder.regions} × ${decoder.featureDim} features, the store holds ${reader.index.regions} × ${reader.index.channels}`,
              { subject: decoderModel.dir },
            );
          }
          const tokenised = ptbTokenizeLines(crowdTexts);
          const idsOf = new Map(crowdIds.map((id, k) => [id, decoderModel.vocabulary.encode(tokenised[k])]));
          likelihood = await crowdLikelihood(decoder, features, used, idsOf, likelihoodBatch, (done, total) => progress('likelihood', done, total));
        } finally {
          await decoder.release();
        }
        decoderInfo = { dir: decoderModel.dir, name: typeof decoderModel.card.name === 'string' ? decoderModel.card.name : null };
      }
      const outside = used.flatMap((row, r) => (isOutsideTrain(splitOf.get(row.image)) && isOutsideTrain(splitOf.get(row.captionImage)) ? [r] : []));
      const pick = (values: number[], rows: number[]) => rows.map((r) => values[r]);
      agreement = {
        file: crowd.file,
        rows: crowd.rows.length,
        selected: crowdRows.length,
        used: used.length,
        skipped: { missingImage, missingCaption },
        images: new Set(used.map((r) => r.image)).size,
        matcher: tau(matcherScores, human),
        likelihood: likelihood ? tau(likelihood, human) : null,
        outsideTrain: {
          rows: outside.length,
          matcher: tau(pick(matcherScores, outside), pick(human, outside)),
          likelihood: likelihood ? tau(pick(likelihood, outside), pick(human, outside)) : null,
        },
        meanLogProb: likelihood && likelihood.length ? likelihood.reduce((a, b) => a + b, 0) / likelihood.length : null,
        published: { citation: PUBLISHED_CROWDFLOWER_TAU_B.citation, values: PUBLISHED_CROWDFLOWER_TAU_B.values },
      };
    }

    const t4 = performance.now();
    const card = matcher.card;
    return {
      format: 'pixel-info-eval-match',
      version: 1,
      dataset: options.dataset,
      split: options.split,
      matcher: {
        dir: matcherDir,
        name: matcher.name,
        embeddingDim: D,
        calibration: {
          a: matcher.calibration.a,
          b: matcher.calibration.b,
          meaning: card.calibration.meaning ?? null,
          fittedOn: card.calibration.fittedOn ?? null,
          ece: card.calibration.ece ?? null,
        },
      },
      decoder: decoderInfo,
      input: {
        source: options.features ? 'features' : 'images',
        featureStore: options.features ? reader.dir : null,
        encoderSha256: reader.index.encoder.modelSha256,
        encoderSource,
      },
      retrieval: { ...retrieval, images: ranked.length, texts, skippedImages },
      agreement,
      calibration: {
        seed,
        pairs: pairs.length,
        positives: pairs.filter((p) => p.kind === 'own').length,
        randomNegatives: pairs.filter((p) => p.kind === 'random').length,
        hardNegatives: pairs.filter((p) => p.kind === 'hard').length,
        bins: table.bins,
        ece: table.ece,
        meanScore: table.meanScore,
        rate: table.rate,
      },
      settings: { limit: options.limit ?? null, batchSize, likelihoodBatch, threads: options.threads ?? 'all', cpus: availableParallelism() },
      seconds: { features: secs(t1 - t0), matcher: secs(t2 - t1), agreement: secs(t4 - t2), total: secs(t4 - t0) },
      date: new Date().toISOString(),
      node: process.version,
    };
  } finally {
    await matcher.release();
    if (tmpStore) await rm(tmpStore, { recursive: true, force: true });
  }
}

/**
 * Mean per-token log-probability of each row's caption given its image under the decoder, teacher-forced
 * (src/decoder/likelihood.ts). Rows are batched by caption length (then file order), so a batch steps rows of
 * nearly one length; each batch reads the features of its distinct images once. Returns one value per row.
 */
async function crowdLikelihood(
  decoder: Parameters<typeof captionLogProbs>[0],
  features: FeatureSource,
  rows: readonly CrowdFlowerRow[],
  idsOf: ReadonlyMap<string, number[]>,
  batch: number,
  onProgress: (done: number, total: number) => void,
): Promise<number[]> {
  const order = rows.map((_, r) => r).sort((a, b) => idsOf.get(rows[a].captionId)!.length - idsOf.get(rows[b].captionId)!.length || a - b);
  const out = new Array<number>(rows.length);
  onProgress(0, rows.length);
  for (let start = 0; start < order.length; start += batch) {
    const chunk = order.slice(start, start + batch);
    const names = [...new Set(chunk.map((r) => rows[r].image))];
    const at = new Map(names.map((name, i) => [name, i]));
    const tf: TeacherForcedRow[] = chunk.map((r) => ({ image: at.get(rows[r].image)!, tokens: idsOf.get(rows[r].captionId)! }));
    const result = await captionLogProbs(decoder, features.read(names), names.length, tf);
    chunk.forEach((r, k) => (out[r] = result[k].meanLogProb));
    onProgress(Math.min(start + batch, order.length), rows.length);
  }
  return out;
}

function tau(x: number[], y: number[]): TauResult {
  if (x.length < 2) return { tauB100: null, rows: x.length };
  const t = kendallTauB(x, y).tau;
  return { tauB100: Number.isNaN(t) ? null : 100 * t, rows: x.length };
}

function isOutsideTrain(split: Split | undefined): boolean {
  return split !== 'train' && split !== 'restval';
}

function clampCosine(c: number): number {
  return Math.max(-1, Math.min(1, c));
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function invalid(message: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, message);
}

function secs(ms: number): number {
  return Math.round(ms) / 1000;
}
