/**
 * The encoder's ImageNet classifier head on its own: logits = mean over the regions of the 7x7x2048 feature map
 * (GlobalAveragePool) · W + b (the Dense layer, the graph's Gemm), with W and b read from the converted model. It
 * gives the logits of features that were stored without them (a feature store, `captionFeatures`), so tags and
 * guided decoding work from features as they do from images: on Flickr8k val images the logits from the encoder's
 * own map match its logits output within 3e-6, and from a store's float16 map within 2e-3 (bench/tags-val.ts).
 */
import { readFile } from 'node:fs/promises';
import { decodeModel, type Tensor } from '../onnx/proto.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { OUTPUT_NAMES } from './session.js';

export class ClassifierHead {
  constructor(
    /** channels × classes, row-major. */
    readonly weight: Float32Array,
    readonly bias: Float32Array,
    readonly channels: number,
    readonly classes: number,
  ) {}

  /** Logits (count × classes) of count feature maps (count × regions × channels, region-major). */
  logitsFromFeatures(features: Float32Array, count: number): Float32Array {
    const { channels: C, classes: K } = this;
    const regions = features.length / (count * C);
    if (!Number.isInteger(regions) || regions < 1) throw new RangeError(`${features.length} floats are not ${count} maps of ${C} channels`);
    const pooled = new Float32Array(count * C);
    for (let i = 0; i < count; i++) {
      for (let r = 0; r < regions; r++) {
        const base = (i * regions + r) * C;
        for (let c = 0; c < C; c++) pooled[i * C + c] += features[base + c];
      }
      for (let c = 0; c < C; c++) pooled[i * C + c] /= regions;
    }
    return this.logitsFromPooled(pooled, count);
  }

  /** Logits (count × classes) of count pooled vectors (count × channels). */
  logitsFromPooled(pooled: Float32Array, count: number): Float32Array {
    const { channels: C, classes: K, weight: W } = this;
    const out = new Float32Array(count * K);
    const acc = new Float64Array(K);
    for (let i = 0; i < count; i++) {
      acc.set(this.bias);
      for (let c = 0; c < C; c++) {
        const x = pooled[i * C + c];
        if (x === 0) continue; // after a ReLU, many are
        const row = c * K;
        for (let k = 0; k < K; k++) acc[k] += x * W[row + k];
      }
      out.set(acc, i * K);
    }
    return out;
  }
}

/** The head of a converted (fp32) encoder file: the Gemm that writes the `logits` output. */
export async function loadClassifierHead(modelFile: string): Promise<ClassifierHead> {
  const fail = (why: string) => new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${modelFile}: no ImageNet classifier head: ${why}`, { subject: modelFile });
  const graph = decodeModel(await readFile(modelFile)).graph;
  const gemm = graph?.node?.find((n) => n.opType === 'Gemm' && n.output?.includes(OUTPUT_NAMES.logits));
  if (!graph || !gemm || gemm.input?.length !== 3) throw fail('no Gemm node writes the logits');
  if (gemm.attribute?.some((a) => (a.name === 'transA' || a.name === 'transB') && Number(a.i) !== 0)) throw fail('a transposed Gemm');
  const tensor = (name: string) => graph.initializer?.find((t) => t.name === name);
  const weight = tensor(gemm.input[1]);
  const bias = tensor(gemm.input[2]);
  if (!weight || !bias || weight.dims?.length !== 2) throw fail('its weights are not initializers');
  const [channels, classes] = weight.dims.map(Number);
  const w = floats(weight);
  const b = floats(bias);
  if (w.length !== channels * classes || b.length !== classes) throw fail('weights of the wrong size');
  return new ClassifierHead(w, b, channels, classes);
}

function floats(t: Tensor): Float32Array {
  if (t.floatData && t.floatData.length > 0) return Float32Array.from(t.floatData);
  const raw = t.rawData ?? new Uint8Array(0);
  const out = new Float32Array(raw.byteLength / 4);
  new Uint8Array(out.buffer).set(raw);
  return out;
}
