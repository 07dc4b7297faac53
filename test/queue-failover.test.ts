/**
 * Failures of the distributed mode, with real `pixel-info worker` processes (the shipped model, one thread each),
 * Redis with AOF, and the library in PostgreSQL (SQLite when PostgreSQL is not installed):
 *
 *   - a worker SIGKILLed mid-job: its jobs are handed to the other worker when their locks expire, and the job
 *     ends with every input recorded once and every image stored once;
 *   - Redis killed and restarted mid-job (AOF, fsync always): no input is lost;
 *   - SIGTERM mid-job: the worker finishes what it holds, releases its locks and exits 0; a new worker takes
 *     the rest.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EVERYONE, openLibrary, type JobRecord, type LibraryStore } from '../src/library/index.js';
import { JobQueue } from '../src/queue/job-queue.js';
import { isFinished, jobResults } from '../src/queue/status.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { POSTGRES_SKIP, startPostgres, type TestPostgres } from './helpers/postgres.js';
import { haveRedisServer, startRedis, type RedisServer } from './helpers/redis.js';

const SKIP = !HAVE_FLICKR8K ? 'no ../shared/datasets/flickr8k' : !(await haveRedisServer()) ? 'redis-server is not installed' : false;
const BIN = join(process.cwd(), 'bin', 'pixel-info.js');
/** Short locks, so that a killed worker's jobs come back within seconds. */
const LOCK_MS = 2000;

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** A `pixel-info worker` child process and its JSON log lines. */
class WorkerProcess {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private stderr = '';
  private readonly child: ChildProcess;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [BIN, 'worker', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const part of parts) if (part.trim()) this.lines.push(JSON.parse(part) as LogLine);
    });
    this.child.stderr!.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitFor(msg: string, ms = 60_000): Promise<LogLine> {
    const deadline = Date.now() + ms;
    for (;;) {
      const line = this.lines.find((l) => l.msg === msg);
      if (line) return line;
      if (!this.running) throw new Error(`worker exited before "${msg}": ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no "${msg}" within ${ms} ms: ${this.stderr}`);
      await sleep(50);
    }
  }

  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    if (this.running) process.kill(this.pid, signal);
  }
}

let redis: RedisServer;
let postgres: TestPostgres | undefined;
let database: string;
let dir: string;
let store: LibraryStore;
let queue: JobQueue;
let images: string[];
const workers: WorkerProcess[] = [];

function startWorker(): WorkerProcess {
  const worker = new WorkerProcess([
    '--redis', redis.url,
    '--database', database,
    '--threads', '1',
    '--concurrency', '8',
    '--batch-size', '4',
    '--max-wait-ms', '10',
    '--lock-ms', String(LOCK_MS),
    '--no-interactive',
  ]);
  workers.push(worker);
  return worker;
}

/** Polls the store until `until(job)` holds (at most `ms`). */
async function waitForJob(id: string, until: (job: JobRecord) => boolean, ms = 180_000): Promise<JobRecord> {
  const deadline = Date.now() + ms;
  for (;;) {
    const job = (await store.getJob(id, EVERYONE))!;
    if (until(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} not there within ${ms} ms: ${JSON.stringify(job)}`);
    await sleep(100);
  }
}

before(async () => {
  if (SKIP) return;
  dir = mkdtempSync(join(tmpdir(), 'px-failover-'));
  [redis, postgres] = await Promise.all([startRedis({ appendOnly: true }), POSTGRES_SKIP ? undefined : startPostgres()]);
  database = postgres ? await postgres.createDatabase() : join(dir, 'library.sqlite');
  store = await openLibrary(database);
  queue = await JobQueue.open(redis.url, store);
  images = readdirSync(FLICKR8K_IMAGES).filter((f) => f.endsWith('.jpg')).sort().slice(100, 154).map((f) => join(FLICKR8K_IMAGES, f));
});

after(async () => {
  if (SKIP) return;
  for (const w of workers) w.signal('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await queue?.close();
  await store?.close();
  await redis?.destroy();
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test(`a worker SIGKILLed mid-job and Redis restarted mid-job: the job ends complete, each image stored once (${POSTGRES_SKIP ? 'SQLite' : 'PostgreSQL'})`, { skip: SKIP }, async () => {
  const truncated = join(dir, 'truncated.jpg');
  writeFileSync(truncated, readFileSync(images[0]).subarray(0, 2000));
  const empty = join(dir, 'empty.jpg');
  writeFileSync(empty, '');
  const files = [...images.slice(0, 19), truncated, ...images.slice(19, 38), empty];

  const [a, b] = [startWorker(), startWorker()];
  await Promise.all([a.waitFor('ready; waiting for work'), b.waitFor('ready; waiting for work')]);
  const job = await queue.submit(files);

  await waitForJob(job.id, (j) => j.done + j.failed >= 8);
  a.signal('SIGKILL');
  assert.equal(await a.exited, null, 'killed by the signal');

  await waitForJob(job.id, (j) => j.done + j.failed >= 20);
  await redis.restart('SIGKILL'); // a crash: only what the AOF fsynced survives

  const done = await waitForJob(job.id, (j) => isFinished(j.state));
  assert.deepEqual([done.state, done.total, done.done, done.failed], ['completed', 40, 38, 2]);
  const ids = new Map<string, number>();
  let rows = 0;
  for await (const row of jobResults(store, job.id, EVERYONE)) {
    rows++;
    assert.notEqual(row.status, 'pending', `${row.source} has no result`);
    if (row.imageId) ids.set(row.imageId, (ids.get(row.imageId) ?? 0) + 1);
  }
  assert.equal(rows, 40);
  assert.equal(ids.size, 38, 'every image has its own id');
  assert.ok([...ids.values()].every((n) => n === 1), 'each input recorded once');
  assert.equal(await store.count(EVERYONE), 38, 'each image stored once');
  assert.ok(b.running, 'the surviving worker is still up');
  assert.ok(
    b.lines.some((l) => l.msg === 'an input held by a stopped worker is back on the queue'),
    "the killed worker's inputs were recovered by the stalled-job check",
  );
  const counts = await queue.counts();
  assert.deepEqual([counts.waiting, counts.active, counts.failed], [0, 0, 0], 'nothing left in the queue');
});

test('SIGTERM mid-job: the worker finishes what it holds, releases its locks and exits 0; a new worker takes the rest', { skip: SKIP }, async () => {
  const running = workers.filter((w) => w.running);
  assert.equal(running.length, 1);
  const [b] = running;
  const files = images.slice(38, 54);
  const job = await queue.submit(files);
  await waitForJob(job.id, (j) => j.done >= 2);
  b.signal('SIGTERM');
  assert.equal(await b.exited, 0, 'a graceful stop exits 0');
  const shutdown = b.lines.findIndex((l) => l.msg.startsWith('shutting down'));
  assert.ok(shutdown >= 0 && b.lines.slice(shutdown).some((l) => l.msg === 'stopped'), 'logs the stop');

  const counts = await queue.counts();
  assert.equal(counts.active, 0, 'no job left locked by the stopped worker');
  const after = (await store.getJob(job.id, EVERYONE))!;
  assert.equal(after.done + after.failed + counts.waiting, 16, 'what it held is finished; the rest still waits');
  assert.equal(after.state === 'completed' ? 0 : counts.waiting, 16 - after.done - after.failed);

  const c = startWorker();
  await c.waitFor('ready; waiting for work');
  const done = await waitForJob(job.id, (j) => isFinished(j.state));
  assert.deepEqual([done.state, done.done, done.failed], ['completed', 16, 0]);
  c.signal('SIGTERM');
  assert.equal(await c.exited, 0);
});
