/**
 * ImageNet ResNet50 as an onnxruntime session, on either side: `encode` takes a caffe-normalised NCHW batch
 * (src/image/tensor.ts writeCaffeTensor) and returns the attention feature map, the pooled vector and the
 * ImageNet logits, sized as `geometry` says. The runtime comes from the ONNX backend module; Node's
 * ImageEncoder (./index.ts) adds the model cache, the browser's Captioner fetches the model from a URL.
 */
import { createSession, ort, sessionOptions, type InferenceSession } from '../backend/onnx.js';
import { IMAGE_FLOATS } from '../image/tensor.js';
import { IMAGE_SIZE } from '../image/types.js';
import type { EncoderGeometry } from './geometry.js';

export const INPUT_NAME = 'image';
export const OUTPUT_NAMES = { features: 'features', pooled: 'pooled', logits: 'logits' } as const;
export type EncoderOutput = keyof typeof OUTPUT_NAMES;

export interface EncodedBatch {
  count: number;
  /** count × regions × channels, region-major */
  features?: Float32Array;
  /** count × channels */
  pooled?: Float32Array;
  /** count × classes */
  logits?: Float32Array;
}

export interface EncoderSessionOptions {
  /** Intra-op threads; default: all cores. */
  threads?: number;
  /** onnxruntime graph optimisation level. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Which outputs to compute; fewer outputs → less copying. */
  outputs?: EncoderOutput[];
}

export class EncoderSession {
  protected constructor(
    private readonly session: InferenceSession,
    /** The sizes of the outputs. */
    readonly geometry: EncoderGeometry,
    private readonly outputs: EncoderOutput[],
  ) {}

  /** A session for the converted encoder's bytes (fp32, or with fp16 weights). */
  static async create(model: Uint8Array, geometry: EncoderGeometry, options: EncoderSessionOptions = {}): Promise<EncoderSession> {
    return new EncoderSession(await EncoderSession.open(model, options), geometry, options.outputs ?? ['features', 'pooled', 'logits']);
  }

  protected static open(model: Uint8Array, options: EncoderSessionOptions): Promise<InferenceSession> {
    const base = sessionOptions(options.threads);
    return createSession(model, { ...base, graphOptimizationLevel: options.graphOptimizationLevel ?? base.graphOptimizationLevel });
  }

  /** Input size of one image in floats (3 × IMAGE_SIZE × IMAGE_SIZE). */
  static get imageFloats(): number {
    return IMAGE_FLOATS;
  }

  /**
   * `outputs` (default: the ones the session was opened with) chooses what this call returns: the graph has all
   * three, so a captioner can take the logits (for tags) from a session shared with code that wanted features only.
   */
  async encode(batch: Float32Array, count: number, outputs: readonly EncoderOutput[] = this.outputs): Promise<EncodedBatch> {
    if (batch.length < count * IMAGE_FLOATS) throw new RangeError(`batch holds fewer than ${count} images`);
    const input = new ort.Tensor('float32', batch.subarray(0, count * IMAGE_FLOATS), [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
    const fetches = outputs.map((o) => OUTPUT_NAMES[o]);
    const result = await this.session.run({ [INPUT_NAME]: input }, fetches);
    const out: EncodedBatch = { count };
    for (const key of outputs) out[key] = result[OUTPUT_NAMES[key]].data as Float32Array;
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
