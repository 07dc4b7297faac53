/**
 * The captioning side of the server: what it needs from a Captioner (`CaptionEngine`, the seam tests fake), the
 * engine loading in the background, the decoding config of a request, and the batch worker that turns a batch of
 * uploaded images (all with the same config) into one Captioner call.
 */
import type { CaptionOptions, CaptionOutcome, CaptionResult } from '../pipeline/captioner.js';
import type { MatchCalibration, MatchScore } from '../match/types.js';
import type { ModelCard } from '../decoder/model-dir.js';
import { generationKey, resolveGeneration, type GenerationConfig, type GenerationOptions } from '../decoder/generation.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { CaptionRequestOptions } from './schemas.js';

/** The image–text matcher an engine has (src/match): what its scores and embeddings are. */
export interface EngineMatcher {
  /** Stored with every image embedding (`matcherIdOf`: card name and a hash of the matcher's files): embeddings of two matchers are never compared. */
  readonly id: string;
  /** The matcher card's name. */
  readonly name: string;
  /** Embedding size D. */
  readonly dim: number;
  /** cosine → logit = a·cosine + b → score = sigmoid(logit). */
  readonly calibration: MatchCalibration;
}

/** The part of Captioner the server uses; tests pass a fake. */
export interface CaptionEngine {
  readonly card: ModelCard;
  /** The model id stored with captions in the library (`modelIdOf`: card name and a hash of the model files); default: the card's name. */
  readonly modelId?: string;
  /**
   * With a matcher (`matching`), captions carry `confidence`, and `returnEmbedding: true` adds the image's `embedding`
   * (unit length) to each result.
   */
  caption(inputs: ReadonlyArray<string | Buffer>, options?: CaptionOptions): Promise<CaptionOutcome[]>;
  /**
   * The image–text matcher, when one is loaded; then `match` and `embedTexts` are there too. (Not `matcher`:
   * a Captioner, which is a CaptionEngine as it is, keeps its model under that name.)
   */
  readonly matching?: EngineMatcher;
  /** Scores of each sentence against the image, in order (as Captioner.match). */
  match?(image: Buffer, texts: readonly string[]): Promise<MatchScore[]>;
  /** Unit-length sentence embeddings, one per text: rows of `matching.dim` in one array, or one array per text. */
  embedTexts?(texts: readonly string[]): Promise<Float32Array | number[][]>;
  release(): Promise<void>;
}

/** What the routes use of an engine's matcher. */
export interface ServerMatcher extends EngineMatcher {
  match(image: Buffer, texts: readonly string[]): Promise<MatchScore[]>;
  /** One unit-length embedding per text, each of `dim` floats. */
  embedTexts(texts: readonly string[]): Promise<Float32Array[]>;
}

/** An engine's matcher with its methods, or undefined when it has none. */
export function matcherOf(engine: CaptionEngine): ServerMatcher | undefined {
  const { matching, match, embedTexts } = engine;
  if (!matching || !match || !embedTexts) return undefined;
  return {
    ...matching,
    match: (image, texts) => match.call(engine, image, texts),
    async embedTexts(texts) {
      const out = await embedTexts.call(engine, texts);
      if (Array.isArray(out)) return out.map((row) => Float32Array.from(row));
      return texts.map((_, i) => out.slice(i * matching.dim, (i + 1) * matching.dim));
    },
  };
}

/** One queued image and the decoding config it was resolved to. */
export interface CaptionJob {
  bytes: Buffer;
  generation: GenerationConfig;
}

/**
 * A request's decoding config: its options over the model card's `decoding` over the library defaults (the one
 * resolver, `resolveGeneration`). Attention is always computed (it costs little next to the search) so that
 * requests with and without `attention` share batches; the route drops it when it was not asked for.
 */
export function requestGeneration(options: CaptionRequestOptions, card: ModelCard): GenerationConfig {
  const call: GenerationOptions = { beamSize: options.beam, maxLength: options.maxLength, returnAttention: true };
  const config = resolveGeneration(call, card.decoding);
  if (options.nbest === undefined) return config;
  // Checked here rather than by the request schema: the beam may be the card's or the default one, and the query
  // and the form fields may each give one of the two.
  if (options.nbest > config.beamSize) {
    const beam = options.beam === undefined ? `${config.beamSize}, the default` : String(config.beamSize);
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `invalid options: nbest: must be at most beam (${beam}), got ${options.nbest}`, { subject: 'nbest' });
  }
  return resolveGeneration({ ...call, nBest: options.nbest }, card.decoding);
}

