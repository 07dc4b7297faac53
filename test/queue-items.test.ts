/**
 * How one input of a batch job ends (src/worker/items.ts), with a fake captioner and the SQLite library: a bad
 * input is its recorded error, a transient fault is thrown (for the queue to retry) and records nothing, stored
 * captions of the same model are reused only for the default decoding, a cancelled job's inputs are skipped.
 * Then through Redis: a transient store fault is retried and the job completes; an input that keeps failing is
 * recorded as failed once its attempts are spent, so its job still ends. Jobs ids and item ids are checked too.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { resolveGeneration } from '../src/decoder/generation.js';
import { ErrorCodes, PixelInfoError } from '../src/errors.js';
import { EVERYONE, openLibrary, type JobRecord, type LibraryStore } from '../src/library/index.js';
import type { CaptionOutcome, CaptionResult } from '../src/pipeline/captioner.js';
import { itemDataSchema, itemJobId, newJobId } from '../src/queue/definitions.js';
import { JobQueue } from '../src/queue/job-queue.js';
import { isFinished, jobResults, jobStatus } from '../src/queue/status.js';
import type { CaptionEngine } from '../src/server/engine.js';
import { processItem, recordGaveUp, type ItemContext } from '../src/worker/items.js';
import { CaptionWorker } from '../src/worker/worker.js';
import { haveRedisServer, startRedis, type RedisServer } from './helpers/redis.js';

const NO_REDIS = !(await haveRedisServer()) && 'redis-server is not installed';

/** Tiny PNGs of distinct colours, by name; anything that is not one of them is NOT_AN_IMAGE to the fake engine. */
const names = new Map<string, string>();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function image(name: string): Promise<Buffer> {
  const n = [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 0xffffff, 7);
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: n & 255, g: (n >> 8) & 255, b: (n >> 16) & 255 } } }).png().toBuffer();
  names.set(sha(png), name);
  return png;
}

function fakeEngine(calls: number[] = []): CaptionEngine {
  return {
    card: { name: 'fake' },
    async caption(inputs, options = {}) {
      calls.push(inputs.length);
      return inputs.map((input, i): CaptionOutcome => {
        const name = names.get(sha(input as Buffer));
        if (!name) return { source: `<buffer ${i}>`, error: { code: ErrorCodes.NOT_AN_IMAGE, message: `<buffer ${i}>: not an image` } };
        const text = `a photo of ${name} beam ${options.beamSize ?? 'default'}`;
        return {
          source: `<buffer ${i}>`,
          image: { format: 'jpeg', width: 10, height: 10 },
          captions: [{ text, tokens: text.split(' '), score: -1, logProb: -1 }],
          timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
        };
      });
    },
    release: async () => {},
  };
}

