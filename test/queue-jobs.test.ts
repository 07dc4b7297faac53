/**
 * Batch jobs end to end in one process: Redis (a throw-away redis-server), the SQLite library, the real model in
 * a CaptionWorker. 20 Flickr8k images (2 of them broken) give 18 captions and 2 per-image errors, each identical
 * to Captioner.caption on the same files; a resubmission captions nothing again; the jobs CLI prints the
 * documented shapes; cancel drops queued inputs; after Redis loses the queue, requeuePending finishes the job.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { registerJobs } from '../src/cli/commands/jobs.js';
import { EVERYONE, modelIdOf, openLibrary, type JobRecord, type LibraryStore } from '../src/library/index.js';
import { Captioner, defaultModelDir, isCaptionFailure, type CaptionOutcome } from '../src/pipeline/captioner.js';
import { JobQueue } from '../src/queue/job-queue.js';
import { isFinished, jobResults, type JobResult } from '../src/queue/status.js';
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from '../src/worker/metrics.js';
import { CaptionWorker } from '../src/worker/worker.js';
import { runCommand } from './helpers/cli.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { haveRedisServer, startRedis, type RedisServer } from './helpers/redis.js';

const SKIP = !HAVE_FLICKR8K ? 'no ../shared/datasets/flickr8k' : !(await haveRedisServer()) ? 'redis-server is not installed' : false;

let redis: RedisServer;
let dir: string;
let dbPath: string;
let store: LibraryStore;
let captioner: Captioner;
let modelId: string;
let queue: JobQueue;
let worker: CaptionWorker | undefined;
let metrics: WorkerMetrics;
/** 18 Flickr8k images and 2 broken files (at positions 5 and 13). */
let files: string[];
/** Captioner.caption on `files`, the reference. */
let reference: CaptionOutcome[];
let firstJob: JobRecord;

const startWorker = async () => {
  worker = await CaptionWorker.start({ redisUrl: redis.url, store, engine: captioner, modelId, metrics, maxWaitMs: 5 });
};

