/**
 * `pixel-info worker`: takes captioning work from the queue and writes the results to the library.
 *
 * Two BullMQ Workers share one captioner through one in-process micro-batcher (src/server/batcher.ts), so the
 * images of whatever the worker holds — batch-job inputs and interactive requests alike — go through the
 * encoder and the decoder together:
 *
 *   items        up to `concurrency` batch-job inputs held at once (src/worker/items.ts does each one)
 *   interactive  requests handed over by API replicas running `serve --remote-captioning`; the captions go back
 *                as the queue job's return value
 *
 * Failures: a bad image is the input's recorded error (the queue job completes); a transient error (store, S3
 * or Redis unreachable) fails the attempt and BullMQ retries it with backoff; when the attempts are spent, or
 * the workers holding an input died too often, the input is recorded as failed so that its job still ends.
 * `close()` is the graceful stop (SIGTERM): no new jobs, the held ones are captioned and completed, the locks
 * released. A worker killed outright loses its locks when they expire (`lockDurationMs`); another worker's
 * stalled-job check puts its jobs back on the queue, and idempotent writes make the second delivery harmless.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { generationKey, resolveGeneration, type GenerationConfig } from '../decoder/generation.js';
import { PixelInfoError, asPixelInfoError } from '../errors.js';
import type { LibraryStore } from '../library/types.js';
import type { CaptionResult } from '../pipeline/captioner.js';
import { closeRedis, connectRedis } from '../queue/connection.js';
import {
  INTERACTIVE_QUEUE,
  ITEMS_QUEUE,
  QUEUE_PREFIX,
  interactiveDataSchema,
  itemDataSchema,
  type InteractiveData,
  type InteractiveResult,
  type ItemData,
} from '../queue/definitions.js';
import type { S3Settings } from '../queue/s3.js';
import { SourceReader } from '../queue/sources.js';
import { MicroBatcher } from '../server/batcher.js';
import type { CaptionEngine } from '../server/engine.js';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.js';
import { isPermanent, processItem, recordGaveUp, type ItemContext, type ItemResult } from './items.js';

export const WORKER_DEFAULTS = {
  /** Batch-job inputs held at once: two batches' worth, so the next batch fills while one runs. */
  concurrency: 16,
  /** Interactive requests held at once. */
  interactiveConcurrency: 8,
  batchSize: 8,
  maxWaitMs: 20,
  /** A killed worker's jobs go back to the queue this long after its last lock renewal. */
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  /** Deliveries of one input cut short by a dying worker before it is recorded as failed. */
  maxStalledCount: 2,
  /** A graceful stop that takes longer (Redis unreachable, a stuck batch) becomes a hard one. */
  closeTimeoutMs: 25_000,
} as const;

/** pino's calling convention (a fields object, then the message), so a pino logger can be passed as is. */
export interface WorkerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface CaptionWorkerOptions {
  redisUrl: string;
  store: LibraryStore;
  /** A loaded captioner (released by the caller after close()). */
  engine: CaptionEngine;
  /** The identity of the engine's model (src/worker/model-id.ts). */
  modelId: string;
  /**
   * The id of the engine's image–text matcher (`matcherIdOf`), when it has one: then every batch asks for the
   * image embeddings, and the library stores them with it (search by meaning); captions carry `confidence` anyway.
   */
  matcherId?: string;
  concurrency?: number;
  interactiveConcurrency?: number;
  /** Most images per encoder/decoder batch. */
  batchSize?: number;
  /** Longest wait for a batch to fill. */
  maxWaitMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  maxStalledCount?: number;
  /** Longest graceful stop, ms; then the held jobs are dropped (their locks expire and other workers redo them). */
  closeTimeoutMs?: number;
  /** Which queues to serve; default both. */
  queues?: { items?: boolean; interactive?: boolean };
  s3?: S3Settings;
  /** Largest input, bytes. */
  maxBytes?: number;
  metrics?: WorkerMetrics;
  logger?: WorkerLogger;
  /** A name for this worker in BullMQ (shown on the jobs it holds). */
  name?: string;
}

/** One image waiting for a batch. */
interface BatchItem {
  bytes: Buffer;
  generation: GenerationConfig;
  /** What errors call the image: the job's source, or "<buffer>" for an interactive upload. */
  source: string;
}

const SILENT: WorkerLogger = { info() {}, warn() {}, error() {} };

/** What a running CaptionWorker holds. */
interface Running {
  workers: Worker[];
  connections: Redis[];
  batcher: MicroBatcher<BatchItem, CaptionResult>;
  reader: SourceReader;
  log: WorkerLogger;
  closeTimeoutMs: number;
  /** Set when a stop gives up on Redis: the connections end instead of reconnecting. */
  giveUp: { now: boolean };
  /** Queue jobs being worked on (both queues). */
  holding: { count: number };
}

