/**
 * Batch jobs, the producer's side: submit, cancel, re-queue and report. The library store is the source of
 * truth (the job, its inputs and each input's result); Redis only carries the work, one BullMQ message per
 * input with the deterministic id `<jobId>.<index>`:
 *
 *   submit          store.createJob, then the items are added in chunks (addBulk)
 *   cancel          store.cancelJob, then the items still waiting are removed from the queue (items already in a
 *                   worker's hands finish; workers skip the items of a cancelled job)
 *   requeuePending  after a Redis loss (or a submission cut short), every input without a result is put back
 *                   on the queue; inputs still queued are left as they are, failed ones are retried
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { EVERYONE, type JobRecord, type LibraryStore, type Viewer } from '../library/types.js';
import { closeRedis, connectRedis, isConnectionError, queueUnavailable } from './connection.js';
import {
  ITEM_JOB_OPTIONS,
  ITEMS_QUEUE,
  QUEUE_PREFIX,
  itemDataSchema,
  itemJobId,
  jobGenerationSchema,
  newJobId,
  type ItemData,
  type JobGenerationOptions,
} from './definitions.js';
import { jobStatus, type JobStatus } from './status.js';

/** Items per addBulk call (one Redis round trip each). */
const ADD_CHUNK = 500;
/** Queue operations in flight at once when cancelling or re-queueing item by item. */
const PARALLEL = 64;

export interface JobQueueOptions {
  /** How long to wait for Redis when connecting, ms. */
  timeoutMs?: number;
  /** Attempts per input before it is recorded as failed (transient errors only; a bad image is not retried). */
  attempts?: number;
  /** First retry delay, ms; it doubles with every attempt. */
  backoffMs?: number;
}

export interface SubmitOptions {
  /** The API key submitting (null without keys); it becomes an owner of every image of the job. */
  owner?: string | null;
  /** Decoding options for every input; what is left out comes from the worker's model card. */
  options?: JobGenerationOptions;
}

export class JobQueue {
  private constructor(
    readonly store: LibraryStore,
    private readonly queue: Queue<ItemData>,
    private readonly redis: Redis,
    private readonly redisUrl: string,
    private readonly jobOptions: JobsOptions,
  ) {}

  /** Connects to Redis (OVERLOADED when it cannot be reached within `timeoutMs`). The store stays the caller's to close. */
  static async open(redisUrl: string, store: LibraryStore, options: JobQueueOptions = {}): Promise<JobQueue> {
    const redis = await connectRedis(redisUrl, 'producer', { timeoutMs: options.timeoutMs ?? 5000 });
    const queue = new Queue<ItemData>(ITEMS_QUEUE, { connection: redis, prefix: QUEUE_PREFIX });
    queue.on('error', () => {}); // surfaced by the failing call itself
    const jobOptions: JobsOptions = { ...ITEM_JOB_OPTIONS };
    if (options.attempts !== undefined) jobOptions.attempts = options.attempts;
    if (options.backoffMs !== undefined) jobOptions.backoff = { type: 'exponential', delay: options.backoffMs };
    return new JobQueue(store, queue, redis, redisUrl, jobOptions);
  }

