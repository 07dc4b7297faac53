/**
 * The captioning steps both sides share, with no Node or DOM imports: the result types, the encoder → beam
 * search step for a batch of loaded images, and the geometry check between encoder and decoder. Node's
 * Captioner (./captioner.ts) loads images with sharp and models from folders; the browser's (src/web) with a
 * canvas and from URLs; both end here, so captions, n-best lists and attention are the same.
 */
import type { EncoderSession } from '../encoder/session.js';
import type { EncoderGeometry } from '../encoder/geometry.js';
import { writeCaffeTensor, IMAGE_FLOATS } from '../image/tensor.js';
import type { LoadedImage } from '../image/types.js';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';
import type { LoadedDecoder } from '../decoder/registry.js';
import type { GenerationConfig, GenerationOptions } from '../decoder/generation.js';
import { beamSearch, type Hypothesis } from '../decoder/search.js';
import { tagsFromLogits, tagTokenIds, type ImageTag } from '../encoder/tags.js';
import type { Vocabulary } from '../text/vocabulary.js';
import { scorePairs } from '../match/score.js';
import type { MatcherModel } from '../match/types.js';

/** What a call asks of the matcher (only when one is loaded). */
export interface MatchOptions {
  /**
   * The order of the n-best list: 'score' (default), the decoder's ranking score; 'match', highest `confidence`
   * first (ties keep the decoder's order). Re-ranking only reorders the nBest captions the beam search returned,
   * so ask for nBest > 1 (and a beam at least that wide) for it to change anything. Needs a matcher.
   */
  rerank?: 'score' | 'match';
  /** Add `embedding` (the matcher's unit-length image embedding) to each result. Needs a matcher. */
  returnEmbedding?: boolean;
}

/** Decoding settings for one call; what is left out comes from the model card, then the library defaults. */
export type CaptionOptions = GenerationOptions & MatchOptions;

export interface Caption {
  /** Words joined by spaces, lower case as the model writes them, no final period. */
  text: string;
  tokens: string[];
  /** The search's ranking score: logProb / (tokens + 1)^lengthPenalty. */
  score: number;
  /** Sum of the log-probabilities of the words and of <end>. */
  logProb: number;
  /** Per token, one attention weight per region of the encoder's grid (row-major); only with returnAttention. */
  attention?: number[][];
  /**
   * The matcher's score of (image, text) in [0, 1] (MatchScore.score: calibrated probability that people wrote
   * this sentence for this image); on every caption when the captioner has a matcher.
   */
  confidence?: number;
}

export interface CaptionTimings {
  preprocessMs: number;
  encoderMs: number;
  decoderMs: number;
  /** Image and caption embeddings and their scores; only when a matcher is loaded (included in totalMs). */
  matcherMs?: number;
  totalMs: number;
}

export interface CaptionResult {
  /** The file path, or `<buffer>` / `<buffer i>` for buffers. */
  source: string;
  /** Format and size of the input image (after EXIF orientation). */
  image: { format: string; width: number; height: number };
  /** Best first; nBest of them. */
  captions: Caption[];
  /** Per image. Images are processed in batches; a batch's stage times are shared evenly among its images. */
  timings: CaptionTimings;
  /** Only with returnEmbedding: the matcher's image embedding, unit length (compare with Captioner.embedTexts rows by dot product). */
  embedding?: number[];
  /**
   * Caption words the encoder's ImageNet classifier is confident about (src/encoder/tags.ts), most probable first:
   * each with its summed class probability (at least the call's tagThreshold) and the classes behind it. Guided
   * decoding (tagBonus > 0) favours these words. Empty when no word is confident enough. The captioners always set
   * it (optional in the type only so that results built elsewhere, e.g. stored before tags existed, still fit).
   */
  tags?: ImageTag[];
}

export interface CaptionFailure {
  source: string;
  error: { code: ErrorCode; message: string };
}

/** One slot of an array call. */
export type CaptionOutcome = CaptionResult | CaptionFailure;

export function isCaptionFailure(outcome: CaptionOutcome): outcome is CaptionFailure {
  return 'error' in outcome;
}

/** One image after loading: its 224x224 pixels, or why it could not be loaded. */
export type LoadOutcome = { ok: true; image: LoadedImage } | { ok: false; source: string; error: PixelInfoError };

/** The models a caption needs. */
export interface CaptionModels {
  encoder: EncoderSession;
  decoder: LoadedDecoder;
  vocabulary: Vocabulary;
  /** When present, every caption gets a `confidence`; needed for rerank: 'match' and returnEmbedding. */
  matcher?: MatcherModel;
}

