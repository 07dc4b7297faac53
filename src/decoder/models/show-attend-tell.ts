/**
 * Architecture `show-attend-tell` (registry entry in ../registry.ts; trainer/models/show_attend_tell.py on the
 * Python side): the soft-attention LSTM decoder exported as two ONNX graphs (docs/formats.md, "Decoder model
 * directory"). decoder_init.onnx makes the per-image state, decoder_step.onnx advances every beam of every image
 * in one call. The step state (h, c and a row → image index) is opaque to the search.
 */
import { modelFile, ort, type InferenceSession, type Tensor } from '../../backend/onnx.js';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import type { DecoderState, StepModel, StepOutput } from '../step-model.js';
import { checkNames, numericDim, openSession, sessionOptions, tensorShape } from '../onnx-session.js';

export const INIT_FILE = 'decoder_init.onnx';
export const STEP_FILE = 'decoder_step.onnx';
export const INIT_INPUTS = ['features'] as const;
export const INIT_OUTPUTS = ['proj_features', 'h', 'c'] as const;
export const STEP_INPUTS = ['tokens', 'h', 'c', 'features', 'proj_features'] as const;
export const STEP_OUTPUTS = ['log_probs', 'h_out', 'c_out', 'alpha'] as const;

export interface ShowAttendTellOptions {
  /** Intra-op threads per session; default: all cores. */
  threads?: number;
  /** When given, every step checks that log_probs has this many columns (a vocab.json / model mismatch is MODEL_CORRUPT). */
  vocabSize?: number;
  /** Run the step graph's dense layers with int8 weights (src/onnx/quantize.ts): about 2x faster per step at small batches. */
  int8?: boolean;
}

/** Image-level tensors shared by all rows of one search, and the per-row copies the step graph needs. */
class ImageBatch {
  /** Row → image map the expanded buffers currently hold, or null before the first step. */
  private expandedFor: Int32Array | null = null;
  private features?: Float32Array;
  private proj?: Float32Array;
  private featuresTensor?: Tensor;
  private projTensor?: Tensor;

  constructor(
    readonly imageFeatures: Float32Array,
    readonly imageProj: Float32Array,
    readonly regions: number,
    readonly featureDim: number,
    readonly attentionDim: number,
  ) {}

  /**
   * [rows, regions, D] tensors of features and projected features for this row → image map. They are rebuilt
   * only when the map changes (after step 1 the beams keep their rows until an image finishes), and then only
   * the rows whose image changed are copied, into buffers reused while they are big enough.
   */
  expand(image: Int32Array): { features: Tensor; proj: Tensor } {
    const rows = image.length;
    const previous = this.expandedFor;
    if (previous && this.featuresTensor && this.projTensor && sameMap(previous, image)) {
      return { features: this.featuresTensor, proj: this.projTensor };
    }
    const fRow = this.regions * this.featureDim;
    const pRow = this.regions * this.attentionDim;
    let reuse = previous !== null;
    if (!this.features || this.features.length < rows * fRow) {
      this.features = new Float32Array(rows * fRow);
      this.proj = new Float32Array(rows * pRow);
      reuse = false;
    }
    for (let r = 0; r < rows; r++) {
      const img = image[r];
      if (reuse && r < previous!.length && previous![r] === img) continue;
      this.features.set(this.imageFeatures.subarray(img * fRow, (img + 1) * fRow), r * fRow);
      this.proj!.set(this.imageProj.subarray(img * pRow, (img + 1) * pRow), r * pRow);
    }
    // Views from offset 0 of the reused buffers: no copy, and no reliance on byteOffset handling.
    this.featuresTensor = new ort.Tensor('float32', this.features.subarray(0, rows * fRow), [rows, this.regions, this.featureDim]);
    this.projTensor = new ort.Tensor('float32', this.proj!.subarray(0, rows * pRow), [rows, this.regions, this.attentionDim]);
    this.expandedFor = image.slice();
    return { features: this.featuresTensor, proj: this.projTensor };
  }
}

