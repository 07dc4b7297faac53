/**
 * The image–text matcher (docs/formats.md, "Matcher model directory"): two onnxruntime sessions, image.onnx
 * (encoder features → unit embedding) and text.onnx (word ids → unit embedding), the vocabulary and the card's
 * calibration (cosine → logit → score). Sentences are tokenised as training captions are (src/text/ptb.ts).
 *
 * No Node imports: the runtime and the files come from the ONNX backend module (../backend/onnx.ts in Node,
 * ../backend/onnx.browser.ts in a browser), so a browser can load a matcher from a URL folder the same way.
 */
import { modelFile, ort, readModelFile, type InferenceSession } from '../backend/onnx.js';
import { checkNames, numericDim, openSession, sessionOptions, tensorShape } from '../decoder/onnx-session.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { ptbTokenize } from '../text/ptb.js';
import { SPECIALS, Vocabulary } from '../text/vocabulary.js';
import { parseMatcherCard, type MatcherCard } from './card.js';
import { calibrate, scorePairs } from './score.js';
import type { MatchCalibration, MatchScore, MatcherModel } from './types.js';

export { calibrate, cosineAt, scorePairs } from './score.js';

export const MATCHER_FILES = {
  image: 'image.onnx',
  text: 'text.onnx',
  vocab: 'vocab.json',
  card: 'model-card.json',
} as const;
export const IMAGE_INPUTS = ['features'] as const;
export const TEXT_INPUTS = ['tokens', 'lengths'] as const;
export const EMBEDDING_OUTPUT = 'embedding';

export interface MatcherLoadOptions {
  /** onnxruntime intra-op threads per session; default: all cores. */
  threads?: number;
  /** Sentences per text.onnx call. Default 256. */
  textBatchSize?: number;
}

/** Sentences as text.onnx takes them: `tokens` [count, width] (right-padded with <pad>) and `lengths` [count]. */
export interface TokenisedTexts {
  count: number;
  width: number;
  tokens: BigInt64Array;
  lengths: BigInt64Array;
}

/**
 * Word ids of sentences: PTB tokens (lower case, punctuation dropped) → vocabulary ids (unknown → <unk>), cut to
 * `maxTokens`; a sentence with no token is one <unk>. Rows are right-padded with <pad> to `width`.
 */
export function tokenizeTexts(texts: readonly string[], vocabulary: Vocabulary, maxTokens: number, width = maxTokens): TokenisedTexts {
  if (width < maxTokens) throw new PixelInfoError(ErrorCodes.INTERNAL, `token width ${width} is below maxTokens ${maxTokens}`);
  const tokens = new BigInt64Array(texts.length * width).fill(BigInt(SPECIALS.pad));
  const lengths = new BigInt64Array(texts.length);
  texts.forEach((text, row) => {
    const words = ptbTokenize(checkText(text, row));
    const ids = words.length ? vocabulary.encode(words, maxTokens) : [SPECIALS.unk];
    ids.forEach((id, k) => (tokens[row * width + k] = BigInt(id)));
    lengths[row] = BigInt(ids.length);
  });
  return { count: texts.length, width, tokens, lengths };
}

function checkText(text: unknown, i: number): string {
  if (typeof text !== 'string') throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `text ${i} is not a string`);
  return text;
}

/** A matcher model directory (a folder path in Node, a folder URL in a browser), loaded. */
export class OnnxMatcher implements MatcherModel {
  readonly dim: number;
  readonly calibration: MatchCalibration;
  /** Sentences are cut to this many tokens (the card's `maxTokens`). */
  readonly maxTokens: number;

  private constructor(
    readonly dir: string,
    readonly card: MatcherCard,
    readonly vocabulary: Vocabulary,
    private readonly imageSession: InferenceSession,
    private readonly textSession: InferenceSession,
    /** Regions and channels image.onnx reads per image. */
    readonly regions: number,
    readonly featureDim: number,
    /** Padded width of the tokens input: the graph's fixed T when it has one, else maxTokens. */
    private readonly tokenWidth: number,
    private readonly textBatchSize: number,
  ) {
    this.dim = card.embeddingDim;
    this.calibration = { a: card.calibration.a, b: card.calibration.b };
    this.maxTokens = card.maxTokens;
  }