export class CaptionWorker {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly running: Running,
    readonly metrics: WorkerMetrics,
  ) {}

  /** Connects to Redis (OVERLOADED when unreachable) and starts taking jobs. */
  static async start(options: CaptionWorkerOptions): Promise<CaptionWorker> {
    const cfg = { ...WORKER_DEFAULTS, ...definedOnly(options) };
    const log = options.logger ?? SILENT;
    const metrics = options.metrics ?? createWorkerMetrics(cfg.batchSize);
    const serve = { items: options.queues?.items ?? true, interactive: options.queues?.interactive ?? true };
    const engine = options.engine;

    const batcher = new MicroBatcher<BatchItem, CaptionResult>({
      worker: async (items) => {
        const outcomes = await engine.caption(
          items.map((i) => i.bytes),
          options.matcherId ? { ...items[0].generation, returnEmbedding: true } : items[0].generation,
        );
        return outcomes.map((o, i) => ('error' in o ? new PixelInfoError(o.error.code, renameSource(o.error.message, items[i].source), { subject: items[i].source }) : o));
      },
      maxBatch: cfg.batchSize,
      maxWaitMs: cfg.maxWaitMs,
      // Everything held can wait at once; nothing else submits.
      maxQueue: (serve.items ? cfg.concurrency : 0) + (serve.interactive ? cfg.interactiveConcurrency : 0) + cfg.batchSize,
      keyOf: (item) => generationKey(item.generation),
      onBatch: ({ size, durationMs }) => {
        metrics.batchSize.observe(size);
        metrics.batchDuration.observe(durationMs / 1000);
      },
    });
    const caption = async (bytes: Buffer, generation: GenerationConfig, source: string) => (await batcher.submit({ bytes, generation, source })).result;
    const reader = new SourceReader(options.s3, options.maxBytes);
    const ctx: ItemContext = { store: options.store, read: (s) => reader.read(s), caption, modelId: options.modelId, matcherId: options.matcherId, card: engine.card };

    const workerOptions = {
      prefix: QUEUE_PREFIX,
      name: options.name,
      lockDuration: cfg.lockDurationMs,
      stalledInterval: cfg.stalledIntervalMs,
      maxStalledCount: cfg.maxStalledCount,
    };
    const workers: Worker[] = [];
    const connections: Redis[] = [];
    const giveUp = { now: false };
    const holding = { count: 0 };
    /** Counts a job as held while it is worked on (the gauge: batch-job inputs only). */
    const hold = async <T>(work: () => Promise<T>, gauge = false): Promise<T> => {
      holding.count++;
      if (gauge) metrics.held.inc();
      try {
        return await work();
      } finally {
        holding.count--;
        if (gauge) metrics.held.dec();
      }
    };
    const connect = () => connectRedis(options.redisUrl, 'worker', { stopReconnecting: () => giveUp.now });
    try {
      if (serve.items) {
        const connection = await connect();
        connections.push(connection);
        const worker = new Worker<ItemData, { outcome: ItemResult }>(ITEMS_QUEUE, (job) => hold(() => runItem(job, ctx, metrics), true), {
          ...workerOptions,
          connection,
          concurrency: cfg.concurrency,
        });
        worker.on('failed', (job, err) => void onItemFailed(job, err, options.store, metrics, log));
        worker.on('stalled', (jobId) => log.warn({ job: jobId }, 'an input held by a stopped worker is back on the queue'));
        worker.on('error', (err) => log.warn({ err: err.message, queue: ITEMS_QUEUE }, 'queue connection problem; retrying'));
        workers.push(worker);
      }
      if (serve.interactive) {
        const connection = await connect();
        connections.push(connection);
        const worker = new Worker<InteractiveData, InteractiveResult>(INTERACTIVE_QUEUE, (job) => hold(() => runInteractive(job, engine, caption, metrics)), {
          ...workerOptions,
          connection,
          concurrency: cfg.interactiveConcurrency,
        });
        worker.on('error', (err) => log.warn({ err: err.message, queue: INTERACTIVE_QUEUE }, 'queue connection problem; retrying'));
        workers.push(worker);
      }
      await Promise.all(workers.map((w) => w.waitUntilReady()));
    } catch (err) {
      await Promise.all(workers.map((w) => w.close(true).catch(() => {})));
      await Promise.all(connections.map(closeRedis));
      throw err;
    }
    log.info({ queues: workers.map((w) => w.name), concurrency: cfg.concurrency, batchSize: cfg.batchSize, model: options.modelId }, 'worker started');
    return new CaptionWorker({ workers, connections, batcher, reader, log, closeTimeoutMs: cfg.closeTimeoutMs, giveUp, holding }, metrics);
  }

  /** Queue jobs held right now (being read, waiting for a batch, in one, or being stored). */
  get held(): number {
    return this.running.holding.count;
  }

  /**
   * The graceful stop: takes no new jobs, captions and completes the ones held (their locks are released as they
   * complete), then closes the queue connections. When Redis is down, or the stop takes longer than
   * `closeTimeoutMs`, the connections give up instead: held jobs are left for their locks to expire and for other
   * workers to redo them. The engine and the store stay the caller's. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    const { workers, connections, batcher, reader, log, closeTimeoutMs } = this.running;
    // Nothing can be released in a Redis that is down; BullMQ would wait for it forever.
    if (connections.some((c) => c.status !== 'ready')) await this.stopReconnecting();
    const graceful = (async () => {
      await Promise.all(workers.map((w) => w.close()));
      await batcher.drain();
    })().catch((err: unknown) => log.error({ err: (err as Error)?.message ?? String(err) }, 'error while stopping'));
    const timer = new AbortController();
    const outcome = await Promise.race([graceful.then(() => 'stopped' as const), sleep(closeTimeoutMs, 'timeout' as const, { signal: timer.signal }).catch(() => 'stopped' as const)]);
    timer.abort();
    if (outcome === 'timeout') {
      log.warn({ held: this.held, ms: closeTimeoutMs }, 'graceful stop timed out; dropping the held jobs (other workers take them over)');
      await this.stopReconnecting();
      await Promise.race([graceful, sleep(5000, undefined, { ref: false })]);
    }
    reader.close();
    await Promise.all(connections.map(closeRedis));
  }

  /**
   * Lets the connections (and BullMQ's copies of them, which share their retry strategy) end at their next
   * reconnection attempt instead of retrying forever; waits for ours to end (at most 3 s).
   */
  private async stopReconnecting(): Promise<void> {
    const { connections, giveUp } = this.running;
    giveUp.now = true;
    const deadline = Date.now() + 3000;
    while (connections.some((c) => c.status !== 'end' && c.status !== 'ready') && Date.now() < deadline) await sleep(50);
  }
}

