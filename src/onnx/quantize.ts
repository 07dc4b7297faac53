/**
 * int8 weights for the decoder's dense layers. Every `Gemm(A, W, b)` with constant weights (fp16 or fp32
 * initializers, optionally behind a Cast) and transB = 1 becomes onnxruntime's
 * `com.microsoft.DynamicQuantizeMatMul`: W int8, symmetric, one scale per output column; A is quantised
 * per call. The step graph reads 4x fewer weight bytes per token, which is what bounds it at small batches.
 */
import { DataType, decodeModel, onnx, type Node, type Tensor } from './proto.js';
import { fromFloat16Bits } from '../tensor/float16.js';

let halfTable: Float32Array | undefined;
/** All 65536 half-precision values, so converting millions of weights is one lookup each. */
function halfToFloat(): Float32Array {
  halfTable ??= Float32Array.from({ length: 65536 }, (_, h) => fromFloat16Bits(h));
  return halfTable;
}

function tensorValues(t: Tensor): Float32Array {
  const raw = t.rawData as Uint8Array;
  const bytes = Uint8Array.from(raw); // aligned copy
  if (t.dataType === DataType.FLOAT) return new Float32Array(bytes.buffer);
  if (t.dataType === DataType.FLOAT16) {
    const half = new Uint16Array(bytes.buffer);
    const table = halfToFloat();
    const out = new Float32Array(half.length);
    for (let i = 0; i < half.length; i++) out[i] = table[half[i]];
    return out;
  }
  throw new Error(`tensor ${t.name}: data type ${t.dataType} is not a float`);
}

export interface QuantizeReport {
  /** `static`: the input has a calibrated range (QuantizeLinear + MatMulIntegerToFloat), else DynamicQuantizeMatMul. */
  layers: Array<{ name: string; rows: number; cols: number; static: boolean }>;
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Weights use 7 bits (±63): onnxruntime's x86 kernels multiply uint8 activations by int8 weights with AVX2
 * vpmaddubsw, whose pairwise int16 sums saturate above 32767; 255·63·2 stays below it (255·127·2 does not —
 * full-range weights measured CIDEr 0.578 vs 0.587 fp32 on val, 7-bit ones the same as fp32).
 */
const WEIGHT_MAX = 63;

/** Dense layers with fewer outputs stay float. */
const MIN_OUTPUTS = 16;

/** Quantises `W` [out, in] to int8 [in, out] with per-column (per-output) scales. */
function quantizeColumns(w: Float32Array, out: number, inn: number): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(out * inn);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let max = 0;
    for (let i = 0; i < inn; i++) max = Math.max(max, Math.abs(w[o * inn + i]));
    const scale = max > 0 ? max / WEIGHT_MAX : 1;
    scales[o] = scale;
    for (let i = 0; i < inn; i++) q[i * out + o] = Math.max(-WEIGHT_MAX, Math.min(WEIGHT_MAX, Math.round(w[o * inn + i] / scale)));
  }
  return { q, scales };
}

/** Calibrated range of a dense layer's input (see quantizeGemmWeights). */
export interface ActivationRange {
  min: number;
  max: number;
}

export interface QuantizeOptions {
  /**
   * Ranges of the dense layers' inputs, by tensor name (denseLayerInputs), measured on real decoding. A layer whose
   * input has one gets a fixed uint8 quantisation of that input (QuantizeLinear + MatMulIntegerToFloat): each row's
   * result then depends on that row alone, so a caption does not change with the other images of its batch. A
   * layer without one quantises its input per call over the whole batch (DynamicQuantizeMatMul), which does.
   */
  activationRanges?: Record<string, ActivationRange>;
}

/** The input tensor (A) of every dense layer quantizeGemmWeights would rewrite, in graph order, without repeats. */
export function denseLayerInputs(modelBytes: Uint8Array): string[] {
  const out = new Set<string>();
  scanDense(decodeModel(modelBytes).graph!, (n) => out.add(n.input![0]));
  return [...out];
}

function scanDense(graph: NonNullable<ReturnType<typeof decodeModel>['graph']>, visit: (n: Node, w: Tensor, b: Tensor | undefined) => void): void {
  const initializers = new Map(graph.initializer!.map((t) => [t.name!, t]));
  const castOf = new Map<string, string>();
  for (const n of graph.node!) if (n.opType === 'Cast' && initializers.has(n.input![0])) castOf.set(n.output![0], n.input![0]);
  const constant = (name: string): Tensor | undefined => initializers.get(castOf.get(name) ?? name);
  const transposeOf = new Map<string, Tensor>();
  for (const n of graph.node!) {
    const perm = n.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number);
    const w = n.opType === 'Transpose' ? constant(n.input![0]) : undefined;
    if (w && w.dims!.length === 2 && (perm === undefined || (perm[0] === 1 && perm[1] === 0))) transposeOf.set(n.output![0], w);
  }
  for (const n of graph.node!) {
    const transB = n.attribute?.find((a) => a.name === 'transB')?.i;
    const alpha = n.attribute?.find((a) => a.name === 'alpha')?.f ?? 1;
    const beta = n.attribute?.find((a) => a.name === 'beta')?.f ?? 1;
    const matmul = n.opType === 'MatMul' ? transposeOf.get(n.input![1]) : undefined;
    const w = n.opType === 'Gemm' ? constant(n.input![1]) : matmul;
    const b = n.opType === 'Gemm' && n.input!.length > 2 ? constant(n.input![2]) : undefined;
    const gemmOk = n.opType === 'Gemm' && Number(transB) === 1 && alpha === 1 && beta === 1 && (n.input!.length <= 2 || b);
    if (w && (gemmOk || matmul) && w.dims!.length === 2 && Number(w.dims![0]) >= MIN_OUTPUTS) visit(n, w, b);
  }
}

