/**
 * ImageNet ResNet50 as an onnxruntime session. `encode` takes a caffe-normalised NCHW batch
 * (see src/image writeCaffeTensor) and returns the attention feature map, the pooled vector
 * and the ImageNet logits.
 */
import * as ort from 'onnxruntime-node';
import { ensureEncoderModel, defaultCacheDir, type CacheManifest } from './cache.js';
import { INPUT_NAME, OUTPUT_NAMES } from './convert.js';

export const IMAGE_SIZE = 224;
export const REGIONS = 49;
export const FEATURE_DIM = 2048;
export const NUM_CLASSES = 1000;

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
  /** count × 49 × 2048 */
  features?: Float32Array;
  /** count × 2048 */
  pooled?: Float32Array;
  /** count × 1000 */
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

  /** Input size of one image in floats (3 × 224 × 224). */
  static get imageFloats(): number {
    return 3 * IMAGE_SIZE * IMAGE_SIZE;
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
export { imagenetLabels } from './labels.js';