  /** Records a job over `sources` (one image each) and queues its items; resolves with the job as stored. */
  async submit(sources: readonly string[], { owner = null, options = {} }: SubmitOptions = {}): Promise<JobRecord> {
    if (sources.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'a job needs at least one input', { subject: 'inputs' });
    const checked = jobGenerationSchema.safeParse(options);
    if (!checked.success) {
      const issues = checked.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ');
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `invalid job options: ${issues}`, { subject: 'options' });
    }
    await this.ping(); // fail before anything is recorded when the queue is down
    const id = newJobId();
    const job = await this.store.createJob({ id, owner, sources: [...sources], options: checked.data });
    try {
      await this.enqueue(sources.map((source, index) => ({ jobId: id, index, source, owner, options: checked.data })));
    } catch (err) {
      // The job is recorded; its inputs without a result can be queued again (requeuePending / `jobs requeue`).
      throw new PixelInfoError(ErrorCodes.OVERLOADED, `job ${id} was recorded but not all of its inputs could be queued (${(err as Error).message}); run \`pixel-info jobs requeue ${id}\` once the queue is back`, {
        subject: id,
        cause: err,
      });
    }
    return job;
  }

  /**
   * Cancels a job the viewer can see; its inputs not yet taken by a worker are dropped from the queue. Resolves
   * with the job's status afterwards (a job that already ended is left as it is), undefined when there is no
   * such job for the viewer.
   */
  async cancel(id: string, viewer: Viewer): Promise<JobStatus | undefined> {
    const job = await this.store.getJob(id, viewer);
    if (!job) return undefined;
    if (job.state !== 'completed' && job.state !== 'cancelled' && (await this.store.cancelJob(id, viewer))) {
      const pending = await this.store.pendingItems(id);
      await this.guard(() => forEachLimited(pending, PARALLEL, (item) => this.queue.remove(itemJobId(id, item.index))));
    }
    return this.status(id, viewer);
  }

  /**
   * Puts every input of `jobId` that has no result back on the queue: added again when Redis lost it, retried
   * when it failed for good (its attempts spent while the store was down), left alone when still queued or
   * running. Resolves with the number of inputs added or retried; NOT_FOUND for an unknown job.
   */
  async requeuePending(jobId: string): Promise<number> {
    const job = await this.store.getJob(jobId, EVERYONE);
    if (!job) throw new PixelInfoError(ErrorCodes.NOT_FOUND, `no job ${jobId}`, { subject: jobId });
    if (job.state === 'cancelled') return 0;
    const pending = await this.store.pendingItems(jobId);
    const options = jobGenerationSchema.parse(job.options ?? {});
    return this.guard(async () => {
      const missing: ItemData[] = [];
      let retried = 0;
      await forEachLimited(pending, PARALLEL, async (item) => {
        const queued = await this.queue.getJob(itemJobId(jobId, item.index));
        if (!queued) {
          missing.push({ jobId, index: item.index, source: item.source, owner: job.owner, options });
        } else if ((await queued.getState()) === 'failed') {
          await queued.retry('failed');
          retried++;
        }
      });
      missing.sort((a, b) => a.index - b.index);
      await this.enqueue(missing);
      return missing.length + retried;
    });
  }

  /** The job's status as the viewer sees it; undefined when there is no such job (or it is not theirs). */
  async status(id: string, viewer: Viewer): Promise<JobStatus | undefined> {
    const job = await this.store.getJob(id, viewer);
    return job && jobStatus(job);
  }

  /** Inputs waiting in Redis across all jobs, and inputs being captioned (for readiness and metrics). */
  async counts(): Promise<{ waiting: number; active: number; delayed: number; failed: number }> {
    return this.guard(async () => {
      const c = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
      return { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
    });
  }

  /** Closes the Redis connection (the store is not closed). */
  async close(): Promise<void> {
    await this.queue.close().catch(() => {});
    await closeRedis(this.redis);
  }

  private async enqueue(items: readonly ItemData[]): Promise<void> {
    for (let start = 0; start < items.length; start += ADD_CHUNK) {
      const chunk = items.slice(start, start + ADD_CHUNK);
      await this.guard(() =>
        this.queue.addBulk(
          chunk.map((data) => ({ name: 'caption', data: itemDataSchema.parse(data), opts: { ...this.jobOptions, jobId: itemJobId(data.jobId, data.index) } })),
        ),
      );
    }
  }

  private async ping(): Promise<void> {
    await this.guard(() => this.redis.ping());
  }

  /** Runs a queue operation; a lost connection becomes OVERLOADED ("retry later") naming Redis. */
  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      if (isConnectionError(err)) throw queueUnavailable(err, this.redisUrl);
      throw err;
    }
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(lanes);
}
