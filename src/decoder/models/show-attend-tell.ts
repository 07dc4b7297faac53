/**
 * Architecture `show-attend-tell` (registry entry in ../registry.ts; trainer/models/show_attend_tell.py on the
 * Python side): the soft-attention LSTM decoder exported as two ONNX graphs (docs/formats.md, "Decoder model
 * directory"). decoder_init.onnx makes the per-image state, decoder_step.onnx advances every beam of every image
 * in one call. The step state (h, c and a row → image index) is opaque to the search.
 *
 * Two graph formats load:
 *   per-image (current): init returns the normalised features (`memory`) and their attention projection once per
 *     image; the step takes them as they are plus a row → image index (`image`) and gathers inside the graph, so
 *     nothing per image is copied or recomputed per beam or per step.
 *   per-row (models exported before it): the step takes `features` and `proj_features` per row; this module
 *     expands them from the per-image tensors (./show-attend-tell-legacy.ts) and the graph re-normalises them
 *     every step. `python3 -m trainer.reexport DIR` converts such a directory.
 */
import { modelFile, ort, type InferenceSession, type Tensor } from '../../backend/onnx.js';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import type { DecoderState, StepModel, StepOutput } from '../step-model.js';
import { checkNames, numericDim, openSession, sessionOptions, tensorShape } from '../onnx-session.js';
import { ImageBatch } from './show-attend-tell-legacy.js';

export const INIT_FILE = 'decoder_init.onnx';
export const STEP_FILE = 'decoder_step.onnx';
export const INIT_INPUTS = ['features'] as const;
export const INIT_OUTPUTS = ['memory', 'proj_features', 'h', 'c'] as const;
export const STEP_INPUTS = ['tokens', 'image', 'h', 'c', 'memory', 'proj_features'] as const;
export const STEP_OUTPUTS = ['log_probs', 'h_out', 'c_out', 'alpha'] as const;
/** The per-row format's names (see the header). */
export const LEGACY_INIT_OUTPUTS = ['proj_features', 'h', 'c'] as const;
export const LEGACY_STEP_INPUTS = ['tokens', 'h', 'c', 'features', 'proj_features'] as const;

export type GraphFormat = 'per-image' | 'per-row';

export interface ShowAttendTellOptions {
  /** Intra-op threads per session; default: all cores. */
  threads?: number;
  /** When given, every step checks that log_probs has this many columns (a vocab.json / model mismatch is MODEL_CORRUPT). */
  vocabSize?: number;
  /** Run the dense layers of both graphs with int8 weights (src/onnx/quantize.ts): about 2x faster per step at small batches. */
  int8?: boolean;
  /** With int8: calibrated ranges of the dense layers' inputs per graph (the card's quantization.int8DecoderCalibration). */
  int8Ranges?: Partial<Record<'init' | 'step', Record<string, { min: number; max: number }>>>;
  /**
   * Calibration only: extra tensors each graph returns, and a callback that sees every run's feeds and outputs
   * (src/decoder/int8-calibrate.ts).
   */
  observe?: {
    tensors: Partial<Record<'init' | 'step', string[]>>;
    onRun: (graph: 'init' | 'step', feeds: Record<string, Tensor>, outputs: Record<string, Tensor>) => void;
  };
}

/** What init computed once per image, for every step of the search. */
interface ImageTensors {
  /** [images, regions, featureDim]: the normalised features (per-image format) or the raw ones (per-row format). */
  memory: Tensor;
  /** [images, regions, attentionDim] */
  proj: Tensor;
  /** Per-row format only: the per-row copies its step graph needs. */
  legacy?: ImageBatch;
}

export interface ShowAttendTellState extends DecoderState {
  /** rows × hidden */
  h: Float32Array;
  c: Float32Array;
  /** Row → image index in the batch given to init (the step graph's `image` input as it is). */
  image: BigInt64Array;
  images: ImageTensors;
}