async function runItem(job: Job<ItemData>, ctx: ItemContext, metrics: WorkerMetrics): Promise<{ outcome: ItemResult }> {
  if (job.attemptsMade === 0 && job.stalledCounter === 0) metrics.queueWait.observe(Math.max(0, Date.now() - job.timestamp) / 1000);
  const parsed = itemDataSchema.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`invalid item data: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const outcome = await processItem(parsed.data, ctx);
  if (outcome !== 'cancelled') metrics.items.inc({ outcome });
  return { outcome };
}

/** An attempt failed: count a retry, or — when the queue gives up — record the input as failed so its job ends. */
async function onItemFailed(job: Job<ItemData> | undefined, err: Error, store: LibraryStore, metrics: WorkerMetrics, log: WorkerLogger): Promise<void> {
  if (!job) return;
  const parsed = itemDataSchema.safeParse(job.data);
  const finalAttempt = err instanceof UnrecoverableError || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
  const fields = { job: job.id, attempt: job.attemptsMade, err: err.message };
  if (!finalAttempt) {
    metrics.retries.inc();
    log.warn(fields, 'input failed; the queue retries it');
    return;
  }
  if (!parsed.success) {
    log.error(fields, 'dropped a queue job with invalid data');
    return;
  }
  try {
    await recordGaveUp(store, parsed.data, err);
    metrics.items.inc({ outcome: 'failed' });
    log.error({ ...fields, source: parsed.data.source }, 'gave up on an input; recorded as failed');
  } catch (recordErr) {
    // The store is down too: the input stays pending; `pixel-info jobs requeue` puts it back later.
    log.error({ ...fields, recordErr: (recordErr as Error).message }, 'gave up on an input and could not record it');
  }
}

/** One interactive request: its captions, or its per-image error, as the job's return value. */
async function runInteractive(
  job: Job<InteractiveData>,
  engine: CaptionEngine,
  caption: (bytes: Buffer, generation: GenerationConfig, source: string) => Promise<CaptionResult>,
  metrics: WorkerMetrics,
): Promise<InteractiveResult> {
  const parsed = interactiveDataSchema.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError('invalid interactive request data');
  const source = '<buffer>';
  try {
    const generation = resolveGeneration(parsed.data.options, engine.card.decoding);
    const result = await caption(Buffer.from(parsed.data.image, 'base64'), generation, source);
    metrics.interactive.inc({ outcome: 'captioned' });
    return result;
  } catch (err) {
    if (!isPermanent(err)) throw err;
    metrics.interactive.inc({ outcome: 'failed' });
    return { source, error: asPixelInfoError(err).toJSON() };
  }
}

/** The Captioner names buffers "<buffer 3>"; a job's error names its source. */
function renameSource(message: string, source: string): string {
  return message.replace(/^<buffer(?: \d+)?>/, source);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