let store: LibraryStore;
const files = new Map<string, Buffer>([['/data/notes.txt', Buffer.from('hello')]]);
const engine = fakeEngine();
let captioned = 0;
const ctx = (): ItemContext => ({
  store,
  modelId: 'fake@1',
  card: engine.card,
  read: async (source) => {
    const bytes = files.get(source);
    if (!bytes) throw new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${source}: no such file`);
    return bytes;
  },
  caption: async (bytes, generation, source) => {
    captioned++;
    const [outcome] = await engine.caption([bytes], generation);
    if ('error' in outcome) throw new PixelInfoError(outcome.error.code, outcome.error.message.replace('<buffer 0>', source));
    return outcome as CaptionResult;
  },
});

before(async () => {
  store = await openLibrary(':memory:');
  files.set('/data/a.jpg', await image('a'));
  files.set('/data/b.jpg', await image('b'));
});
after(async () => store.close());

async function newJob(sources: string[]): Promise<JobRecord> {
  return store.createJob({ id: newJobId(), owner: null, sources, options: {} });
}

test('item ids are deterministic and valid for BullMQ; item data is validated', () => {
  const id = newJobId();
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(itemJobId(id, 7), `${id}.7`);
  assert.ok(!itemJobId(id, 7).includes(':'), 'BullMQ refuses ":" in custom ids');
  assert.ok(itemDataSchema.safeParse({ jobId: id, index: 0, source: '/x.jpg', owner: null, options: { beamSize: 3 } }).success);
  assert.ok(!itemDataSchema.safeParse({ jobId: 'x', index: 0, source: '/x.jpg', owner: null, options: {} }).success);
  assert.ok(!itemDataSchema.safeParse({ jobId: id, index: 0, source: '/x.jpg', owner: null, options: { beamSize: 2, nBest: 3 } }).success);
});

test('bad inputs are recorded as their error; good ones are captioned and stored with the model id', async () => {
  const job = await newJob(['/data/a.jpg', '/data/notes.txt', '/data/missing.jpg']);
  const run = (index: number, source: string) => processItem({ jobId: job.id, index, source, owner: null, options: {} }, ctx());
  assert.equal(await run(0, '/data/a.jpg'), 'captioned');
  assert.equal(await run(1, '/data/notes.txt'), 'failed');
  assert.equal(await run(2, '/data/missing.jpg'), 'failed');
  assert.equal(await run(0, '/data/a.jpg'), 'reused', 'a redelivered input is not captioned again');
  const after = (await store.getJob(job.id, EVERYONE))!;
  assert.deepEqual([after.state, after.done, after.failed], ['completed', 1, 2], 'a redelivery is not counted twice');
  const rows = [];
  for await (const r of jobResults(store, job.id, EVERYONE)) rows.push(r);
  assert.deepEqual(
    rows.map((r) => [r.status, r.error?.code ?? r.caption]),
    [
      ['done', 'a photo of a beam 3'],
      ['failed', 'NOT_AN_IMAGE'],
      ['failed', 'FILE_NOT_FOUND'],
    ],
  );
  assert.equal(rows[1].error?.message, '/data/notes.txt: not an image', 'the error names the source');
  assert.equal((await store.get(sha(files.get('/data/a.jpg')!), EVERYONE))?.model, 'fake@1');
  const status = jobStatus(after);
  assert.deepEqual([status.eta, typeof status.rate], [0, 'number']);
});

test('stored captions are reused for the default decoding only; other options caption again', async () => {
  const job = await newJob(['/data/b.jpg', '/data/b.jpg']);
  captioned = 0;
  assert.equal(await processItem({ jobId: job.id, index: 0, source: '/data/b.jpg', owner: null, options: {} }, ctx()), 'captioned');
  assert.equal(await processItem({ jobId: job.id, index: 1, source: '/data/b.jpg', owner: null, options: { beamSize: 1 } }, ctx()), 'captioned');
  assert.equal(captioned, 2);
  assert.equal((await store.get(sha(files.get('/data/b.jpg')!), EVERYONE))?.caption, 'a photo of b beam 1');
  assert.ok(resolveGeneration({}, engine.card.decoding).beamSize > 1, 'beam 1 is not the default');
});

test('a transient fault is thrown for the queue to retry and records nothing; a cancelled job is skipped', async () => {
  const job = await newJob(['/data/a.jpg', '/data/b.jpg']);
  const failing: ItemContext = { ...ctx(), read: async () => Promise.reject(new PixelInfoError(ErrorCodes.IO_ERROR, 's3://x/y.jpg: cannot read (ServiceUnavailable)')) };
  await assert.rejects(processItem({ jobId: job.id, index: 0, source: '/data/a.jpg', owner: null, options: {} }, failing), /ServiceUnavailable/);
  const down: ItemContext = { ...ctx(), store: { ...store, getJob: store.getJob.bind(store), hasCaptions: () => Promise.reject(new Error('connection refused')) } as LibraryStore };
  await assert.rejects(processItem({ jobId: job.id, index: 0, source: '/data/a.jpg', owner: null, options: {} }, down), /connection refused/);
  assert.equal((await store.pendingItems(job.id)).length, 2);

  await recordGaveUp(store, { jobId: job.id, index: 1, source: '/data/b.jpg', owner: null, options: {} }, new Error('job stalled more than allowable limit'));
  const [gaveUp] = (await store.jobItems(job.id, EVERYONE)).slice(1);
  assert.deepEqual(gaveUp.result, { error: { code: 'INTERNAL', message: '/data/b.jpg: not captioned after repeated failures (job stalled more than allowable limit)' } });

  assert.ok(await store.cancelJob(job.id, EVERYONE));
  assert.equal(await processItem({ jobId: job.id, index: 0, source: '/data/a.jpg', owner: null, options: {} }, ctx()), 'cancelled');
  assert.equal((await store.pendingItems(job.id)).length, 1);
});

test('through Redis: a transient store fault is retried with backoff; an input that keeps failing ends as failed', { skip: NO_REDIS }, async (t) => {
  const redis: RedisServer = await startRedis();
  const db = await openLibrary(':memory:');
  const closers: Array<() => Promise<unknown>> = [() => redis.destroy(), () => db.close()];
  t.after(async () => {
    for (const close of closers.reverse()) await close(); // the worker and the queue before Redis
  });
  // put fails once for every image, and always for one of them.
  const failedOnce = new Set<string>();
  const flaky = Object.create(db) as LibraryStore;
  flaky.put = async (entry) => {
    if (entry.captions[0].text.includes('cursed')) throw new Error('the database is down');
    if (!failedOnce.has(entry.id)) {
      failedOnce.add(entry.id);
      throw new Error('connection reset');
    }
    return db.put(entry);
  };
  const queue = await JobQueue.open(redis.url, db, { attempts: 3, backoffMs: 50 });
  closers.push(() => queue.close());
  const worker = await CaptionWorker.start({ redisUrl: redis.url, store: flaky, engine: fakeEngine(), modelId: 'fake@1', maxWaitMs: 5, queues: { items: true, interactive: false } });
  closers.push(() => worker.close());

  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'px-retry-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const sources: string[] = [];
  for (const name of ['one', 'two', 'cursed']) {
    sources.push(join(dir, `${name}.png`));
    writeFileSync(sources.at(-1)!, await image(name));
  }
  const job = await queue.submit(sources);
  const deadline = Date.now() + 30_000;
  let record = job;
  while (!isFinished(record.state) && Date.now() < deadline) {
    await sleep(50);
    record = (await db.getJob(job.id, EVERYONE))!;
  }
  assert.deepEqual([record.state, record.done, record.failed], ['completed', 2, 1]);
  const rows = [];
  for await (const r of jobResults(db, job.id, EVERYONE)) rows.push(r);
  assert.equal(rows[2].error?.code, 'INTERNAL');
  assert.match(rows[2].error!.message, /cursed\.png: not captioned after repeated failures \(the database is down\)/);
  assert.equal((await worker.metrics.retries.get()).values[0].value, 2 + 2, 'one retry for each good image, two for the cursed one');
});

test('a worker stops promptly when Redis is gone (no endless reconnecting)', { skip: NO_REDIS }, async () => {
  const redis = await startRedis();
  const db = await openLibrary(':memory:');
  try {
    const worker = await CaptionWorker.start({ redisUrl: redis.url, store: db, engine: fakeEngine(), modelId: 'fake@1', closeTimeoutMs: 500 });
    await redis.stop('SIGKILL');
    const started = Date.now();
    await worker.close();
    assert.ok(Date.now() - started < 8000, `close took ${Date.now() - started} ms`);
  } finally {
    await db.close();
    await redis.destroy();
  }
});

test('Redis unreachable: OVERLOADED naming it; no Redis URL: a usage error naming the option', { skip: NO_REDIS }, async () => {
  const redis = await startRedis();
  const db = await openLibrary(':memory:');
  try {
    const queue = await JobQueue.open(redis.url, db);
    await redis.stop('SIGKILL');
    await assert.rejects(queue.submit(['/x.jpg']), (err: PixelInfoError) => err.code === 'OVERLOADED' && /Redis at redis:\/\/127\.0\.0\.1:\d+/.test(err.message));
    assert.equal(await db.getJob('any', EVERYONE), undefined);
    await queue.close();
    await assert.rejects(JobQueue.open(redis.url, db, { timeoutMs: 500 }), (err: PixelInfoError) => err.code === 'OVERLOADED' && /cannot reach Redis/.test(err.message));
  } finally {
    await db.close();
    await redis.destroy();
  }
  const { registerWorker } = await import('../src/cli/commands/worker.js');
  const { runCommand } = await import('./helpers/cli.js');
  const saved = process.env.PIXEL_INFO_REDIS_URL;
  delete process.env.PIXEL_INFO_REDIS_URL;
  try {
    await assert.rejects(runCommand(registerWorker, ['worker']), (err: PixelInfoError) => err.code === 'INVALID_ARGUMENT' && /--redis/.test(err.message));
    await assert.rejects(runCommand(registerWorker, ['worker', '--redis', 'http://x']), /not a Redis URL/);
  } finally {
    if (saved !== undefined) process.env.PIXEL_INFO_REDIS_URL = saved;
  }
});