/** 503 MODEL_NOT_FOUND: a route that needs the image–text matcher on a server that has none. */
export function noMatcherError(what: string): PixelInfoError {
  return new PixelInfoError(
    ErrorCodes.MODEL_NOT_FOUND,
    `${what} needs an image–text matcher, and this server has none loaded (a matcher model directory: models/flickr8k-match, or serve --matcher DIR)`,
    { subject: 'matcher' },
  );
}

/**
 * The engine's matcher for a route. `required`: waits up to `ms` for the model, then the matcher or 503
 * (MODEL_NOT_FOUND); otherwise the matcher only if the engine is loaded now (a search does not wait for it).
 */
export async function routeMatcher(engine: EngineLoader, options: { required: boolean; ms: number; what: string }): Promise<ServerMatcher | undefined> {
  if (!options.required) {
    const state = engine.state;
    return state.status === 'ready' ? matcherOf(state.engine) : undefined;
  }
  const matcher = matcherOf(await engine.get(options.ms));
  if (!matcher) throw noMatcherError(options.what);
  return matcher;
}

/** The batching key: requests share a batch only when their configs decide the same captions. */
export const jobKey = (job: CaptionJob): string => generationKey(job.generation);

/** Runs one batch with the config its jobs share. */
export function captionWorker(engine: () => CaptionEngine) {
  return async (jobs: CaptionJob[]): Promise<Array<CaptionResult | Error>> => {
    const loaded = engine();
    // With a matcher, the image embedding comes along (the library keeps it for search by meaning).
    const options: CaptionOptions = loaded.matching ? { ...jobs[0].generation, returnEmbedding: true } : jobs[0].generation;
    const outcomes = await loaded.caption(
      jobs.map((j) => j.bytes),
      options,
    );
    return outcomes.map((o) => ('error' in o ? new PixelInfoError(o.error.code, renameBufferSource(o.error.message)) : o));
  };
}

/** The Captioner names buffers "<buffer 3>"; to an API client the one image it sent is "image". */
function renameBufferSource(message: string): string {
  return message.replace(/^<buffer(?: \d+)?>/, 'image');
}

/** Where the engine stands: /readyz answers from this without waiting. */
export type EngineState = { status: 'loading' } | { status: 'ready'; engine: CaptionEngine } | { status: 'failed'; error: PixelInfoError };

/** Loads the engine once, in the background; requests wait for it (bounded), /readyz reads its state. */
export class EngineLoader {
  private current: EngineState = { status: 'loading' };
  /** Resolves with the engine once loaded; rejects with the load error (as a PixelInfoError). */
  readonly ready: Promise<CaptionEngine>;

  constructor(load: () => Promise<CaptionEngine>, onError: (error: PixelInfoError) => void) {
    this.ready = load().then(
      (engine) => {
        this.current = { status: 'ready', engine };
        return engine;
      },
      (err: unknown) => {
        const error =
          err instanceof PixelInfoError ? err : new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `the model failed to load: ${(err as Error)?.message ?? err}`, { cause: err });
        this.current = { status: 'failed', error };
        onError(error);
        throw error;
      },
    );
    this.ready.catch(() => {}); // reported through onError and the state; awaiting callers still see the rejection
  }

  get state(): EngineState {
    return this.current;
  }

  /** The engine, which must have loaded (batches only start for requests that waited for it with `get`). */
  get loaded(): CaptionEngine {
    if (this.current.status !== 'ready') throw new PixelInfoError(ErrorCodes.INTERNAL, `the model is not loaded (${this.current.status})`);
    return this.current.engine;
  }

  /** The engine; while it loads, waits at most `ms` (then TIMEOUT). Throws the load error if loading failed. */
  async get(ms: number): Promise<CaptionEngine> {
    if (this.current.status === 'ready') return this.current.engine;
    if (this.current.status === 'failed') throw this.current.error;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PixelInfoError(ErrorCodes.TIMEOUT, `the model did not finish loading within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([this.ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Releases the engine if it loaded. */
  async release(): Promise<void> {
    await this.ready.then((engine) => engine.release(), () => {});
  }
}
