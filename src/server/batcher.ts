/**
 * Micro-batching: concurrent callers submit one item each; a single worker runs them in batches of up to
 * `maxBatch`, waiting at most `maxWaitMs` after the oldest queued item for a batch to fill. Items with
 * different keys (e.g. different search options) never share a batch. One batch runs at a time: the worker
 * (onnxruntime) already uses every core, so overlapping batches would only make each one slower.
 *
 * The queue is bounded (`maxQueue` items waiting, not counting the running batch): beyond it submit fails
 * at once with OVERLOADED, so a flood of requests costs memory for at most maxQueue + maxBatch images.
 * Each item may carry a deadline: when it passes, the caller gets TIMEOUT; a queued item is dropped, a
 * running one finishes but its result is discarded. Each item may also carry an AbortSignal (its client hung
 * up): when it aborts, the caller gets CLIENT_CLOSED at once, a queued item leaves the queue (it no longer
 * holds a place a live request could take) and a running one's result is discarded.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';

export interface BatcherOptions<I, O> {
  /** Runs one batch: a result or an Error per item, in order. Throwing fails every item of the batch. */
  worker: (items: I[]) => Promise<Array<O | Error>>;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  /** Items with different keys go to different batches. Default: all items share one key. */
  keyOf?: (item: I) => string;
  /** Called after every batch (for metrics). */
  onBatch?: (info: { size: number; durationMs: number; key: string }) => void;
  /** Called whenever the number of waiting items changes (for metrics). */
  onQueueDepth?: (depth: number) => void;
}

export interface SubmitOptions {
  /** Milliseconds from now until the caller gives up with TIMEOUT; default none. */
  timeoutMs?: number;
  /** The caller no longer wants the result (e.g. its client disconnected): see the class comment. */
  signal?: AbortSignal;
  /** Called when the item's batch starts running. */
  onStart?: () => void;
}

export interface Submitted<O> {
  result: O;
  /** Milliseconds the item waited before its batch started. */
  queuedMs: number;
  /** Size of the batch it ran in. */
  batchSize: number;
}

interface Pending<I, O> {
  item: I;
  key: string;
  enqueued: number;
  settled: boolean;
  timer?: NodeJS.Timeout;
  /** Removes the abort listener from the caller's signal. */
  unlisten?: () => void;
  onStart?: () => void;
  resolve: (value: Submitted<O>) => void;
  reject: (err: Error) => void;
}

export class MicroBatcher<I, O> {
  private readonly queue: Array<Pending<I, O>> = [];
  private running: Promise<void> | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Moving average of batch durations, for Retry-After hints. */
  private avgBatchMs = 0;
  private readonly keyOf: (item: I) => string;

