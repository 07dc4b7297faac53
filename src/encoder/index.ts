/**
 * ImageNet ResNet50 as an onnxruntime session. `encode` takes a caffe-normalised NCHW batch
 * (see src/image writeCaffeTensor) and returns the attention feature map, the pooled vector
 * and the ImageNet logits, sized as `geometry` says.
 */
import * as ort from 'onnxruntime-node';
import { IMAGE_FLOATS, IMAGE_SIZE } from '../image/index.js';
import { ensureEncoderModel, defaultCacheDir, type CacheManifest } from './cache.js';
import { INPUT_NAME, OUTPUT_NAMES } from './convert.js';
import type { EncoderGeometry } from './geometry.js';

export interface EncoderOptions {
  cacheDir?: string;
  /** Intra-op threads; default: all cores. */
  threads?: number;
  /** onnxruntime graph optimisation level. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Which outputs to compute; fewer outputs → less copying. */
  outputs?: Array<keyof typeof OUTPUT_NAMES>;
}

export interface EncodedBatch {
  count: number;
  /** count × regions × channels, region-major */
  features?: Float32Array;
  /** count × channels */
  pooled?: Float32Array;
  /** count × classes */
  logits?: Float32Array;
}

export class ImageEncoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly manifest: CacheManifest,
    readonly modelPath: string,
    private readonly outputs: Array<keyof typeof OUTPUT_NAMES>,
  ) {}

  static async load(options: EncoderOptions = {}): Promise<ImageEncoder> {
    const model = await ensureEncoderModel(options.cacheDir ?? defaultCacheDir());
    const session = await ort.InferenceSession.create(model.bytes, {
      intraOpNumThreads: options.threads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
      executionMode: 'sequential',
    });
    return new ImageEncoder(session, model.manifest, model.path, options.outputs ?? ['features', 'pooled', 'logits']);
  }

  /** The sizes of the outputs, as the converter recorded them in the model cache's manifest. */
  get geometry(): EncoderGeometry {
    return this.manifest.geometry;
  }

  /** Input size of one image in floats (3 × IMAGE_SIZE × IMAGE_SIZE). */
  static get imageFloats(): number {
    return IMAGE_FLOATS;
  }

  async encode(batch: Float32Array, count: number): Promise<EncodedBatch> {
    if (batch.length < count * ImageEncoder.imageFloats) throw new RangeError(`batch holds fewer than ${count} images`);
    const input = new ort.Tensor('float32', batch.subarray(0, count * ImageEncoder.imageFloats), [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
    const fetches = this.outputs.map((o) => OUTPUT_NAMES[o]);
    const result = await this.session.run({ [INPUT_NAME]: input }, fetches);
    const out: EncodedBatch = { count };
    for (const key of this.outputs) out[key] = result[OUTPUT_NAMES[key]].data as Float32Array;
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export { ensureEncoderModel, defaultCacheDir } from './cache.js';
export { ENCODER_GEOMETRY, featureMapFloats, type EncoderGeometry, type FeatureGeometry } from './geometry.js';
export { imagenetLabels } from './labels.js';
