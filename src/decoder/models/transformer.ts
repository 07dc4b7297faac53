/**
 * Architecture `transformer` (registry entry in ../registry.ts; trainer/models/transformer.py on the Python side): a
 * pre-LN Transformer decoder exported as two ONNX graphs (docs/formats.md, "transformer"). decoder_init.onnx turns
 * each image's features into every layer's cross-attention keys and values once; decoder_step.onnx feeds one token
 * per row (every beam of every image in one call) with the rows' self-attention key/value cache, gathers each row's
 * image tensors inside the graph by a row → image index, and returns the cache grown by one position.
 *
 * The state (the cache, the row → image index, the per-image tensors) is opaque to the search; select() copies whole
 * rows of the cache, which is rows-first for that reason.
 */
import { modelFile, ort, type InferenceSession, type Tensor } from '../../backend/onnx.js';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import type { DecoderState, StepModel, StepOutput } from '../step-model.js';
import { checkNames, numericDim, openSession, sessionOptions, tensorShape } from '../onnx-session.js';

export const INIT_FILE = 'decoder_init.onnx';
export const STEP_FILE = 'decoder_step.onnx';
export const INIT_INPUTS = ['features'] as const;
export const INIT_OUTPUTS = ['memory', 'cross_keys', 'cross_values'] as const;
export const STEP_INPUTS = ['tokens', 'image', 'past_keys', 'past_values', 'cross_keys', 'cross_values'] as const;
export const STEP_OUTPUTS = ['log_probs', 'past_keys_out', 'past_values_out', 'alpha'] as const;

export interface TransformerOptions {
  /** Intra-op threads per session; default: all cores. */
  threads?: number;
  /** When given, it must equal the step graph's log_probs width (a vocab.json / model mismatch is MODEL_CORRUPT). */
  vocabSize?: number;
}

/** The geometry of the cache: every cache tensor is [rows, layers, heads, length, headDim]. */
export interface CacheGeometry {
  layers: number;
  heads: number;
  headDim: number;
}

/** What init computed once per image, read by every step through the row → image index. */
interface ImageTensors {
  /** [images, layers, heads, regions, headDim] */
  crossKeys: Tensor;
  /** [images, layers, heads, regions, headDim] */
  crossValues: Tensor;
}

export interface TransformerState extends DecoderState {
  /** Tokens fed so far: the cache length T (0 before the first step). */
  readonly length: number;
  /** [rows, layers, heads, length, headDim]: the self-attention keys of every token fed so far. */
  pastKeys: Float32Array;
  /** [rows, layers, heads, length, headDim] */
  pastValues: Float32Array;
  /** [rows]: row → image index in the batch given to init (the step graph's `image` input as it is). */
  image: BigInt64Array;
  images: ImageTensors;
}

export class TransformerStepModel implements StepModel<TransformerState> {
  private constructor(
    private readonly initSession: InferenceSession,
    private readonly stepSession: InferenceSession,
    readonly regions: number,
    readonly featureDim: number,
    readonly cache: CacheGeometry,
    private expectedVocab: number | undefined,
  ) {}

  static async load(modelDir: string, options: TransformerOptions = {}): Promise<TransformerStepModel> {
    // No spin-waiting, as for every decoder: JavaScript runs between steps (see show-attend-tell.ts).
    const session = sessionOptions(options.threads, { spinning: false });
    const [initSession, stepSession] = await Promise.all([
      openSession(modelFile(modelDir, INIT_FILE), session),
      openSession(modelFile(modelDir, STEP_FILE), session),
    ]);
    try {
      checkNames(initSession, INIT_FILE, INIT_INPUTS, INIT_OUTPUTS);
      checkNames(stepSession, STEP_FILE, STEP_INPUTS, STEP_OUTPUTS);
      const corrupt = (file: string, message: string) =>
        new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${modelFile(modelDir, file)}: ${message}`, { subject: modelDir });
      // features [B, R, D]
      const featureShape = tensorShape(initSession.inputMetadata, 'features');
      const regions = numericDim(featureShape[1]);
      const featureDim = numericDim(featureShape[2]);
      if (regions === undefined || featureDim === undefined) {
        throw corrupt(INIT_FILE, `input 'features' must have fixed region and channel dimensions, got [${featureShape.join(', ')}]`);
      }
      // cross_keys [B, L, H, R, hd] (init output) and past_keys [N, L, H, T, hd] (step input) must agree
      const cross = tensorShape(initSession.outputMetadata, 'cross_keys').map(numericDim);
      const past = tensorShape(stepSession.inputMetadata, 'past_keys').map(numericDim);
      const [layers, heads, headDim] = [cross[1], cross[2], cross[4]];
      if (layers === undefined || heads === undefined || headDim === undefined || cross[3] !== regions) {
        throw corrupt(INIT_FILE, `output 'cross_keys' must be [B, layers, heads, ${regions}, headDim] with fixed sizes`);
      }
      if (past.length !== 5 || past[1] !== layers || past[2] !== heads || past[4] !== headDim) {
        throw corrupt(STEP_FILE, `input 'past_keys' must be [N, ${layers}, ${heads}, T, ${headDim}] (as init's cross_keys)`);
      }
      const graphVocab = numericDim(tensorShape(stepSession.outputMetadata, 'log_probs')[1]);
      if (graphVocab !== undefined && options.vocabSize !== undefined && graphVocab !== options.vocabSize) {
        throw corrupt(STEP_FILE, `log_probs has ${graphVocab} columns but the vocabulary has ${options.vocabSize} words`);
      }
      return new TransformerStepModel(initSession, stepSession, regions, featureDim, { layers, heads, headDim }, options.vocabSize ?? graphVocab);
    } catch (err) {
      await Promise.all([initSession.release(), stepSession.release()]);
      throw err;
    }
  }

