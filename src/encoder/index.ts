/**
 * The Node encoder: ImageNet ResNet50 from the model cache (./cache.ts converts it on first use) as an
 * EncoderSession (./session.ts). `encode` takes a caffe-normalised NCHW batch (see src/image writeCaffeTensor)
 * and returns the attention feature map, the pooled vector and the ImageNet logits, sized as `geometry` says.
 *
 * `modelFile` opens another ONNX file with the same interface instead: a fine-tuned encoder, the `encoder.onnx` of a
 * decoder model directory (docs/formats.md, "Decoder model directory"; written by trainer.finetune --export).
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { ensureEncoderModel, defaultCacheDir, MODEL_FILE, type CacheManifest } from './cache.js';
import { ENCODER_GEOMETRY } from './geometry.js';
import { loadClassifierHead, type ClassifierHead } from './head.js';
import { ensureInt8Encoder, resolveEncoderPrecision, type EncoderPrecision, type EncoderPrecisionChoice } from './int8.js';
import type { InferenceSession } from '../backend/onnx.js';
import { EncoderSession, INPUT_NAME, OUTPUT_NAMES, type EncoderSessionOptions } from './session.js';
import type { SourceOptions } from './source.js';

export interface EncoderOptions extends EncoderSessionOptions {
  cacheDir?: string;
  /** Download progress of the source weights, the first time (default: a line on stderr). */
  onDownloadProgress?: SourceOptions['onProgress'];
  /** 'fp32', 'int8', or 'auto' (default): int8 where its quality gate passed on this machine type (./int8.ts). */
  precision?: EncoderPrecisionChoice;
  /** The int8 calibration card (default models/resnet50-int8/int8.json). */
  int8Card?: string;
  /**
   * An ONNX encoder file to run instead of the cache's conversion, with the same interface (input `image` float32
   * [B,3,224,224], caffe-normalised; outputs `features` [B,49,2048], `pooled` [B,2048], `logits` [B,1000]): a
   * fine-tuned encoder (a model card's `encoder.finetuned.file`). It runs in fp32 (an explicit `precision: 'int8'` is
   * INVALID_ARGUMENT: the int8 card belongs to the base encoder) and the model cache is not read.
   */
  modelFile?: string;
  /** SHA-256 (hex) that `modelFile` must have (the card's `encoder.finetuned.sha256`): another is MODEL_CORRUPT. */
  modelSha256?: string;
}

export class ImageEncoder extends EncoderSession {
  /**
   * The model cache's manifest (source, converter version, geometry, checksums). For an encoder opened from
   * `modelFile`: a manifest of that file (source `file:<path>`, converterVersion 0, ENCODER_GEOMETRY, its checksum).
   */
  readonly manifest!: CacheManifest;
  /** The model the session runs: in the cache (the fp32 conversion, or the int8 graph built from it), or `modelFile`. */
  readonly modelPath!: string;
  /** 'cache': the model cache's conversion of the base ResNet50; 'file': an ONNX file given as `modelFile`. */
  readonly origin!: 'cache' | 'file';
  /** Which graph runs. */
  readonly precision!: EncoderPrecision;
  /** SHA-256 of the graph that runs: feature stores record it, so features of another encoder are refused. */
  readonly modelSha256!: string;

  private cacheDir!: string;

