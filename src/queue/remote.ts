/**
 * Interactive captioning on the worker pool (`pixel-info serve --remote-captioning`): a `CaptionEngine` (the
 * server's seam, src/server/engine.ts) that captions nothing itself. Each image of a batch becomes one job on
 * the interactive queue; a worker captions it along with whatever else it holds and returns the outcome as the
 * job's return value, which arrives here through BullMQ's QueueEvents (request/reply). So an API tier without
 * a model in memory can front a pool of model machines.
 *
 * Failures come back per image, with the server's usual codes: a bad image as its error (422), no reply
 * within `timeoutMs` as TIMEOUT (504; the request is withdrawn if no worker took it yet), a worker fault or
 * Redis unreachable as OVERLOADED (503, retry later).
 */
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { GenerationOptions } from '../decoder/generation.js';
import type { ModelCard } from '../decoder/model-dir.js';
import { ErrorCodes, PixelInfoError, asPixelInfoError, type ErrorCode } from '../errors.js';
import { DEFAULT_MAX_BYTES } from '../image/index.js';
import { readImageBytes } from '../image/read-input.js';
import type { CaptionFailure, CaptionOutcome } from '../pipeline/captioner.js';
import type { CaptionEngine } from '../server/engine.js';
import { closeRedis, connectRedis, isConnectionError, redactUrl } from './connection.js';
import { INTERACTIVE_JOB_OPTIONS, INTERACTIVE_QUEUE, QUEUE_PREFIX, type InteractiveData, type InteractiveResult } from './definitions.js';

export interface RemoteCaptionOptions {
  redisUrl: string;
  /** The model card the workers run (the API tier reads it from its own copy of the model directory). */
  card: ModelCard;
  /** Longest wait for a worker's reply, per image. */
  timeoutMs?: number;
}

export class RemoteCaptionEngine implements CaptionEngine {
  private constructor(
    readonly card: ModelCard,
    private readonly queue: Queue<InteractiveData, InteractiveResult>,
    private readonly events: QueueEvents,
    private readonly connections: Redis[],
    private readonly redisUrl: string,
    private readonly timeoutMs: number,
  ) {}

  /** Connects to Redis and listens for replies; OVERLOADED when Redis cannot be reached. */
  static async connect({ redisUrl, card, timeoutMs = 30_000 }: RemoteCaptionOptions): Promise<RemoteCaptionEngine> {
    const producer = await connectRedis(redisUrl, 'producer');
    let listener: Redis | undefined;
    try {
      listener = await connectRedis(redisUrl, 'worker'); // QueueEvents blocks on the event stream
      const queue = new Queue<InteractiveData, InteractiveResult>(INTERACTIVE_QUEUE, { connection: producer, prefix: QUEUE_PREFIX });
      const events = new QueueEvents(INTERACTIVE_QUEUE, { connection: listener, prefix: QUEUE_PREFIX });
      queue.on('error', () => {});
      events.on('error', () => {}); // it reconnects by itself; a request in flight then times out
      await events.waitUntilReady();
      return new RemoteCaptionEngine(card, queue, events, [producer, listener], redisUrl, timeoutMs);
    } catch (err) {
      await closeRedis(producer);
      if (listener) await closeRedis(listener);
      throw err;
    }
  }

  async caption(inputs: ReadonlyArray<string | Buffer>, options: GenerationOptions = {}): Promise<CaptionOutcome[]> {
    const sources = inputs.map((input, i) => (typeof input === 'string' ? input : `<buffer ${i}>`));
    // The server sends buffers; a path (a library caller) is read here, since the workers may not see it.
    const payloads: Array<Buffer | PixelInfoError> = await Promise.all(
      inputs.map(async (input, i) => {
        if (typeof input !== 'string') return input;
        return readImageBytes(input, DEFAULT_MAX_BYTES, sources[i]).then(
          (r) => r.bytes,
          (err: unknown) => asPixelInfoError(err, sources[i]),
        );
      }),
    );
    const sendable = payloads.flatMap((p, i) => (Buffer.isBuffer(p) ? [{ i, bytes: p }] : []));
    let jobs: Array<Job<InteractiveData, InteractiveResult>> = [];
    try {
      jobs = await this.queue.addBulk(
        sendable.map(({ bytes }) => ({ name: 'caption', data: { image: bytes.toString('base64'), options: { ...options } }, opts: INTERACTIVE_JOB_OPTIONS })),
      );
    } catch (err) {
      const code = isConnectionError(err) ? ErrorCodes.OVERLOADED : ErrorCodes.INTERNAL;
      const failure = this.failure(code, `the captioning queue (Redis at ${redactUrl(this.redisUrl)}) is unreachable: ${(err as Error).message}; retry later`);
      return sources.map((source) => failure(source));
    }
    const replies = new Map<number, CaptionOutcome>();
    await Promise.all(jobs.map(async (job, k) => replies.set(sendable[k].i, await this.reply(job, sources[sendable[k].i]))));
    return payloads.map((p, i) => (Buffer.isBuffer(p) ? replies.get(i)! : { source: sources[i], error: p.toJSON() }));
  }

  /** Stops listening and closes the connections. */
  async release(): Promise<void> {
    await this.events.close().catch(() => {});
    await this.queue.close().catch(() => {});
    await Promise.all(this.connections.map(closeRedis));
  }

  /** The worker's outcome for one job, renamed to `source`; a timeout or a worker fault as a failure. */
  private async reply(job: Job<InteractiveData, InteractiveResult>, source: string): Promise<CaptionOutcome> {
    try {
      const outcome = await job.waitUntilFinished(this.events, this.timeoutMs);
      return { ...outcome, source };
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (/timed out before finishing/.test(message)) {
        await job.remove().catch(() => {}); // not taken yet: withdraw it; taken: it finishes unread
        return this.failure(ErrorCodes.TIMEOUT, `no captioning worker replied within ${this.timeoutMs} ms`)(source);
      }
      return this.failure(ErrorCodes.OVERLOADED, `the captioning worker failed: ${message}; retry later`)(source);
    }
  }

  private failure(code: ErrorCode, message: string): (source: string) => CaptionFailure {
    return (source) => ({ source, error: { code, message } });
  }
}