/** The call's match options, checked: INVALID_ARGUMENT when they ask for a matcher that is not there. */
export function resolveMatchOptions(options: MatchOptions, matcher: MatcherModel | undefined): Required<MatchOptions> {
  const rerank = options.rerank ?? 'score';
  if (rerank !== 'score' && rerank !== 'match') {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `rerank must be 'score' or 'match', got ${JSON.stringify(rerank)}`, { subject: 'rerank' });
  }
  const returnEmbedding = options.returnEmbedding ?? false;
  if (!matcher && (rerank === 'match' || returnEmbedding)) {
    const asked = rerank === 'match' ? "rerank: 'match'" : 'returnEmbedding';
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${asked} needs a matcher model, and this captioner has none (see matcherDir)`, { subject: asked });
  }
  return { rerank, returnEmbedding };
}

/**
 * The matcher's scores of each image's captions, in place: all images in one image.onnx call, all captions in one
 * text.onnx call (the matcher's text batch size permitting); then the re-ranking. Returns the image embeddings.
 */
export async function scoreCaptions(matcher: MatcherModel, features: Float32Array, captions: Caption[][], match: Required<MatchOptions>): Promise<Float32Array> {
  const imageEmbeddings = await matcher.embedImages(features, captions.length);
  const texts = captions.flatMap((list) => list.map((c) => c.text));
  const imageOf = captions.flatMap((list, i) => list.map(() => i));
  const scores = scorePairs(matcher, imageEmbeddings, texts, await matcher.embedTexts(texts), imageOf);
  let k = 0;
  for (const list of captions) {
    for (const caption of list) caption.confidence = scores[k++].score;
    if (match.rerank === 'match') rerankByConfidence(list);
  }
  return imageEmbeddings;
}

/** `rerank: 'match'`: the n-best list in place, highest confidence first (ties keep the decoder's order). */
export function rerankByConfidence<C extends { confidence?: number }>(list: C[]): C[] {
  const ranked = list.map((c, i) => ({ c, i })).sort((x, y) => (y.c.confidence ?? 0) - (x.c.confidence ?? 0) || x.i - y.i);
  ranked.forEach(({ c }, i) => (list[i] = c));
  return list;
}

/** MODEL_CORRUPT when the decoder does not read the features the encoder gives. */
export function checkGeometry(decoder: LoadedDecoder, geometry: EncoderGeometry, where: string): void {
  const { regions, channels } = geometry;
  if (decoder.regions !== regions || decoder.featureDim !== channels) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_CORRUPT,
      `${where}: the decoder reads ${decoder.regions} × ${decoder.featureDim} features, the encoder gives ${regions} × ${channels}`,
      { subject: where },
    );
  }
}

/**
 * Per image, nBest captions for count × regions × channels features.
 *
 * `tags` (per image, e.g. tagsFromLogits of the same images) guide the search when search.tagBonus > 0: the images
 * are searched as usual, and those whose best caption names none of their tags (src/encoder/tags.ts namesTag: dog is
 * named by "dog", "puppies", "terrier"...) are searched again with their tags' words favoured (search.ts, guided
 * decoding); that second search's captions replace theirs. Captions that already name what the classifier sees are
 * never changed (on Flickr8k val that is what keeps guidance from costing CIDEr: see bench/tags-val.ts).
 */
export async function decodeFeatures(
  models: Omit<CaptionModels, 'encoder'>,
  features: Float32Array,
  count: number,
  search: GenerationConfig,
  tags?: readonly ImageTag[][],
): Promise<Caption[][]> {
  const { vocabulary } = models;
  const plain = await beamSearch(models.decoder, features, count, search, { words: vocabulary.words });
  if (tags && search.tagBonus > 0) {
    const idOf = (word: string) => (vocabulary.words[vocabulary.idOf(word)] === word ? vocabulary.idOf(word) : undefined);
    const groups = tagTokenIds(tags, idOf);
    const again = plain.flatMap((list, i) => {
      const best = list[0];
      if (!best || groups[i].length === 0) return [];
      return groups[i].some((group) => group.names.some((id) => best.tokens.includes(id))) ? [] : [i];
    });
    if (again.length > 0) {
      const rowFloats = features.length / count;
      const subset = new Float32Array(again.length * rowFloats);
      again.forEach((i, j) => subset.set(features.subarray(i * rowFloats, (i + 1) * rowFloats), j * rowFloats));
      const guided = await beamSearch(models.decoder, subset, again.length, search, { words: vocabulary.words }, { groups: again.map((i) => groups[i]) });
      again.forEach((i, j) => (plain[i] = guided[j]));
    }
  }
  return plain.map((list, i) => {
    if (list.length === 0) throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `the decoder gave no caption for image ${i} (non-finite log-probabilities?)`);
    return list.map(toCaption);
  });
}

/** The encoder's input for loaded images: their caffe-normalised pixels, one after the other. */
export function caffeBatch(images: readonly LoadedImage[]): Float32Array {
  const batch = new Float32Array(images.length * IMAGE_FLOATS);
  images.forEach((image, j) => writeCaffeTensor(image.pixels, batch, j));
  return batch;
}

/** The encoder's feature maps (count × regions × channels) of a caffeBatch. */
export async function encodeFeatures(encoder: EncoderSession, batch: Float32Array, count: number): Promise<Float32Array> {
  const { features } = await encoder.encode(batch, count);
  if (!features) throw new PixelInfoError(ErrorCodes.INTERNAL, 'the encoder was loaded without the features output');
  return features;
}

/**
 * The feature maps and the ImageNet logits (count × classes) of a caffeBatch, from one encoder run. `logits` is
 * undefined for an encoder that does not give them (a stand-in session without that output).
 */
export async function encodeForCaptions(encoder: EncoderSession, batch: Float32Array, count: number): Promise<{ features: Float32Array; logits?: Float32Array }> {
  const { features, logits } = await encoder.encode(batch, count, ['features', 'logits']);
  if (!features) throw new PixelInfoError(ErrorCodes.INTERNAL, 'the encoder gave no features output');
  return { features, logits: logits && logits.length === count * encoder.geometry.classes ? logits : undefined };
}

/**
 * One batch: the loaded images through the encoder, then one search; failed loads keep their slot.
 * `startedAt` (performance.now()) is when loading began, so preprocessing time includes it.
 */
export async function captionLoaded(
  models: CaptionModels,
  loaded: readonly LoadOutcome[],
  search: GenerationConfig,
  startedAt: number,
  match: Required<MatchOptions> = { rerank: 'score', returnEmbedding: false },
): Promise<CaptionOutcome[]> {
  const good = loaded.flatMap((r, i) => (r.ok ? [{ i, image: r.image }] : []));
  const batch = caffeBatch(good.map((g) => g.image));
  const t1 = performance.now();
  let captions: Caption[][] = [];
  let t2 = t1;
  let t3 = t1;
  let embeddings: Float32Array | undefined;
  let tags: ImageTag[][] = [];
  if (good.length) {
    const { features, logits } = await encodeForCaptions(models.encoder, batch, good.length);
    tags = logits ? tagsFromLogits(logits, good.length, search.tagThreshold) : good.map(() => []);
    t2 = performance.now();
    captions = await decodeFeatures(models, features, good.length, search, tags);
    t3 = performance.now();
    if (models.matcher) embeddings = await scoreCaptions(models.matcher, features, captions, match);
  }
  const t4 = performance.now();
  const share = (ms: number) => round2(ms / Math.max(1, good.length));
  const timings: CaptionTimings = { preprocessMs: share(t1 - startedAt), encoderMs: share(t2 - t1), decoderMs: share(t3 - t2), totalMs: share(t4 - startedAt) };
  if (models.matcher) timings.matcherMs = share(t4 - t3);
  const slotOf = new Map(good.map((g, j) => [g.i, j]));
  const dim = models.matcher?.dim ?? 0;
  return loaded.map((r, i): CaptionOutcome => {
    if (!r.ok) return { source: r.source, error: r.error.toJSON() };
    const { source, format, width, height } = r.image;
    const j = slotOf.get(i)!;
    const result: CaptionResult = { source, image: { format, width, height }, captions: captions[j], tags: tags[j], timings: { ...timings } };
    if (match.returnEmbedding && embeddings) result.embedding = Array.from(embeddings.subarray(j * dim, (j + 1) * dim));
    return result;
  });
}

function toCaption(h: Hypothesis): Caption {
  const tokens = h.words ?? h.tokens.map(String);
  const caption: Caption = { text: tokens.join(' '), tokens, score: h.score, logProb: h.logProb };
  if (h.alphas) caption.attention = h.alphas.map((a) => Array.from(a));
  return caption;
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}