export function quantizeGemmWeights(modelBytes: Uint8Array, options: QuantizeOptions = {}): { bytes: Uint8Array; report: QuantizeReport } {
  const model = decodeModel(modelBytes);
  const graph = model.graph!;
  const initializers = new Map(graph.initializer!.map((t) => [t.name!, t]));
  const castOf = new Map<string, string>();
  for (const n of graph.node!) if (n.opType === 'Cast' && initializers.has(n.input![0])) castOf.set(n.output![0], n.input![0]);
  const transposeOf = new Set<string>();
  for (const n of graph.node!) if (n.opType === 'Transpose') transposeOf.add(n.output![0]);

  const report: QuantizeReport = { layers: [], bytesBefore: modelBytes.length, bytesAfter: 0 };
  const replaced = new Map<Node, Node[]>();
  const added: Tensor[] = [];
  const quantizedInputs = new Map<string, string>(); // A → its uint8 tensor (one QuantizeLinear per input)
  scanDense(graph, (n, w, b) => {
    const [out, inn] = w.dims!.map(Number);
    const { q, scales } = quantizeColumns(tensorValues(w), out, inn);
    const base = n.name || n.output![0];
    const names = { q: `${base}.w_int8`, scale: `${base}.w_scale`, zero: `${base}.w_zero`, bias: `${base}.bias_f32` };
    added.push(
      { name: names.q, dims: [inn, out], dataType: DataType.INT8, rawData: new Uint8Array(q.buffer) },
      { name: names.scale, dims: [out], dataType: DataType.FLOAT, rawData: new Uint8Array(scales.buffer) },
      { name: names.zero, dims: [out], dataType: DataType.INT8, rawData: new Uint8Array(out) },
    );
    if (b) added.push({ name: names.bias, dims: [out], dataType: DataType.FLOAT, rawData: new Uint8Array(tensorValues(b).buffer) });
    const a = n.input![0];
    const range = options.activationRanges?.[a];
    const nodes: Node[] = [];
    if (range) {
      let aq = quantizedInputs.get(a);
      if (!aq) {
        aq = `${a}.u8`;
        quantizedInputs.set(a, aq);
        const lo = Math.min(0, range.min);
        const hi = Math.max(0, range.max);
        const scale = hi > lo ? (hi - lo) / 255 : 1;
        const zero = Math.max(0, Math.min(255, Math.round(-lo / scale)));
        added.push(
          { name: `${a}.a_scale`, dims: [], dataType: DataType.FLOAT, rawData: new Uint8Array(new Float32Array([scale]).buffer) },
          { name: `${a}.a_zero`, dims: [], dataType: DataType.UINT8, rawData: new Uint8Array([zero]) },
        );
        nodes.push({ opType: 'QuantizeLinear', input: [a, `${a}.a_scale`, `${a}.a_zero`], output: [aq], name: `${a}_quantize`, attribute: [] });
      }
      const inputs = [aq, names.q, `${a}.a_scale`, names.scale, `${a}.a_zero`, names.zero];
      if (b) inputs.push(names.bias);
      nodes.push({ opType: 'MatMulIntegerToFloat', domain: 'com.microsoft', input: inputs, output: n.output, name: `${base}_int8`, attribute: [] });
    } else {
      const inputs = [a, names.q, names.scale, names.zero];
      if (b) inputs.push(names.bias);
      nodes.push({ opType: 'DynamicQuantizeMatMul', domain: 'com.microsoft', input: inputs, output: n.output, name: `${base}_int8`, attribute: [] });
    }
    replaced.set(n, nodes);
    report.layers.push({ name: base, rows: inn, cols: out, static: Boolean(range) });
  });
  const nodes = graph.node!.flatMap((n) => replaced.get(n) ?? [n]);
  // Drop weights (and their Transposes and Casts) that nothing reads any more.
  const used = new Set([...nodes.flatMap((n) => n.input ?? []), ...graph.output!.map((o) => o.name!)]);
  const withoutTransposes = nodes.filter((n) => !(n.opType === 'Transpose' && transposeOf.has(n.output![0]) && !used.has(n.output![0])));
  const usedByRest = new Set(withoutTransposes.flatMap((n) => n.input ?? []));
  const keptNodes = withoutTransposes.filter((n) => !(n.opType === 'Cast' && castOf.has(n.output![0]) && !usedByRest.has(n.output![0])));
  const usedAfter = new Set(keptNodes.flatMap((n) => n.input ?? []));
  graph.node = keptNodes;
  graph.initializer = [...graph.initializer!.filter((t) => usedAfter.has(t.name!)), ...added];
  if (!model.opsetImport!.some((o) => o.domain === 'com.microsoft')) model.opsetImport!.push({ domain: 'com.microsoft', version: 1 });
  const bytes = onnx.ModelProto.encode(model).finish();
  report.bytesAfter = bytes.length;
  return { bytes, report };
}
