/**
 * A small pool of worker threads for CPU-bound work that must not block the event loop (POST /v1/score): while a
 * worker computes, the main thread keeps answering /healthz, uploads and everything else.
 *
 * Bounded on every side: `size` threads, started on first use; at most `maxPending` tasks waiting (more: 503
 * OVERLOADED at once); each task at most `timeoutMs` of computation (then its thread is terminated and replaced, and
 * the caller gets TIMEOUT) — counted from when its thread has loaded its module, which a new thread may take up to
 * a minute to do (compiling `.ts` sources on a busy machine took over 5 s in CI; that is start-up, not work). A thread that dies is replaced; its task fails with INTERNAL.
 *
 * The worker module answers `{ id, input }` messages with `{ id, output }` or `{ id, error: { code, message } }`
 * (see ./score-worker.ts). Run from the TypeScript sources, a thread registers tsx before importing it.
 */
import { Worker } from 'node:worker_threads';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';

export interface WorkerPoolOptions {
  /** The worker module (a file URL). */
  entry: URL;
  size: number;
  maxPending: number;
  timeoutMs: number;
  /** What the work is called in error messages ("scoring"). */
  name: string;
}

interface Task<I, O> {
  id: number;
  input: I;
  resolve: (output: O) => void;
  reject: (err: Error) => void;
}

interface Thread<I, O> {
  worker: Worker;
  /** The entry module has loaded: tasks run (and their time limit counts) only from then on. */
  ready: boolean;
  task?: Task<I, O>;
  timer?: NodeJS.Timeout;
}

/** How long a new thread may take to load its entry (tsx compiles `.ts` sources on a busy machine slowly). */
const STARTUP_LIMIT_MS = 60_000;

type Reply<O> = { id: number; output: O } | { id: number; error: { code: ErrorCode; message: string } };
type Message<O> = Reply<O> | { ready: true };

/** Starts a thread on `entry`; `.ts` sources get tsx registered first (the main thread's loader is not inherited). */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
  require('node:worker_threads').parentPort.postMessage({ ready: true });
})();
`;

export class WorkerPool<I, O> {
  private readonly threads: Array<Thread<I, O>> = [];
  private readonly waiting: Array<Task<I, O>> = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `pool size must be a positive integer, got ${options.size}`);
  }

  /** Tasks waiting for a thread. */
  get depth(): number {
    return this.waiting.length;
  }

  run(input: I): Promise<O> {
    if (this.closed) return Promise.reject(new PixelInfoError(ErrorCodes.OVERLOADED, 'the server is shutting down'));
    if (this.waiting.length >= this.options.maxPending) {
      return Promise.reject(new PixelInfoError(ErrorCodes.OVERLOADED, `too many ${this.options.name} requests waiting (limit ${this.options.maxPending}); retry later`));
    }
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ id: ++this.nextId, input, resolve, reject });
      this.dispatch();
    });
  }

  /** Fails waiting tasks and stops every thread. */
  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.waiting.splice(0)) task.reject(new PixelInfoError(ErrorCodes.OVERLOADED, 'the server is shutting down'));
    await Promise.all(this.threads.splice(0).map((t) => this.stop(t)));
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      let thread = this.threads.find((t) => !t.task);
      if (!thread) {
        if (this.threads.length >= this.options.size) return;
        thread = this.spawn();
      }
      thread.task = this.waiting.shift()!;
      if (thread.ready) this.start(thread);
    }
  }

  /** Sends the thread its task; the task's time limit starts now (not while the thread was still loading). */
  private start(thread: Thread<I, O>): void {
    const task = thread.task!;
    clearTimeout(thread.timer);
    thread.timer = setTimeout(() => this.timeOut(thread), this.options.timeoutMs);
    thread.worker.postMessage({ id: task.id, input: task.input });
  }

  private spawn(): Thread<I, O> {
    const entry = this.options.entry;
    const tsx = entry.pathname.endsWith('.ts') ? import.meta.resolve('tsx/esm/api') : undefined;
    const worker = new Worker(BOOTSTRAP, { eval: true, execArgv: [], workerData: { entry: entry.href, tsx } });
    worker.unref(); // an idle pool never keeps the process alive
    const thread: Thread<I, O> = { worker, ready: false };
    thread.timer = setTimeout(
      () => this.fail(thread, new PixelInfoError(ErrorCodes.INTERNAL, `${this.options.name} worker did not start within ${STARTUP_LIMIT_MS} ms`)),
      STARTUP_LIMIT_MS,
    );
    worker.on('message', (reply: Message<O>) => {
      if ('ready' in reply) {
        thread.ready = true;
        clearTimeout(thread.timer);
        if (thread.task) this.start(thread);
      } else this.settle(thread, reply);
    });
    worker.on('error', (err) => this.fail(thread, new PixelInfoError(ErrorCodes.INTERNAL, `${this.options.name} worker failed: ${err.message}`, { cause: err })));
    worker.on('exit', () => this.fail(thread, new PixelInfoError(ErrorCodes.INTERNAL, `${this.options.name} worker exited`)));
    this.threads.push(thread);
    return thread;
  }

  private settle(thread: Thread<I, O>, reply: Reply<O>): void {
    const task = thread.task;
    if (!task || task.id !== reply.id) return;
    clearTimeout(thread.timer);
    thread.task = undefined;
    if ('error' in reply) task.reject(new PixelInfoError(reply.error.code, reply.error.message));
    else task.resolve(reply.output);
    this.dispatch();
  }

  /** The thread is gone (crashed, exited, or terminated for a timeout): fail its task and replace it. */
  private fail(thread: Thread<I, O>, err: PixelInfoError): void {
    const at = this.threads.indexOf(thread);
    if (at < 0) return;
    this.threads.splice(at, 1);
    clearTimeout(thread.timer);
    thread.task?.reject(err);
    thread.task = undefined;
    void thread.worker.terminate();
    if (!this.closed) this.dispatch();
  }

  private timeOut(thread: Thread<I, O>): void {
    this.fail(thread, new PixelInfoError(ErrorCodes.TIMEOUT, `${this.options.name} took longer than ${this.options.timeoutMs} ms`));
  }

  private async stop(thread: Thread<I, O>): Promise<void> {
    clearTimeout(thread.timer);
    thread.task?.reject(new PixelInfoError(ErrorCodes.OVERLOADED, 'the server is shutting down'));
    thread.task = undefined;
    await thread.worker.terminate();
  }
}