export class ShowAttendTellStepModel implements StepModel<ShowAttendTellState> {
  private constructor(
    private readonly initSession: InferenceSession,
    private readonly stepSession: InferenceSession,
    readonly regions: number,
    readonly featureDim: number,
    private expectedVocab: number | undefined,
    /** Which of the two graph formats of the header the directory holds. */
    readonly format: GraphFormat,
  ) {}

  private onRun?: NonNullable<ShowAttendTellOptions['observe']>['onRun'];

  static async load(modelDir: string, options: ShowAttendTellOptions = {}): Promise<ShowAttendTellStepModel> {
    // No spin-waiting: JavaScript runs between steps, and spinning threads would take the cores from the next step,
    // the encoder and the other sessions (measured: decoding 83 → 51 ms and the next encoder call 101 → 60 ms, batch 1).
    const session = sessionOptions(options.threads, { spinning: false });
    // Imported only when asked for: the ONNX protobuf code it needs stays out of the browser bundle (package.json "browser").
    const quantize = options.int8 ? (await import('../../onnx/quantize.js')).quantizeGemmWeights : undefined;
    if (options.int8 && typeof quantize !== 'function') throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'the int8 decoder is available in Node only');
    const observe = options.observe;
    const withOutputs = observe ? (await import('../../onnx/quantize-static.js')).withOutputs : undefined;
    const transform = (graph: 'init' | 'step') => {
      const extra = observe?.tensors[graph] ?? [];
      if (!quantize && !(withOutputs && extra.length)) return undefined;
      return (bytes: Uint8Array) => {
        const q = quantize ? quantize(bytes, { activationRanges: options.int8Ranges?.[graph] }).bytes : bytes;
        return withOutputs && extra.length ? withOutputs(q, extra) : q;
      };
    };
    const [initSession, stepSession] = await Promise.all([
      openSession(modelFile(modelDir, INIT_FILE), session, transform('init')),
      openSession(modelFile(modelDir, STEP_FILE), session, transform('step')),
    ]);
    try {
      const format: GraphFormat = stepSession.inputNames.includes('image') ? 'per-image' : 'per-row';
      checkNames(initSession, INIT_FILE, INIT_INPUTS, format === 'per-image' ? INIT_OUTPUTS : LEGACY_INIT_OUTPUTS);
      checkNames(stepSession, STEP_FILE, format === 'per-image' ? STEP_INPUTS : LEGACY_STEP_INPUTS, STEP_OUTPUTS);
      const featureShape = tensorShape(initSession.inputMetadata, 'features');
      const regions = numericDim(featureShape[1]);
      const featureDim = numericDim(featureShape[2]);
      if (regions === undefined || featureDim === undefined) {
        throw new PixelInfoError(
          ErrorCodes.MODEL_CORRUPT,
          `${modelFile(modelDir, INIT_FILE)}: input 'features' must have fixed region and channel dimensions, got [${featureShape.join(', ')}]`,
          { subject: modelDir },
        );
      }
      const graphVocab = numericDim(tensorShape(stepSession.outputMetadata, 'log_probs')[1]);
      if (graphVocab !== undefined && options.vocabSize !== undefined && graphVocab !== options.vocabSize) {
        throw new PixelInfoError(
          ErrorCodes.MODEL_CORRUPT,
          `${modelFile(modelDir, STEP_FILE)}: log_probs has ${graphVocab} columns but the vocabulary has ${options.vocabSize} words`,
          { subject: modelDir },
        );
      }
      const model = new ShowAttendTellStepModel(initSession, stepSession, regions, featureDim, options.vocabSize ?? graphVocab, format);
      model.onRun = observe?.onRun;
      return model;
    } catch (err) {
      await Promise.all([initSession.release(), stepSession.release()]);
      throw err;
    }
  }

  /** Known once the graph declares it, the caller gave it, or the first step ran; 0 before that. */
  get vocabSize(): number {
    return this.expectedVocab ?? 0;
  }

  async init(features: Float32Array, count: number): Promise<ShowAttendTellState> {
    const rowFloats = this.regions * this.featureDim;
    if (!Number.isInteger(count) || count < 1 || features.length < count * rowFloats) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `features must hold ${count} × ${this.regions} × ${this.featureDim} floats, got ${features.length}`);
    }
    const imageFeatures = features.length === count * rowFloats ? features : features.subarray(0, count * rowFloats);
    const input = new ort.Tensor('float32', imageFeatures, [count, this.regions, this.featureDim]);
    const out = await this.initSession.run({ features: input });
    this.onRun?.('init', { features: input }, out as Record<string, Tensor>);
    const proj = out.proj_features as Tensor;
    let images: ImageTensors;
    if (this.format === 'per-image') {
      images = { memory: out.memory as Tensor, proj };
    } else {
      const attentionDim = Number(proj.dims[2]);
      images = { memory: input, proj, legacy: new ImageBatch(imageFeatures, proj.data as Float32Array, this.regions, this.featureDim, attentionDim) };
    }
    const image = new BigInt64Array(count);
    for (let i = 0; i < count; i++) image[i] = BigInt(i);
    return { rows: count, h: out.h.data as Float32Array, c: out.c.data as Float32Array, image, images };
  }

  async step(tokens: BigInt64Array | ArrayLike<number>, state: ShowAttendTellState): Promise<StepOutput<ShowAttendTellState>> {
    const rows = state.rows;
    if (tokens.length !== rows) throw new RangeError(`${tokens.length} tokens for ${rows} rows`);
    const ids = tokens instanceof BigInt64Array ? tokens : BigInt64Array.from(Array.from(tokens as ArrayLike<number>, (t) => BigInt(t)));
    const hidden = state.h.length / rows;
    const feeds: Record<string, Tensor> = {
      tokens: new ort.Tensor('int64', ids, [rows]),
      h: new ort.Tensor('float32', state.h, [rows, hidden]),
      c: new ort.Tensor('float32', state.c, [rows, hidden]),
    };
    const { legacy } = state.images;
    if (legacy) {
      const expanded = legacy.expand(state.image);
      feeds.features = expanded.features;
      feeds.proj_features = expanded.proj;
    } else {
      feeds.image = new ort.Tensor('int64', state.image, [rows]);
      feeds.memory = state.images.memory;
      feeds.proj_features = state.images.proj;
    }
    const out = await this.stepSession.run(feeds);
    this.onRun?.('step', feeds, out as Record<string, Tensor>);
    const logProbs = out.log_probs.data as Float32Array;
    const alpha = out.alpha.data as Float32Array;
    const vocab = logProbs.length / rows;
    if (this.expectedVocab === undefined) this.expectedVocab = vocab;
    else if (vocab !== this.expectedVocab) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `decoder_step.onnx gave ${vocab} log-probabilities per row, the vocabulary has ${this.expectedVocab} words`);
    }
    if (alpha.length !== rows * this.regions) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `decoder_step.onnx gave ${alpha.length / rows} attention weights per row, expected ${this.regions}`);
    }
    return {
      logProbs,
      alpha,
      state: { rows, h: out.h_out.data as Float32Array, c: out.c_out.data as Float32Array, image: state.image, images: state.images },
    };
  }

  select(state: ShowAttendTellState, rowIndices: ArrayLike<number>): ShowAttendTellState {
    const rows = rowIndices.length;
    const hidden = state.h.length / state.rows;
    const h = new Float32Array(rows * hidden);
    const c = new Float32Array(rows * hidden);
    const image = new BigInt64Array(rows);
    for (let i = 0; i < rows; i++) {
      const from = rowIndices[i];
      if (!(from >= 0 && from < state.rows)) throw new RangeError(`row ${from} is outside a state of ${state.rows} rows`);
      h.set(state.h.subarray(from * hidden, (from + 1) * hidden), i * hidden);
      c.set(state.c.subarray(from * hidden, (from + 1) * hidden), i * hidden);
      image[i] = state.image[from];
    }
    return { rows, h, c, image, images: state.images };
  }

  async release(): Promise<void> {
    await Promise.all([this.initSession.release(), this.stepSession.release()]);
  }
}