  constructor(private readonly options: BatcherOptions<I, O>) {
    for (const name of ['maxBatch', 'maxQueue'] as const) {
      const v = options[name];
      if (!Number.isInteger(v) || v < 1) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${name} must be a positive integer, got ${v}`);
    }
    if (!(options.maxWaitMs >= 0)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `maxWaitMs must be >= 0, got ${options.maxWaitMs}`);
    this.keyOf = options.keyOf ?? (() => '');
  }

  /** Items waiting for a batch (not counting the running one). */
  get depth(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Seconds a refused caller should wait before trying again: the time to work through a full queue. */
  retryAfterSeconds(): number {
    const batches = Math.ceil((this.queue.length + 1) / this.options.maxBatch) + 1;
    return Math.max(1, Math.ceil((batches * (this.avgBatchMs || 1000)) / 1000));
  }

  submit(item: I, options: SubmitOptions = {}): Promise<Submitted<O>> {
    if (options.signal?.aborted) return Promise.reject(clientClosed('before the image was queued'));
    if (this.closed) return Promise.reject(new PixelInfoError(ErrorCodes.OVERLOADED, 'the server is shutting down'));
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(
        new PixelInfoError(ErrorCodes.OVERLOADED, `too many requests waiting (${this.queue.length} queued, limit ${this.options.maxQueue}); retry later`),
      );
    }
    return new Promise<Submitted<O>>((resolve, reject) => {
      const pending: Pending<I, O> = { item, key: this.keyOf(item), enqueued: performance.now(), settled: false, onStart: options.onStart, resolve, reject };
      if (options.timeoutMs !== undefined && Number.isFinite(options.timeoutMs)) {
        pending.timer = setTimeout(() => this.expire(pending, options.timeoutMs!), Math.max(0, options.timeoutMs));
      }
      const { signal } = options;
      if (signal) {
        const onAbort = () => this.abandon(pending);
        signal.addEventListener('abort', onAbort, { once: true });
        pending.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue.push(pending);
      this.options.onQueueDepth?.(this.queue.length);
      this.schedule();
    });
  }

  /** Refuses new items and resolves once everything queued or running has finished. */
  async drain(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.running) {
      if (!this.running) this.dispatch();
      await this.running;
    }
  }

  private expire(pending: Pending<I, O>, timeoutMs: number): void {
    this.dequeue(pending);
    this.settle(pending, new PixelInfoError(ErrorCodes.TIMEOUT, `the request took longer than ${timeoutMs} ms`));
  }

  /** The caller's signal aborted: out of the queue if still there (else its running batch's result is dropped). */
  private abandon(pending: Pending<I, O>): void {
    const wasQueued = this.dequeue(pending);
    this.settle(pending, clientClosed(wasQueued ? 'while the image was queued; it left the queue' : 'while its batch ran; the result was dropped'));
  }

  /** Removes a waiting item from the queue; false when it is not there (running or done). */
  private dequeue(pending: Pending<I, O>): boolean {
    const at = this.queue.indexOf(pending);
    if (at < 0) return false;
    this.queue.splice(at, 1);
    this.options.onQueueDepth?.(this.queue.length);
    return true;
  }

  private settle(pending: Pending<I, O>, outcome: Error | Submitted<O>): void {
    if (pending.settled) return;
    pending.settled = true;
    clearTimeout(pending.timer);
    pending.unlisten?.();
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  /** Starts a batch now if one is full or its oldest item has waited maxWaitMs; else arms a timer for that moment. */
  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const oldest = this.queue[0];
    const sameKey = this.countKey(oldest.key);
    const waited = performance.now() - oldest.enqueued;
    if (sameKey >= this.options.maxBatch || waited >= this.options.maxWaitMs || this.closed) {
      this.dispatch();
      return;
    }
    if (!this.waitTimer) {
      this.waitTimer = setTimeout(() => {
        this.waitTimer = undefined;
        this.schedule();
      }, this.options.maxWaitMs - waited);
    }
  }

  private countKey(key: string): number {
    let n = 0;
    for (const p of this.queue) if (p.key === key && ++n >= this.options.maxBatch) break;
    return n;
  }

  /** Takes up to maxBatch items with the oldest item's key, in arrival order, and runs them. */
  private dispatch(): void {
    if (this.running || this.queue.length === 0) return;
    clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    const key = this.queue[0].key;
    const batch: Array<Pending<I, O>> = [];
    for (let i = 0; i < this.queue.length && batch.length < this.options.maxBatch; ) {
      if (this.queue[i].key === key) batch.push(...this.queue.splice(i, 1));
      else i++;
    }
    this.options.onQueueDepth?.(this.queue.length);
    for (const p of batch) p.onStart?.();
    this.running = this.run(batch, key).finally(() => {
      this.running = undefined;
      this.schedule();
    });
  }

  private async run(batch: Array<Pending<I, O>>, key: string): Promise<void> {
    const start = performance.now();
    let outcomes: Array<O | Error>;
    try {
      outcomes = await this.options.worker(batch.map((p) => p.item));
      if (outcomes.length !== batch.length) throw new Error(`batch worker returned ${outcomes.length} results for ${batch.length} items`);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      outcomes = batch.map(() => error);
    }
    const durationMs = performance.now() - start;
    this.avgBatchMs = this.avgBatchMs ? 0.8 * this.avgBatchMs + 0.2 * durationMs : durationMs;
    this.options.onBatch?.({ size: batch.length, durationMs, key });
    batch.forEach((p, i) => {
      const o = outcomes[i];
      this.settle(p, o instanceof Error ? o : { result: o, queuedMs: start - p.enqueued, batchSize: batch.length });
    });
  }
}

function clientClosed(when: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.CLIENT_CLOSED, `the client closed the connection ${when}`);
}