/** Polls the store until the job ends (at most `ms`). */
async function waitForJob(id: string, ms = 120_000): Promise<JobRecord> {
  const deadline = Date.now() + ms;
  for (;;) {
    const job = (await store.getJob(id, EVERYONE))!;
    if (isFinished(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} did not end within ${ms} ms: ${JSON.stringify(job)}`);
    await sleep(100);
  }
}

const counter = async (outcome: string) => (await metrics.items.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'px-queue-'));
  dbPath = join(dir, 'library.sqlite');
  store = await openLibrary(dbPath);
  const images = readdirSync(FLICKR8K_IMAGES).filter((f) => f.endsWith('.jpg')).sort();
  const real = images.slice(0, 22).map((f) => join(FLICKR8K_IMAGES, f));
  const truncated = join(dir, 'truncated.jpg');
  writeFileSync(truncated, readFileSync(real[0]).subarray(0, 1500));
  const text = join(dir, 'notes.jpg');
  writeFileSync(text, 'this is not an image\n');
  files = [...real.slice(0, 5), truncated, ...real.slice(5, 12), text, ...real.slice(12, 18)];
  // Four more for the re-queue test (copied, so that their paths are new to the library too).
  for (const [i, f] of real.slice(18, 22).entries()) copyFileSync(f, join(dir, `extra-${i}.jpg`));

  [captioner, modelId] = await Promise.all([Captioner.load({ batchSize: 8 }), modelIdOf(defaultModelDir())]);
  reference = await captioner.caption(files);
  metrics = createWorkerMetrics(8);
  queue = await JobQueue.open(redis.url, store);
  await startWorker();
});

after(async () => {
  if (SKIP) return;
  await worker?.close();
  await queue?.close();
  await captioner?.release();
  await store?.close();
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('20 inputs, 2 broken: 18 captions and 2 per-image errors, identical to Captioner.caption', { skip: SKIP }, async () => {
  firstJob = await queue.submit(files);
  assert.equal(firstJob.total, 20);
  const job = await waitForJob(firstJob.id);
  assert.deepEqual([job.state, job.done, job.failed], ['completed', 18, 2]);

  const rows: JobResult[] = [];
  for await (const row of jobResults(store, job.id, EVERYONE)) rows.push(row);
  assert.deepEqual(
    rows.map((r) => r.index),
    files.map((_, i) => i),
  );
  for (const [i, row] of rows.entries()) {
    const expected = reference[i];
    assert.equal(row.source, files[i]);
    if (isCaptionFailure(expected)) {
      assert.equal(row.status, 'failed', `${files[i]} should fail`);
      // The same code and message; libvips's own detail in parentheses is racy under concurrent decodes.
      const withoutDetail = (m: string) => m.replace(/ \([^)]*\)$/, '');
      assert.equal(row.error?.code, expected.error.code);
      assert.equal(withoutDetail(row.error!.message), withoutDetail(expected.error.message));
      continue;
    }
    assert.equal(row.status, 'done', `${files[i]}: ${JSON.stringify(row.error)}`);
    assert.equal(row.caption, expected.captions[0].text);
    const entry = (await store.get(row.imageId!, EVERYONE))!;
    assert.equal(entry.model, modelId);
    assert.deepEqual(
      entry.captions.map((c) => c.text),
      expected.captions.map((c) => c.text),
    );
    for (const [k, c] of entry.captions.entries()) assert.ok(Math.abs(c.score - expected.captions[k].score) < 1e-5, `score ${c.score} vs ${expected.captions[k].score}`);
  }
  assert.deepEqual(
    rows.filter((r) => r.status === 'failed').map((r) => r.error!.code),
    ['IMAGE_TRUNCATED', 'NOT_AN_IMAGE'],
  );
  assert.equal(await store.count(EVERYONE), 18);
  assert.equal(await counter('captioned'), 18);
  assert.equal(await counter('failed'), 2);
  const counts = await queue.counts();
  assert.deepEqual([counts.waiting, counts.active, counts.failed], [0, 0, 0], 'no retries, nothing left in Redis');
  const batches = await metrics.batchSize.get();
  const sum = batches.values.find((v) => v.metricName === 'pixel_info_worker_batch_size_sum')!.value;
  const count = batches.values.find((v) => v.metricName === 'pixel_info_worker_batch_size_count')!.value;
  assert.equal(sum, 20, 'every input went through the batcher once');
  assert.ok(count < 20, `inputs were batched (${count} batches for 20 images)`);
});

test('a resubmission is not captioned again', { skip: SKIP }, async () => {
  const job = await waitForJob((await queue.submit(files)).id);
  assert.deepEqual([job.state, job.done, job.failed], ['completed', 18, 2]);
  assert.equal(await counter('captioned'), 18, 'nothing captioned twice');
  assert.equal(await counter('reused'), 18);
  assert.equal(await store.count(EVERYONE), 18);
});

test('worker metrics are served for Prometheus', { skip: SKIP }, async () => {
  const { server, port } = await serveMetrics(metrics.registry, 0, '127.0.0.1');
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /pixel_info_worker_items_total\{outcome="captioned"\} 18/);
    assert.match(text, /pixel_info_worker_batch_duration_seconds_count \d+/);
    assert.match(text, /pixel_info_worker_queue_wait_seconds_count \d+/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('jobs CLI: status --json, results --jsonl/--csv, submit --wait --json', { skip: SKIP }, async () => {
  const db = ['--database', dbPath];
  const status = await runCommand(registerJobs, ['jobs', 'status', firstJob.id, '--json', ...db]);
  assert.equal(status.code, 0, status.stderr.join('\n'));
  const parsed = JSON.parse(status.stdout.join('\n'));
  assert.deepEqual(Object.keys(parsed), ['id', 'state', 'total', 'done', 'failed', 'rate', 'eta']);
  assert.deepEqual([parsed.id, parsed.state, parsed.total, parsed.done, parsed.failed, parsed.eta], [firstJob.id, 'completed', 20, 18, 2, 0]);
  assert.ok(parsed.rate > 0);

  const jsonl = await runCommand(registerJobs, ['jobs', 'results', firstJob.id, '--jsonl', ...db]);
  const rows = jsonl.stdout.map((line) => JSON.parse(line));
  assert.equal(rows.length, 20);
  assert.deepEqual(Object.keys(rows[0]), ['index', 'source', 'status', 'imageId', 'caption', 'error']);
  assert.equal(rows[5].error.code, 'IMAGE_TRUNCATED');
  assert.match(rows[0].imageId, /^[0-9a-f]{64}$/);

  const csv = await runCommand(registerJobs, ['jobs', 'results', firstJob.id, '--csv', ...db]);
  assert.equal(csv.stdout[0], 'index,source,status,image_id,caption,error_code,error_message');
  assert.equal(csv.stdout.length, 21);
  assert.ok(csv.stdout[14].includes('NOT_AN_IMAGE'));

  const submit = await runCommand(registerJobs, ['jobs', 'submit', ...files.slice(0, 3), '--wait', '--json', '--poll-ms', '100', '--timeout', '60', '--redis', redis.url, ...db]);
  assert.equal(submit.code, 0, submit.stderr.join('\n'));
  const done = JSON.parse(submit.stdout.join('\n'));
  assert.deepEqual([done.state, done.total, done.done, done.failed, done.eta], ['completed', 3, 3, 0, 0]);

  const missing = await runCommand(registerJobs, ['jobs', 'status', '00000000-0000-4000-8000-000000000000', ...db]).catch((err: Error) => err);
  assert.ok(missing instanceof Error && /NOT_FOUND|no job/.test(missing.message), String(missing));
  const noRedis = await runCommand(registerJobs, ['jobs', 'submit', files[0], ...db]).catch((err: Error) => err);
  assert.ok(noRedis instanceof Error && /--redis/.test(noRedis.message), 'submit needs --redis');
});

test('cancel drops the queued inputs', { skip: SKIP }, async () => {
  await worker!.close(); // nobody takes the inputs while the job is cancelled
  worker = undefined;
  const job = await queue.submit(files.slice(0, 6));
  assert.equal((await queue.counts()).waiting, 6);
  const status = await queue.cancel(job.id, EVERYONE);
  assert.equal(status?.state, 'cancelled');
  assert.equal((await queue.counts()).waiting, 0);
  assert.equal(await queue.cancel('00000000-0000-4000-8000-000000000000', EVERYONE), undefined);
  assert.equal(await queue.requeuePending(job.id), 0, 'a cancelled job is not re-queued');
});

test('after Redis loses the queue, requeuePending puts the unfinished inputs back', { skip: SKIP }, async () => {
  const extra = [0, 1, 2, 3].map((i) => join(dir, `extra-${i}.jpg`));
  const job = await queue.submit(extra);
  const admin = new Redis(redis.url);
  try {
    await admin.flushall(); // the queue is gone; the store still has the job
  } finally {
    admin.disconnect();
  }
  assert.equal((await queue.counts()).waiting, 0);
  assert.equal(await queue.requeuePending(job.id), 4);
  assert.equal(await queue.requeuePending(job.id), 0, 'inputs still queued are not added twice');
  await startWorker();
  const done = await waitForJob(job.id);
  assert.deepEqual([done.state, done.done, done.failed], ['completed', 4, 0]);
});
