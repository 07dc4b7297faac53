/**
 * One input of a batch job, from the queue to the library: read it (a path or an S3 object), hash it (the
 * SHA-256 is the image id), caption it unless this model already has (then the submitter only becomes an owner),
 * store it, and record the input's result in the job. Every write is idempotent, so an input delivered twice —
 * after a worker was killed, or a lock expired — ends the same way and stores nothing twice.
 *
 * A bad input (missing, empty, not an image, truncated, too large, bad options) is not a failure of the work:
 * its error is recorded as the input's result and the queue job completes. Anything else (the store, S3 or
 * Redis unreachable) is thrown, and the queue retries the input with backoff.
 */
import { createHash } from 'node:crypto';
import { generationKey, resolveGeneration, type GenerationConfig } from '../decoder/generation.js';
import type { ModelCard } from '../decoder/model-dir.js';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';
import { EVERYONE, type LibraryStore } from '../library/types.js';
import type { CaptionResult } from '../pipeline/captioner.js';
import { toGenerationOptions, type ItemData } from '../queue/definitions.js';
import type { ItemOutcome } from './metrics.js';

/** Error codes no retry can fix: the input itself (or its options) is bad. */
export const PERMANENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCodes.FILE_NOT_FOUND,
  ErrorCodes.FILE_EMPTY,
  ErrorCodes.NOT_AN_IMAGE,
  ErrorCodes.UNSUPPORTED_FORMAT,
  ErrorCodes.IMAGE_TRUNCATED,
  ErrorCodes.IMAGE_TOO_LARGE,
  ErrorCodes.DECODE_FAILED,
  ErrorCodes.INVALID_ARGUMENT,
]);

/** Whether `err` is about the input (record it as the input's error) rather than a fault to retry. */
export function isPermanent(err: unknown): err is PixelInfoError {
  return err instanceof PixelInfoError && PERMANENT_CODES.has(err.code);
}

export interface ItemContext {
  store: LibraryStore;
  /** Reads a source into bytes (typed errors for bad inputs). */
  read: (source: string) => Promise<Buffer>;
  /** Captions one image (in a micro-batch with others); throws a PixelInfoError naming `source` for a bad image. */
  caption: (bytes: Buffer, generation: GenerationConfig, source: string) => Promise<CaptionResult>;
  /** The identity of the captioning model (src/worker/model-id.ts). */
  modelId: string;
  /** The identity of the image–text matcher whose embeddings the captions come with (`matcherIdOf`), if any. */
  matcherId?: string;
  card: ModelCard;
}

/** How an input ended; `cancelled`: its job was cancelled (or deleted) and nothing was done. */
export type ItemResult = ItemOutcome | 'cancelled';

export async function processItem(item: ItemData, ctx: ItemContext): Promise<ItemResult> {
  const job = await ctx.store.getJob(item.jobId, EVERYONE);
  if (!job || job.state === 'cancelled') return 'cancelled';
  try {
    const bytes = await ctx.read(item.source);
    const id = createHash('sha256').update(bytes).digest('hex');
    const generation = resolveGeneration(toGenerationOptions(item.options), ctx.card.decoding);
    // Stored captions are reused only when they are what this job asks for: the model's default decoding.
    const reuse = generationKey(generation) === generationKey(resolveGeneration({}, ctx.card.decoding)) && (await ctx.store.hasCaptions(id, ctx.modelId));
    if (reuse) {
      await ctx.store.addOwner(id, item.owner);
    } else {
      const { image, captions, embedding, tags } = await ctx.caption(bytes, generation, item.source);
      await ctx.store.put({
        id,
        bytes,
        width: image.width,
        height: image.height,
        format: image.format,
        captions: captions.map((c) => ({ text: c.text, score: c.score, ...(c.confidence === undefined ? {} : { confidence: c.confidence }) })),
        tags: (tags ?? []).map(({ word, probability }) => ({ word, probability })),
        model: ctx.modelId,
        owner: item.owner,
        embedding: ctx.matcherId && embedding ? { model: ctx.matcherId, vector: embedding } : undefined,
      });
    }
    await ctx.store.recordItem(item.jobId, item.index, { imageId: id });
    return reuse ? 'reused' : 'captioned';
  } catch (err) {
    if (!isPermanent(err)) throw err;
    await ctx.store.recordItem(item.jobId, item.index, { error: err.toJSON() });
    return 'failed';
  }
}

/**
 * Records the error of an input the queue gave up on (attempts spent on transient errors, or the workers
 * holding it died too often): the job still ends, with this input failed. A result already recorded is kept.
 */
export async function recordGaveUp(store: LibraryStore, item: ItemData, err: unknown): Promise<void> {
  const error =
    err instanceof PixelInfoError
      ? { code: err.code, message: err.message }
      : { code: ErrorCodes.INTERNAL, message: `${item.source}: not captioned after repeated failures (${(err as Error)?.message ?? err})` };
  await store.recordItem(item.jobId, item.index, { error });
}
