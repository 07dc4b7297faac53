/**
 * The Node encoder: ImageNet ResNet50 from the model cache (./cache.ts converts it on first use) as an
 * EncoderSession (./session.ts). `encode` takes a caffe-normalised NCHW batch (see src/image writeCaffeTensor)
 * and returns the attention feature map, the pooled vector and the ImageNet logits, sized as `geometry` says.
 */
import { ensureEncoderModel, defaultCacheDir, type CacheManifest } from './cache.js';
import { EncoderSession, type EncoderSessionOptions } from './session.js';
import type { SourceOptions } from './source.js';

export interface EncoderOptions extends EncoderSessionOptions {
  cacheDir?: string;
  /** Download progress of the source weights, the first time (default: a line on stderr). */
  onDownloadProgress?: SourceOptions['onProgress'];
}

export class ImageEncoder extends EncoderSession {
  /** The model cache's manifest (source, converter version, geometry, checksums). */
  readonly manifest!: CacheManifest;
  /** The converted model in the cache. */
  readonly modelPath!: string;

  static async load(options: EncoderOptions = {}): Promise<ImageEncoder> {
    const model = await ensureEncoderModel(options.cacheDir ?? defaultCacheDir(), { onProgress: options.onDownloadProgress });
    const session = await EncoderSession.open(model.bytes, options);
    const encoder = new ImageEncoder(session, model.manifest.geometry, options.outputs ?? ['features', 'pooled', 'logits']);
    Object.assign(encoder, { manifest: model.manifest, modelPath: model.path });
    return encoder;
  }
}

export { EncoderSession, INPUT_NAME, OUTPUT_NAMES, type EncodedBatch, type EncoderOutput, type EncoderSessionOptions } from './session.js';
export { ensureEncoderModel, defaultCacheDir } from './cache.js';
export { ENCODER_GEOMETRY, featureMapFloats, type EncoderGeometry, type FeatureGeometry } from './geometry.js';
export { imagenetLabels } from './labels.js';
