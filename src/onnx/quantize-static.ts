/**
 * Static int8 quantisation of a convolutional graph in onnxruntime's QDQ format: every Conv reads
 * DequantizeLinear(int8 weights, one scale per output channel) and an int32 bias, and its activations pass through
 * QuantizeLinear → DequantizeLinear pairs with ranges calibrated beforehand on real images. onnxruntime's graph
 * optimiser then fuses each DQ → Conv → Q into one QLinearConv (uint8 activations × int8 weights).
 *
 * Which tensors get a Q/DQ pair: every activation a quantised Conv reads, and every quantised Conv's output that is
 * not followed by a Relu (a Relu's output is then the next Conv's input: Conv → Relu → Q, whose Relu onnxruntime
 * folds into the quantisation). Adds, pooling and the graph's outputs stay float32.
 *
 * Weights use 7 bits (±63) unless told otherwise: on x86 without VNNI, uint8 × int8 products are summed in pairs into
 * int16 by vpmaddubsw, which saturates above 32767 (255·127·2 does not fit; 255·63·2 does), so 7-bit weights give the
 * exact integer result on every x86 kernel — the same numbers on AVX2, AVX-512 VNNI and AMX machines.
 */
import { DataType, decodeModel, onnx, type Node, type Tensor } from './proto.js';

/** Calibrated range of one activation tensor. */
export interface TensorRange {
  min: number;
  max: number;
}

export interface StaticQuantizeOptions {
  /** Activation ranges by tensor name (calibrateActivations). */
  ranges: Record<string, TensorRange>;
  /** Conv nodes (by name) left in float32, e.g. the first convolution. */
  exclude?: readonly string[];
  /** Weight bits, 7 (default; see the header) or 8. */
  weightBits?: 7 | 8;
}

export interface StaticQuantizeReport {
  convs: number;
  excluded: string[];
  activations: number;
  bytesBefore: number;
  bytesAfter: number;
}

interface GraphView {
  model: ReturnType<typeof decodeModel>;
  graph: NonNullable<ReturnType<typeof decodeModel>["graph"]>;
  initializers: Map<string, Tensor>;
  consumers: Map<string, Node[]>;
}

function view(modelBytes: Uint8Array): GraphView {
  const model = decodeModel(modelBytes);
  const graph = model.graph!;
  const initializers = new Map(graph.initializer!.map((t) => [t.name!, t]));
  const consumers = new Map<string, Node[]>();
  for (const n of graph.node!) for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  return { model, graph, initializers, consumers };
}

function floats(t: Tensor): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`initializer ${t.name}: expected float32`);
  return new Float32Array(Uint8Array.from(t.rawData as Uint8Array).buffer);
}

/** The activation tensors to calibrate and quantise (see the header), in graph order. */
export function activationTensors(modelBytes: Uint8Array, exclude: readonly string[] = []): string[] {
  const { graph, initializers, consumers } = view(modelBytes);
  const out = new Set<string>();
  for (const n of graph.node!) {
    if (n.opType !== 'Conv' || exclude.includes(n.name ?? '')) continue;
    out.add(n.input![0]);
    const next = consumers.get(n.output![0]) ?? [];
    if (!(next.length === 1 && next[0].opType === 'Relu')) out.add(n.output![0]);
  }
  return [...out].filter((t) => !initializers.has(t));
}

