/**
 * S3 inputs against a local S3-compatible server (moto_server): `jobs submit s3://bucket/prefix` lists the image
 * objects under the prefix, a worker reads each object and captions it exactly as Captioner.caption captions
 * the same file; a truncated object, a missing object and a missing bucket end with their error codes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerJobs } from '../src/cli/commands/jobs.js';
import { EVERYONE, modelIdOf, openLibrary, type LibraryStore } from '../src/library/index.js';
import { Captioner, defaultModelDir, isCaptionFailure } from '../src/pipeline/captioner.js';
import { JobQueue } from '../src/queue/job-queue.js';
import { expandSources } from '../src/queue/sources.js';
import { isFinished, jobResults, type JobResult } from '../src/queue/status.js';
import { CaptionWorker } from '../src/worker/worker.js';
import { runCommand } from './helpers/cli.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { haveRedisServer, startRedis, type RedisServer } from './helpers/redis.js';
import { haveMotoServer, startS3, type S3Server } from './helpers/s3.js';

const SKIP = !HAVE_FLICKR8K
  ? 'no ../shared/datasets/flickr8k'
  : !(await haveRedisServer())
    ? 'redis-server is not installed'
    : !(await haveMotoServer())
      ? 'moto_server (PyPI moto[server]) is not installed'
      : false;

let s3: S3Server;
let redis: RedisServer;
let dir: string;
let dbPath: string;
let store: LibraryStore;
let captioner: Captioner;
let worker: CaptionWorker;
const savedEnv: Record<string, string | undefined> = {};
/** Local copies of the objects, by key. */
const local = new Map<string, string>();

before(async () => {
  if (SKIP) return;
  [s3, redis] = await Promise.all([startS3(), startRedis()]);
  for (const [name, value] of Object.entries(s3.env)) {
    savedEnv[name] = process.env[name];
    process.env[name] = value;
  }
  delete process.env.AWS_ENDPOINT_URL_S3; // the endpoint comes from --s3-endpoint / the settings below
  dir = mkdtempSync(join(tmpdir(), 'px-s3-'));
  dbPath = join(dir, 'library.sqlite');
  store = await openLibrary(dbPath);

  const images = readdirSync(FLICKR8K_IMAGES).filter((f) => f.endsWith('.jpg')).sort().slice(200, 204).map((f) => join(FLICKR8K_IMAGES, f));
  await s3.createBucket('photos');
  const objects: Array<[string, Buffer]> = [
    ['trip/a.jpg', readFileSync(images[0])],
    ['trip/b.jpg', readFileSync(images[1])],
    ['trip/day2/c.jpg', readFileSync(images[2])],
    ['trip/broken.jpg', readFileSync(images[3]).subarray(0, 1800)],
    ['trip/notes.txt', Buffer.from('not listed: not an image name')],
    ['other/d.jpg', readFileSync(images[3])],
  ];
  for (const [key, body] of objects) await s3.putObject('photos', key, body);
  local.set('trip/a.jpg', images[0]).set('trip/b.jpg', images[1]).set('trip/day2/c.jpg', images[2]);

  const [loaded, modelId] = await Promise.all([Captioner.load({ batchSize: 8 }), modelIdOf(defaultModelDir())]);
  captioner = loaded;
  worker = await CaptionWorker.start({ redisUrl: redis.url, store, engine: captioner, modelId, s3: { endpoint: s3.endpoint }, maxWaitMs: 5 });
});

after(async () => {
  if (SKIP) return;
  await worker?.close();
  await captioner?.release();
  await store?.close();
  await Promise.all([redis?.destroy(), s3?.stop()]);
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('an s3:// prefix lists its image objects, sorted, recursively', { skip: SKIP }, async () => {
  const { sources, empty } = await expandSources(['s3://photos/trip/', 's3://photos/nothing/'], { endpoint: s3.endpoint });
  assert.deepEqual(sources, ['s3://photos/trip/a.jpg', 's3://photos/trip/b.jpg', 's3://photos/trip/broken.jpg', 's3://photos/trip/day2/c.jpg']);
  assert.deepEqual(empty, ['s3://photos/nothing/']);
});

test('jobs submit s3://bucket/prefix --wait --json: captions identical to Captioner.caption, the broken object an error', { skip: SKIP }, async () => {
  const run = await runCommand(registerJobs, [
    'jobs', 'submit', 's3://photos/trip', '--s3-endpoint', s3.endpoint, '--redis', redis.url, '--database', dbPath, '--wait', '--json', '--poll-ms', '100', '--timeout', '120',
  ]);
  const status = JSON.parse(run.stdout.join('\n'));
  assert.deepEqual([status.state, status.total, status.done, status.failed], ['completed', 4, 3, 1]);
  assert.equal(run.code, 1, 'exit 1: an input failed');

  const rows: JobResult[] = [];
  for await (const row of jobResults(store, status.id, EVERYONE)) rows.push(row);
  const broken = rows.find((r) => r.source === 's3://photos/trip/broken.jpg')!;
  assert.equal(broken.error?.code, 'IMAGE_TRUNCATED');
  assert.match(broken.error!.message, /^s3:\/\/photos\/trip\/broken\.jpg: /, 'the error names the object');
  const good = rows.filter((r) => r.status === 'done');
  const reference = await captioner.caption(good.map((r) => local.get(r.source.replace('s3://photos/', ''))!));
  for (const [i, row] of good.entries()) {
    const expected = reference[i];
    assert.ok(!isCaptionFailure(expected));
    assert.equal(row.caption, expected.captions[0].text, row.source);
  }
});

test('a missing object is FILE_NOT_FOUND; a missing bucket is refused at submission', { skip: SKIP }, async () => {
  const queue = await JobQueue.open(redis.url, store);
  try {
    const job = await queue.submit(['s3://photos/trip/missing.jpg']);
    let record = job;
    for (const deadline = Date.now() + 30_000; !isFinished(record.state) && Date.now() < deadline; ) {
      await sleep(50);
      record = (await store.getJob(job.id, EVERYONE))!;
    }
    const [row] = (await store.jobItems(job.id, EVERYONE)).map((item) => item.result);
    assert.deepEqual(row, { error: { code: 'FILE_NOT_FOUND', message: 's3://photos/trip/missing.jpg: no such object' } });
  } finally {
    await queue.close();
  }
  const noBucket = await runCommand(registerJobs, ['jobs', 'submit', 's3://no-such-bucket/x/', '--s3-endpoint', s3.endpoint, '--redis', redis.url, '--database', dbPath]).catch((err: Error) => err);
  assert.ok(noBucket instanceof Error && /no such bucket/.test(noBucket.message), String(noBucket));
});
