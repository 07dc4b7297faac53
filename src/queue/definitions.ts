/**
 * The two BullMQ queues and what travels on them, validated with zod on both ends.
 *
 *   pixel-info-items        one message per input of a batch job: `{ jobId, index, source, owner, options }`.
 *                           Its BullMQ id is `<jobId>.<index>`, so adding an item twice (a resubmission, a
 *                           re-queue after a Redis loss) is a no-op while the first is still queued or running.
 *                           The worker's result goes to the library store, never back through Redis.
 *   pixel-info-interactive  one image of an interactive POST /v1/captions when the API tier hands captioning to
 *                           the worker pool (`serve --remote-captioning`): the bytes and the decoding options go
 *                           in, the captions come back as the job's return value (request/reply).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { JobsOptions } from 'bullmq';
import { RULE_NAMES, type GenerationOptions } from '../decoder/generation.js';
import type { CaptionOutcome } from '../pipeline/captioner.js';

/** Every queue key in Redis starts with this (several deployments can share one Redis with other prefixes). */
export const QUEUE_PREFIX = 'pixel-info';
export const ITEMS_QUEUE = 'pixel-info-items';
export const INTERACTIVE_QUEUE = 'pixel-info-interactive';

/** Batch job ids are UUIDs (lower case). */
export const jobIdSchema = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a job id (a UUID)')
  .describe('The job id (a UUID)');

export function newJobId(): string {
  return randomUUID();
}

/** The BullMQ id of one item: deterministic, so re-adding it is idempotent. (BullMQ refuses ':' in custom ids.) */
export function itemJobId(jobId: string, index: number): string {
  return `${jobId}.${index}`;
}

/** Decoding options a batch job may set (the rest comes from the model card, then the defaults). */
export const jobGenerationSchema = z
  .object({
    beamSize: z.number().int().min(1).max(100),
    nBest: z.number().int().min(1).max(100),
    maxLength: z.number().int().min(1).max(500),
    lengthPenalty: z.number().finite().min(0).max(100),
    noRepeatNgram: z.number().int().min(0).max(100),
    rules: z.array(z.enum(RULE_NAMES)),
  })
  .partial()
  .strict()
  .refine((o) => o.beamSize === undefined || o.nBest === undefined || o.nBest <= o.beamSize, {
    message: 'nBest must be at most beamSize',
    path: ['nBest'],
  });

export type JobGenerationOptions = z.infer<typeof jobGenerationSchema>;

/** One input of a batch job. */
export const itemDataSchema = z
  .object({
    jobId: jobIdSchema,
    index: z.number().int().min(0),
    /** A path the workers can read, or s3://bucket/key. */
    source: z.string().min(1).max(4096),
    /** The API key that submitted the job (null without keys): it becomes an owner of the image. */
    owner: z.string().nullable(),
    options: jobGenerationSchema,
  })
  .strict();

export type ItemData = z.infer<typeof itemDataSchema>;

/** One interactive image: base64 bytes and the request's decoding options (the worker resolves them against its card). */
export const interactiveDataSchema = z
  .object({
    image: z.string().min(1),
    options: z.record(z.unknown()),
  })
  .strict();

export type InteractiveData = z.infer<typeof interactiveDataSchema>;

/** What an interactive job returns: the Captioner's outcome for the image (captions, or a per-image error). */
export type InteractiveResult = CaptionOutcome;

/**
 * Items are retried on transient failures (the store or S3 unreachable, a worker bug) with exponential backoff:
 * 1, 2, 4, 8, 16 s. A bad image is not a failure: it is recorded as the item's error and the item completes.
 * Finished items are dropped from Redis (the store holds the results); failed ones are kept a week to inspect.
 */
export const ITEM_JOB_OPTIONS: JobsOptions = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** Interactive requests are not retried by the queue (the client retries); their replies live a minute. */
export const INTERACTIVE_JOB_OPTIONS: JobsOptions = {
  attempts: 1,
  removeOnComplete: { age: 60 },
  removeOnFail: { age: 60 },
};

/** JobGenerationOptions as the GenerationOptions the Captioner takes. */
export function toGenerationOptions(options: JobGenerationOptions): GenerationOptions {
  return { ...options, rules: options.rules ? [...options.rules] : undefined };
}