function sameMap(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface ShowAttendTellState extends DecoderState {
  /** rows × hidden */
  h: Float32Array;
  c: Float32Array;
  /** Row → image index in the batch given to init. */
  image: Int32Array;
  batch: ImageBatch;
}

export class ShowAttendTellStepModel implements StepModel<ShowAttendTellState> {
  private constructor(
    private readonly initSession: InferenceSession,
    private readonly stepSession: InferenceSession,
    readonly regions: number,
    readonly featureDim: number,
    private expectedVocab: number | undefined,
  ) {}

  static async load(modelDir: string, options: ShowAttendTellOptions = {}): Promise<ShowAttendTellStepModel> {
    const session = sessionOptions(options.threads);
    // Imported only when asked for: the ONNX protobuf code it needs stays out of the browser bundle (package.json "browser").
    const quantize = options.int8 ? (await import('../../onnx/quantize.js')).quantizeGemmWeights : undefined;
    if (options.int8 && typeof quantize !== 'function') throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'the int8 decoder is available in Node only');
    const [initSession, stepSession] = await Promise.all([
      openSession(modelFile(modelDir, INIT_FILE), session),
      openSession(modelFile(modelDir, STEP_FILE), session, quantize ? (bytes) => quantize(bytes).bytes : undefined),
    ]);
    try {
      checkNames(initSession, INIT_FILE, INIT_INPUTS, INIT_OUTPUTS);
      checkNames(stepSession, STEP_FILE, STEP_INPUTS, STEP_OUTPUTS);
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
      return new ShowAttendTellStepModel(initSession, stepSession, regions, featureDim, options.vocabSize ?? graphVocab);
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
    const proj = out.proj_features as Tensor;
    const attentionDim = Number(proj.dims[2]);
    const batch = new ImageBatch(imageFeatures, proj.data as Float32Array, this.regions, this.featureDim, attentionDim);
    return {
      rows: count,
      h: out.h.data as Float32Array,
      c: out.c.data as Float32Array,
      image: Int32Array.from({ length: count }, (_, i) => i),
      batch,
    };
  }

  async step(tokens: BigInt64Array | ArrayLike<number>, state: ShowAttendTellState): Promise<StepOutput<ShowAttendTellState>> {
    const rows = state.rows;
    if (tokens.length !== rows) throw new RangeError(`${tokens.length} tokens for ${rows} rows`);
    const ids = tokens instanceof BigInt64Array ? tokens : BigInt64Array.from(Array.from(tokens as ArrayLike<number>, (t) => BigInt(t)));
    const hidden = state.h.length / rows;
    const { features, proj } = state.batch.expand(state.image);
    const out = await this.stepSession.run({
      tokens: new ort.Tensor('int64', ids, [rows]),
      h: new ort.Tensor('float32', state.h, [rows, hidden]),
      c: new ort.Tensor('float32', state.c, [rows, hidden]),
      features,
      proj_features: proj,
    });
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
      state: { rows, h: out.h_out.data as Float32Array, c: out.c_out.data as Float32Array, image: state.image, batch: state.batch },
    };
  }

  select(state: ShowAttendTellState, rowIndices: ArrayLike<number>): ShowAttendTellState {
    const rows = rowIndices.length;
    const hidden = state.h.length / state.rows;
    const h = new Float32Array(rows * hidden);
    const c = new Float32Array(rows * hidden);
    const image = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      const from = rowIndices[i];
      if (!(from >= 0 && from < state.rows)) throw new RangeError(`row ${from} is outside a state of ${state.rows} rows`);
      h.set(state.h.subarray(from * hidden, (from + 1) * hidden), i * hidden);
      c.set(state.c.subarray(from * hidden, (from + 1) * hidden), i * hidden);
      image[i] = state.image[from];
    }
    return { rows, h, c, image, batch: state.batch };
  }

  async release(): Promise<void> {
    await Promise.all([this.initSession.release(), this.stepSession.release()]);
  }
}