  /** The card's name, else the folder's. */
  get name(): string {
    return this.card.name ?? (this.dir.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || this.dir);
  }

  static async load(dir: string, options: MatcherLoadOptions = {}): Promise<OnnxMatcher> {
    const textBatchSize = options.textBatchSize ?? 256;
    if (!Number.isInteger(textBatchSize) || textBatchSize < 1) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `textBatchSize must be a positive integer, got ${textBatchSize}`);
    }
    const cardPath = modelFile(dir, MATCHER_FILES.card);
    const vocabPath = modelFile(dir, MATCHER_FILES.vocab);
    const card = parseMatcherCard(await readJson(cardPath), cardPath);
    let vocabulary: Vocabulary;
    const words = await readJson(vocabPath);
    try {
      vocabulary = Vocabulary.fromJSON(words);
    } catch (err) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${vocabPath}: ${(err as Error).message}`, { subject: vocabPath, cause: err });
    }
    const imagePath = modelFile(dir, MATCHER_FILES.image);
    const textPath = modelFile(dir, MATCHER_FILES.text);
    // no spin-waiting: short runs between other sessions' (see src/decoder/models/show-attend-tell.ts)
    const session = sessionOptions(options.threads, { spinning: false });
    const [image, text] = await Promise.allSettled([openSession(imagePath, session, undefined, 'matcher model file'), openSession(textPath, session, undefined, 'matcher model file')]);
    if (image.status === 'rejected' || text.status === 'rejected') {
      await Promise.all([image, text].map((s) => (s.status === 'fulfilled' ? s.value.release() : undefined)));
      throw image.status === 'rejected' ? image.reason : (text as PromiseRejectedResult).reason;
    }
    const [imageSession, textSession] = [image.value, text.value];
    try {
      checkNames(imageSession, imagePath, IMAGE_INPUTS, [EMBEDDING_OUTPUT]);
      checkNames(textSession, textPath, TEXT_INPUTS, [EMBEDDING_OUTPUT]);
      const featureShape = tensorShape(imageSession.inputMetadata, 'features');
      const regions = numericDim(featureShape[1]);
      const featureDim = numericDim(featureShape[2]);
      if (regions === undefined || featureDim === undefined) {
        throw new PixelInfoError(
          ErrorCodes.MODEL_CORRUPT,
          `${imagePath}: input 'features' must have fixed region and channel dimensions, got [${featureShape.join(', ')}]`,
          { subject: imagePath },
        );
      }
      for (const [s, path] of [[imageSession, imagePath], [textSession, textPath]] as const) {
        const graphDim = numericDim(tensorShape(s.outputMetadata, EMBEDDING_OUTPUT)[1]);
        if (graphDim !== undefined && graphDim !== card.embeddingDim) {
          throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path}: output 'embedding' has ${graphDim} columns but the card's embeddingDim is ${card.embeddingDim}`, { subject: path });
        }
      }
      const graphWidth = numericDim(tensorShape(textSession.inputMetadata, 'tokens')[1]);
      if (graphWidth !== undefined && graphWidth < card.maxTokens) {
        throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${textPath}: input 'tokens' holds ${graphWidth} tokens but the card's maxTokens is ${card.maxTokens}`, { subject: textPath });
      }
      return new OnnxMatcher(dir, card, vocabulary, imageSession, textSession, regions, featureDim, graphWidth ?? card.maxTokens, textBatchSize);
    } catch (err) {
      await Promise.all([imageSession.release(), textSession.release()]);
      throw err;
    }
  }

  /** Image embeddings from encoder features [count, regions, channels] → [count, dim], each row unit length. */
  async embedImages(features: Float32Array, count: number): Promise<Float32Array> {
    const rowFloats = this.regions * this.featureDim;
    if (!Number.isInteger(count) || count < 0 || features.length < count * rowFloats) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `features must hold ${count} × ${this.regions} × ${this.featureDim} floats, got ${features.length}`);
    }
    if (count === 0) return new Float32Array(0);
    const input = new ort.Tensor('float32', features.length === count * rowFloats ? features : features.subarray(0, count * rowFloats), [count, this.regions, this.featureDim]);
    const result = await this.imageSession.run({ features: input }, [EMBEDDING_OUTPUT]);
    return this.embeddingsOf(result[EMBEDDING_OUTPUT], count, MATCHER_FILES.image);
  }

  /** Sentence embeddings → [texts.length, dim], each row unit length, textBatchSize sentences per text.onnx call. */
  async embedTexts(texts: readonly string[]): Promise<Float32Array> {
    const out = new Float32Array(texts.length * this.dim);
    for (let start = 0; start < texts.length; start += this.textBatchSize) {
      const chunk = texts.slice(start, start + this.textBatchSize);
      const { count, width, tokens, lengths } = this.tokenize(chunk);
      const result = await this.textSession.run(
        { tokens: new ort.Tensor('int64', tokens, [count, width]), lengths: new ort.Tensor('int64', lengths, [count]) },
        [EMBEDDING_OUTPUT],
      );
      out.set(this.embeddingsOf(result[EMBEDDING_OUTPUT], count, MATCHER_FILES.text), start * this.dim);
    }
    return out;
  }

  /** The word ids text.onnx gets for these sentences. */
  tokenize(texts: readonly string[]): TokenisedTexts {
    return tokenizeTexts(texts, this.vocabulary, this.maxTokens, this.tokenWidth);
  }

  /** The card's calibration of a cosine: { score, logit }. */
  calibrate(cosine: number): { score: number; logit: number } {
    return calibrate(cosine, this.calibration);
  }

  /** Pairs of text j with image row imageOf[j] (default 0) of embeddings from embedImages / embedTexts. */
  scorePairs(imageEmbeddings: Float32Array, texts: readonly string[], textEmbeddings: Float32Array, imageOf?: ArrayLike<number>): MatchScore[] {
    return scorePairs(this, imageEmbeddings, texts, textEmbeddings, imageOf);
  }

  /** Scores of sentences against encoder features of one image ([regions, channels]). */
  async scoreTexts(features: Float32Array, texts: readonly string[]): Promise<MatchScore[]> {
    const [image, embedded] = await Promise.all([this.embedImages(features, 1), this.embedTexts(texts)]);
    return this.scorePairs(image, texts, embedded);
  }

  async release(): Promise<void> {
    await Promise.all([this.imageSession.release(), this.textSession.release()]);
  }

  /** A graph's [count, dim] output, checked and each row L2-normalised again (fp16 weights round the graph's own). */
  private embeddingsOf(tensor: { dims: readonly number[]; data: unknown } | undefined, count: number, file: string): Float32Array {
    if (!tensor || !(tensor.data instanceof Float32Array) || tensor.dims.length !== 2 || tensor.dims[0] !== count || tensor.dims[1] !== this.dim) {
      throw new PixelInfoError(
        ErrorCodes.MODEL_CORRUPT,
        `${modelFile(this.dir, file)}: output 'embedding' should be float32 [${count}, ${this.dim}], got ${tensor ? `[${tensor.dims.join(', ')}]` : 'nothing'}`,
        { subject: modelFile(this.dir, file) },
      );
    }
    const data = Float32Array.from(tensor.data);
    for (let row = 0; row < count; row++) {
      const v = data.subarray(row * this.dim, (row + 1) * this.dim);
      let norm = 0;
      for (let k = 0; k < v.length; k++) norm += v[k] * v[k];
      norm = Math.sqrt(norm);
      if (!Number.isFinite(norm) || norm === 0) {
        throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${modelFile(this.dir, file)}: embedding ${row} has length ${norm}`, { subject: modelFile(this.dir, file) });
      }
      for (let k = 0; k < v.length; k++) v[k] /= norm;
    }
    return data;
  }
}

/** The matcher of a model directory (docs/formats.md): MODEL_NOT_FOUND / MODEL_CORRUPT naming the file when it cannot be. */
export function loadMatcher(dir: string, options: MatcherLoadOptions = {}): Promise<OnnxMatcher> {
  return OnnxMatcher.load(dir, options);
}

async function readJson(path: string): Promise<unknown> {
  const bytes = await readModelFile(path, 'matcher model file');
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path}: not valid JSON (${(err as Error).message})`, { subject: path, cause: err });
  }
}