  /** Known once the graph declares it, the caller gave it, or the first step ran; 0 before that. */
  get vocabSize(): number {
    return this.expectedVocab ?? 0;
  }

  async init(features: Float32Array, count: number): Promise<TransformerState> {
    const rowFloats = this.regions * this.featureDim;
    if (!Number.isInteger(count) || count < 1 || features.length < count * rowFloats) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `features must hold ${count} × ${this.regions} × ${this.featureDim} floats, got ${features.length}`);
    }
    const imageFeatures = features.length === count * rowFloats ? features : features.subarray(0, count * rowFloats);
    // features [count, R, D] → cross_keys, cross_values [count, L, H, R, hd] (memory is not needed by the step)
    const out = await this.initSession.run({ features: new ort.Tensor('float32', imageFeatures, [count, this.regions, this.featureDim]) });
    const image = new BigInt64Array(count);
    for (let i = 0; i < count; i++) image[i] = BigInt(i);
    return {
      rows: count,
      length: 0,
      pastKeys: new Float32Array(0),
      pastValues: new Float32Array(0),
      image,
      images: { crossKeys: out.cross_keys as Tensor, crossValues: out.cross_values as Tensor },
    };
  }

  async step(tokens: BigInt64Array | ArrayLike<number>, state: TransformerState): Promise<StepOutput<TransformerState>> {
    const { rows, length } = state;
    if (tokens.length !== rows) throw new RangeError(`${tokens.length} tokens for ${rows} rows`);
    const ids = tokens instanceof BigInt64Array ? tokens : BigInt64Array.from(Array.from(tokens as ArrayLike<number>, (t) => BigInt(t)));
    const { layers, heads, headDim } = this.cache;
    const pastDims = [rows, layers, heads, length, headDim]; // length 0 on the first step: an empty cache
    const feeds: Record<string, Tensor> = {
      tokens: new ort.Tensor('int64', ids, [rows]),
      image: new ort.Tensor('int64', state.image, [rows]),
      past_keys: new ort.Tensor('float32', state.pastKeys, pastDims),
      past_values: new ort.Tensor('float32', state.pastValues, pastDims),
      cross_keys: state.images.crossKeys,
      cross_values: state.images.crossValues,
    };
    const out = await this.stepSession.run(feeds);
    const logProbs = out.log_probs.data as Float32Array; // [rows, V]
    const alpha = out.alpha.data as Float32Array; // [rows, R]
    const pastKeys = out.past_keys_out.data as Float32Array; // [rows, L, H, length + 1, hd]
    const pastValues = out.past_values_out.data as Float32Array;
    const vocab = logProbs.length / rows;
    if (this.expectedVocab === undefined) this.expectedVocab = vocab;
    else if (vocab !== this.expectedVocab) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `decoder_step.onnx gave ${vocab} log-probabilities per row, the vocabulary has ${this.expectedVocab} words`);
    }
    if (alpha.length !== rows * this.regions) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `decoder_step.onnx gave ${alpha.length / rows} attention weights per row, expected ${this.regions}`);
    }
    if (pastKeys.length !== rows * layers * heads * (length + 1) * headDim || pastValues.length !== pastKeys.length) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `decoder_step.onnx returned a cache of [${out.past_keys_out.dims.join(', ')}], expected [${rows}, ${layers}, ${heads}, ${length + 1}, ${headDim}]`);
    }
    return { logProbs, alpha, state: { rows, length: length + 1, pastKeys, pastValues, image: state.image, images: state.images } };
  }

  select(state: TransformerState, rowIndices: ArrayLike<number>): TransformerState {
    const rows = rowIndices.length;
    const { layers, heads, headDim } = this.cache;
    const rowFloats = layers * heads * state.length * headDim; // one row of the cache, contiguous
    const pastKeys = new Float32Array(rows * rowFloats);
    const pastValues = new Float32Array(rows * rowFloats);
    const image = new BigInt64Array(rows);
    for (let i = 0; i < rows; i++) {
      const from = rowIndices[i];
      if (!(Number.isInteger(from) && from >= 0 && from < state.rows)) throw new RangeError(`row ${from} is outside a state of ${state.rows} rows`);
      pastKeys.set(state.pastKeys.subarray(from * rowFloats, (from + 1) * rowFloats), i * rowFloats);
      pastValues.set(state.pastValues.subarray(from * rowFloats, (from + 1) * rowFloats), i * rowFloats);
      image[i] = state.image[from];
    }
    return { rows, length: state.length, pastKeys, pastValues, image, images: state.images };
  }

  async release(): Promise<void> {
    await Promise.all([this.initSession.release(), this.stepSession.release()]);
  }
}