/** The model with `tensors` added as graph outputs (float32, shapes left open), for calibration runs. */
export function withOutputs(modelBytes: Uint8Array, tensors: readonly string[]): Uint8Array {
  const model = decodeModel(modelBytes);
  const graph = model.graph!;
  const have = new Set(graph.output!.map((o) => o.name));
  for (const t of tensors) if (!have.has(t)) graph.output!.push({ name: t, type: { tensorType: { elemType: DataType.FLOAT } } });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Range estimator for calibration: exact min/max over everything seen, and a histogram of |values| in log-spaced bins
 * (64 per octave from 2^-24 to 2^24: about 1% relative resolution at any scale, no rebinning when an outlier
 * arrives), so that the range can be clipped at a percentile of the magnitudes — outliers would otherwise spend most
 * of the 256 levels.
 */
export class RangeObserver {
  private static readonly PER_OCTAVE = 64;
  private static readonly LOW = -24;
  private static readonly BINS = 48 * RangeObserver.PER_OCTAVE;
  min = Infinity;
  max = -Infinity;
  private readonly hist = new Float64Array(RangeObserver.BINS);
  private count = 0;

  observe(values: Float32Array): void {
    const { PER_OCTAVE, LOW, BINS } = RangeObserver;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      const m = Math.abs(v);
      const b = m > 0 ? Math.floor((Math.log2(m) - LOW) * PER_OCTAVE) : 0;
      this.hist[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++;
    }
    this.min = Math.min(this.min, lo);
    this.max = Math.max(this.max, hi);
    this.count += values.length;
  }

  /** [min, max] with both ends clipped at the `percentile` of the magnitudes (100: the exact min and max). */
  range(percentile = 100): TensorRange {
    if (this.count === 0) throw new Error('no values observed');
    if (percentile >= 100) return { min: this.min, max: this.max };
    const want = (percentile / 100) * this.count;
    let seen = 0;
    let b = 0;
    for (; b < this.hist.length; b++) {
      seen += this.hist[b];
      if (seen >= want) break;
    }
    const clip = 2 ** ((b + 1) / RangeObserver.PER_OCTAVE + RangeObserver.LOW); // the bin's upper edge
    return { min: Math.max(this.min, -clip), max: Math.min(this.max, clip) };
  }
}

/** uint8 activation parameters for a range (which always includes 0, so that 0 is exact). */
export function activationParams({ min, max }: TensorRange): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.max(0, Math.min(255, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

export function quantizeStatic(modelBytes: Uint8Array, options: StaticQuantizeOptions): { bytes: Uint8Array; report: StaticQuantizeReport } {
  const exclude = options.exclude ?? [];
  const wmax = options.weightBits === 8 ? 127 : 63;
  const { model, graph, initializers } = view(modelBytes);
  const targets = activationTensors(modelBytes, exclude);
  const added: Tensor[] = [];
  const scalar = (name: string, dataType: number, data: ArrayBufferView): Tensor => ({ name, dims: [], dataType, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });

  // Activations: T → Q → DQ → T.dq, and every consumer (but the Q itself) reads T.dq.
  const rename = new Map<string, string>();
  const qdqNodes: Node[] = [];
  const params = new Map<string, { scale: number; zeroPoint: number }>();
  for (const t of targets) {
    const range = options.ranges[t];
    if (!range) throw new Error(`no calibrated range for tensor ${t}`);
    const p = activationParams(range);
    params.set(t, p);
    added.push(scalar(`${t}.q_scale`, DataType.FLOAT, new Float32Array([p.scale])), scalar(`${t}.q_zero`, DataType.UINT8, new Uint8Array([p.zeroPoint])));
    qdqNodes.push(
      { opType: 'QuantizeLinear', input: [t, `${t}.q_scale`, `${t}.q_zero`], output: [`${t}.q`], name: `${t}.Q` },
      { opType: 'DequantizeLinear', input: [`${t}.q`, `${t}.q_scale`, `${t}.q_zero`], output: [`${t}.dq`], name: `${t}.DQ` },
    );
    rename.set(t, `${t}.dq`);
  }

  const nodes: Node[] = [];
  let convs = 0;
  for (const n of graph.node!) {
    const input = (n.input ?? []).map((i) => rename.get(i) ?? i);
    if (n.opType === 'Conv' && !exclude.includes(n.name ?? '')) {
      const w = initializers.get(n.input![1]);
      const b = n.input!.length > 2 ? initializers.get(n.input![2]) : undefined;
      const p = params.get(n.input![0]);
      if (!w || !p || (n.input!.length > 2 && !b)) throw new Error(`Conv ${n.name}: weights, bias or input range missing`);
      const dims = w.dims!.map(Number);
      const out = dims[0];
      const per = dims.slice(1).reduce((a, x) => a * x, 1);
      const wf = floats(w);
      const q = new Int8Array(wf.length);
      const scales = new Float32Array(out);
      for (let o = 0; o < out; o++) {
        let m = 0;
        for (let i = 0; i < per; i++) m = Math.max(m, Math.abs(wf[o * per + i]));
        const s = m > 0 ? m / wmax : 1;
        scales[o] = s;
        for (let i = 0; i < per; i++) q[o * per + i] = Math.max(-wmax, Math.min(wmax, Math.round(wf[o * per + i] / s)));
      }
      const base = n.name || n.output![0];
      added.push(
        { name: `${base}.w_q`, dims, dataType: DataType.INT8, rawData: new Uint8Array(q.buffer) },
        { name: `${base}.w_scale`, dims: [out], dataType: DataType.FLOAT, rawData: new Uint8Array(scales.buffer) },
        { name: `${base}.w_zero`, dims: [out], dataType: DataType.INT8, rawData: new Uint8Array(out) },
      );
      nodes.push({ opType: 'DequantizeLinear', input: [`${base}.w_q`, `${base}.w_scale`, `${base}.w_zero`], output: [`${base}.w_dq`], name: `${base}.w_DQ`, attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] });
      input[1] = `${base}.w_dq`;
      if (b) {
        // int32 bias in the scale of the product: input scale × weight scale, per output channel
        const bf = floats(b);
        const bq = new Int32Array(out);
        const bs = new Float32Array(out);
        for (let o = 0; o < out; o++) {
          bs[o] = p.scale * scales[o];
          bq[o] = Math.round(bf[o] / bs[o]);
        }
        added.push(
          { name: `${base}.b_q`, dims: [out], dataType: DataType.INT32, rawData: new Uint8Array(bq.buffer) },
          { name: `${base}.b_scale`, dims: [out], dataType: DataType.FLOAT, rawData: new Uint8Array(bs.buffer) },
          { name: `${base}.b_zero`, dims: [out], dataType: DataType.INT32, rawData: new Uint8Array(new Int32Array(out).buffer) },
        );
        nodes.push({ opType: 'DequantizeLinear', input: [`${base}.b_q`, `${base}.b_scale`, `${base}.b_zero`], output: [`${base}.b_dq`], name: `${base}.b_DQ`, attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] });
        input[2] = `${base}.b_dq`;
      }
      convs++;
    }
    nodes.push({ ...n, input });
    // the Q/DQ pair of a tensor goes right after the node that makes it
    for (const o of n.output ?? []) {
      const at = qdqNodes.findIndex((q) => q.input![0] === o && q.opType === 'QuantizeLinear');
      if (at >= 0) nodes.push(qdqNodes[at], qdqNodes[at + 1]);
    }
  }
  // graph inputs that are quantised (the image, unless the first Conv is excluded) get their pair first
  const inputPairs: Node[] = [];
  for (const i of graph.input!) {
    const at = qdqNodes.findIndex((q) => q.input![0] === i.name && q.opType === 'QuantizeLinear');
    if (at >= 0) inputPairs.push(qdqNodes[at], qdqNodes[at + 1]);
  }
  // graph outputs keep reading the float tensors
  graph.node = [...inputPairs, ...nodes];
  const used = new Set(graph.node.flatMap((n) => n.input ?? []));
  graph.initializer = [...graph.initializer!.filter((t) => used.has(t.name!)), ...added];
  const bytes = onnx.ModelProto.encode(model).finish();
  return { bytes, report: { convs, excluded: [...exclude], activations: targets.length, bytesBefore: modelBytes.length, bytesAfter: bytes.length } };
}

