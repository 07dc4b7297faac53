/**
 * The Node encoder: ImageNet ResNet50 from the model cache (./cache.ts converts it on first use) as an
 * EncoderSession (./session.ts). `encode` takes a caffe-normalised NCHW batch (see src/image writeCaffeTensor)
 * and returns the attention feature map, the pooled vector and the ImageNet logits, sized as `geometry` says.
 */
import { dirname, join } from 'node:path';
import { ensureEncoderModel, defaultCacheDir, MODEL_FILE, type CacheManifest } from './cache.js';
import { loadClassifierHead, type ClassifierHead } from './head.js';
import { ensureInt8Encoder, resolveEncoderPrecision, type EncoderPrecision, type EncoderPrecisionChoice } from './int8.js';
import { EncoderSession, type EncoderSessionOptions } from './session.js';
import type { SourceOptions } from './source.js';

export interface EncoderOptions extends EncoderSessionOptions {
  cacheDir?: string;
  /** Download progress of the source weights, the first time (default: a line on stderr). */
  onDownloadProgress?: SourceOptions['onProgress'];
  /** 'fp32', 'int8', or 'auto' (default): int8 where its quality gate passed on this machine type (./int8.ts). */
  precision?: EncoderPrecisionChoice;
  /** The int8 calibration card (default models/resnet50-int8/int8.json). */
  int8Card?: string;
}

export class ImageEncoder extends EncoderSession {
  /** The model cache's manifest (source, converter version, geometry, checksums). */
  readonly manifest!: CacheManifest;
  /** The model the session runs, in the cache (the fp32 conversion, or the int8 graph built from it). */
  readonly modelPath!: string;
  /** Which graph runs. */
  readonly precision!: EncoderPrecision;
  /** SHA-256 of the graph that runs: feature stores record it, so features of another encoder are refused. */
  readonly modelSha256!: string;

  static async load(options: EncoderOptions = {}): Promise<ImageEncoder> {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const model = await ensureEncoderModel(cacheDir, { onProgress: options.onDownloadProgress });
    const precision = await resolveEncoderPrecision(options.precision, options.int8Card);
    let run = { bytes: model.bytes, path: model.path, sha256: model.manifest.files[MODEL_FILE].sha256 };
    if (precision === 'int8') run = await ensureInt8Encoder(cacheDir, options.int8Card);
    const session = await EncoderSession.open(run.bytes, options);
    const encoder = new ImageEncoder(session, model.manifest.geometry, options.outputs ?? ['features', 'pooled', 'logits']);
    Object.assign(encoder, { manifest: model.manifest, modelPath: run.path, precision, modelSha256: run.sha256 });
    return encoder;
  }

  private head?: Promise<ClassifierHead>;

  /**
   * The ImageNet classifier head alone (GlobalAveragePool + Dense, from the fp32 conversion in the model cache),
   * for the logits of feature maps computed earlier (./head.ts). Read once, on first use.
   */
  classifierHead(): Promise<ClassifierHead> {
    this.head ??= loadClassifierHead(join(dirname(this.modelPath), MODEL_FILE));
    this.head.catch(() => (this.head = undefined));
    return this.head;
  }
}

export { EncoderSession, INPUT_NAME, OUTPUT_NAMES, type EncodedBatch, type EncoderOutput, type EncoderSessionOptions } from './session.js';
export { ensureEncoderModel, defaultCacheDir } from './cache.js';
export { type EncoderPrecision, type EncoderPrecisionChoice } from './int8.js';
export { ENCODER_GEOMETRY, featureMapFloats, type EncoderGeometry, type FeatureGeometry } from './geometry.js';
export { imagenetLabels } from './labels.js';
export { ClassifierHead, loadClassifierHead } from './head.js';
export { tagsFromLogits, imagenetTagClasses, tagForms, tagNames, namesTag, DEFAULT_TAG_THRESHOLD, type ImageTag, type TagClass, type ImagenetTagClass } from './tags.js';