  static async load(options: EncoderOptions = {}): Promise<ImageEncoder> {
    if (options.modelFile !== undefined) return ImageEncoder.loadFile(options.modelFile, options);
    if (options.modelSha256 !== undefined) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'modelSha256 is the checksum of a modelFile: give modelFile with it');
    }
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const model = await ensureEncoderModel(cacheDir, { onProgress: options.onDownloadProgress });
    const precision = await resolveEncoderPrecision(options.precision, options.int8Card);
    let run = { bytes: model.bytes, path: model.path, sha256: model.manifest.files[MODEL_FILE].sha256 };
    if (precision === 'int8') run = await ensureInt8Encoder(cacheDir, options.int8Card);
    const session = await EncoderSession.open(run.bytes, options);
    const encoder = new ImageEncoder(session, model.manifest.geometry, options.outputs ?? ['features', 'pooled', 'logits']);
    Object.assign(encoder, { manifest: model.manifest, modelPath: run.path, precision, modelSha256: run.sha256, origin: 'cache', cacheDir });
    return encoder;
  }

  /** An encoder ONNX file (EncoderOptions.modelFile), checked against modelSha256 when given; fp32. */
  private static async loadFile(file: string, options: EncoderOptions): Promise<ImageEncoder> {
    const path = resolve(file);
    if (options.precision === 'int8') {
      throw new PixelInfoError(
        ErrorCodes.INVALID_ARGUMENT,
        `precision 'int8' does not apply to ${path}: the int8 encoder is built from the base encoder (its card's ranges were measured on it); ` +
          `an encoder file runs in fp32 (precision 'fp32' or 'auto')`,
        { subject: path },
      );
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new PixelInfoError(missing ? ErrorCodes.MODEL_NOT_FOUND : ErrorCodes.IO_ERROR, `encoder model ${path} ${missing ? 'is missing' : `cannot be read: ${(err as Error).message}`}`, {
        subject: path,
        cause: err,
      });
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const expected = options.modelSha256;
    if (expected !== undefined && sha256 !== expected) {
      throw new PixelInfoError(
        ErrorCodes.MODEL_CORRUPT,
        `encoder model ${path} has sha256 ${sha256.slice(0, 12)}…, not the ${expected.slice(0, 12)}… it should have (the model card's): the file is damaged or not the one exported with this model`,
        { subject: path },
      );
    }
    let session: InferenceSession;
    try {
      session = await EncoderSession.open(bytes, options);
    } catch (err) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `encoder model ${path} cannot be loaded: ${(err as Error).message}`, { subject: path, cause: err });
    }
    const missing = [
      ...(session.inputNames.includes(INPUT_NAME) ? [] : [`input '${INPUT_NAME}'`]),
      ...Object.values(OUTPUT_NAMES).filter((n) => !session.outputNames.includes(n)).map((n) => `output '${n}'`),
    ];
    if (missing.length) {
      await session.release();
      throw new PixelInfoError(
        ErrorCodes.MODEL_CORRUPT,
        `encoder model ${path} lacks ${missing.join(', ')} (has inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')}); see docs/formats.md`,
        { subject: path },
      );
    }
    const manifest: CacheManifest = {
      source: `file:${path}`,
      sourceSha256: sha256,
      converterVersion: 0,
      geometry: ENCODER_GEOMETRY,
      files: { [basename(path)]: { sha256, bytes: bytes.length } },
      createdAt: (await stat(path)).mtime.toISOString(),
    };
    const encoder = new ImageEncoder(session, ENCODER_GEOMETRY, options.outputs ?? ['features', 'pooled', 'logits']);
    Object.assign(encoder, { manifest, modelPath: path, precision: 'fp32', modelSha256: sha256, origin: 'file', cacheDir: options.cacheDir ?? defaultCacheDir() });
    return encoder;
  }

  private head?: Promise<ClassifierHead>;

  /**
   * The ImageNet classifier head alone (GlobalAveragePool + Dense, from the fp32 conversion in the model cache),
   * for the logits of feature maps computed earlier (./head.ts). Read once, on first use.
   *
   * An encoder opened from `modelFile` reads the Gemm of that file. When that file's head is not in the form
   * ./head.ts reads (trainer.finetune exports it as a transposed Gemm over float16 weights), it is the base
   * encoder's from the model cache: fine-tuning trains only convolutions, so the classifier is the base one.
   */
  classifierHead(): Promise<ClassifierHead> {
    this.head ??= this.origin === 'file' ? this.fileHead() : loadClassifierHead(join(dirname(this.modelPath), MODEL_FILE));
    this.head.catch(() => (this.head = undefined));
    return this.head;
  }

  private async fileHead(): Promise<ClassifierHead> {
    try {
      return await loadClassifierHead(this.modelPath);
    } catch (err) {
      if (!(err instanceof PixelInfoError && err.code === ErrorCodes.MODEL_CORRUPT)) throw err;
      return loadClassifierHead((await ensureEncoderModel(this.cacheDir)).path);
    }
  }
}

export { EncoderSession, INPUT_NAME, OUTPUT_NAMES, type EncodedBatch, type EncoderOutput, type EncoderSessionOptions } from './session.js';
export { ensureEncoderModel, defaultCacheDir } from './cache.js';
export { type EncoderPrecision, type EncoderPrecisionChoice } from './int8.js';
export { ENCODER_GEOMETRY, featureMapFloats, type EncoderGeometry, type FeatureGeometry } from './geometry.js';
export { imagenetLabels } from './labels.js';
export { ClassifierHead, loadClassifierHead } from './head.js';
export { tagsFromLogits, imagenetTagClasses, tagForms, tagNames, namesTag, DEFAULT_TAG_THRESHOLD, type ImageTag, type TagClass, type ImagenetTagClass } from './tags.js';
