/**
 * Batch jobs over HTTP (src/server/plugins/jobs.ts) and interactive captioning on the worker pool
 * (`--remote-captioning`, src/queue/remote.ts), with Redis, the SQLite library and a fake captioner in an
 * in-process CaptionWorker: submit, status, server-sent events until the end, results as JSON / JSON lines /
 * CSV, cancel, validation and who may see what; then POST /v1/captions answered by a worker.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildServer, type PixelInfoServer } from '../src/server/app.js';
import { ErrorCodes } from '../src/errors.js';
import { openLibrary, type LibraryStore } from '../src/library/index.js';
import type { CaptionOutcome } from '../src/pipeline/captioner.js';
import { RemoteCaptionEngine } from '../src/queue/remote.js';
import type { CaptionEngine } from '../src/server/engine.js';
import { CaptionWorker } from '../src/worker/worker.js';
import { haveRedisServer, startRedis, type RedisServer } from './helpers/redis.js';

const SKIP = !(await haveRedisServer()) && 'redis-server is not installed';

/** Tiny PNGs of distinct colours; the fake engine captions them by name and calls anything else NOT_AN_IMAGE. */
const names = new Map<string, string>();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function image(name: string): Promise<Buffer> {
  const n = [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 0xffffff, 11);
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: n & 255, g: (n >> 8) & 255, b: (n >> 16) & 255 } } }).png().toBuffer();
  names.set(sha(png), name);
  return png;
}

const fakeEngine: CaptionEngine = {
  card: { name: 'fake' },
  async caption(inputs) {
    await new Promise((resolve) => setTimeout(resolve, 20)); // a batch takes a moment, so progress can be seen
    return inputs.map((input, i): CaptionOutcome => {
      const name = names.get(sha(input as Buffer));
      if (!name) return { source: `<buffer ${i}>`, error: { code: ErrorCodes.NOT_AN_IMAGE, message: `<buffer ${i}>: not an image` } };
      const text = `a picture of ${name}`;
      return {
        source: `<buffer ${i}>`,
        image: { format: 'png', width: 4, height: 4 },
        captions: [{ text, tokens: text.split(' '), score: -0.5, logProb: -2 }],
        timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 1 },
      };
    });
  },
  release: async () => {},
};

let redis: RedisServer;
let dir: string;
let store: LibraryStore;
let server: PixelInfoServer;
let url: string;
let worker: CaptionWorker | undefined;
/** 12 images and one text file, in `dir`. */
let inputs: string[];

const startWorker = async () => {
  worker = await CaptionWorker.start({ redisUrl: redis.url, store, engine: fakeEngine, modelId: 'fake@1', batchSize: 4, concurrency: 4, maxWaitMs: 5 });
};

const json = (path: string, init: Omit<RequestInit, 'body'> & { body?: unknown } = {}) =>
  fetch(`${url}${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });

/** Reads a server-sent event stream to its end (at most `ms`): the events, by name, with their data. */
async function readEvents(path: string, ms = 30_000): Promise<Array<{ event: string; data: Record<string, unknown> }>> {
  const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(ms) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('event:'))
    .map((block) => {
      const [eventLine, dataLine] = block.split('\n');
      return { event: eventLine.slice('event: '.length), data: JSON.parse(dataLine.slice('data: '.length)) };
    });
}

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'px-jobs-http-'));
  store = await openLibrary(join(dir, 'library.sqlite'));
  inputs = [];
  for (let i = 0; i < 12; i++) {
    inputs.push(join(dir, `photo-${String(i).padStart(2, '0')}.png`));
    writeFileSync(inputs.at(-1)!, await image(`thing ${i}`));
  }
  inputs.push(join(dir, 'readme.png'));
  writeFileSync(inputs.at(-1)!, 'not a picture');
  server = await buildServer({ loadEngine: async () => fakeEngine, library: store, logger: false, keysCacheMs: 0, queue: { redisUrl: redis.url, eventsIntervalMs: 20 } });
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  await startWorker();
});

after(async () => {
  if (SKIP) return;
  await worker?.close();
  await server?.app.close();
  await store?.close();
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('POST /v1/jobs, then its events until the end, its status and its results', { skip: SKIP }, async () => {
  const res = await json('/v1/jobs', { method: 'POST', body: { inputs: [dir], options: { beam: 2 } } });
  assert.equal(res.status, 202, await res.clone().text());
  const job = await res.json();
  assert.deepEqual(Object.keys(job), ['id', 'state', 'total', 'done', 'failed', 'rate', 'eta', 'links']);
  assert.equal(job.total, 13, 'the folder was expanded');
  assert.equal(res.headers.get('location'), `/v1/jobs/${job.id}`);
  assert.deepEqual(job.links, { status: `/v1/jobs/${job.id}`, results: `/v1/jobs/${job.id}/results`, events: `/v1/jobs/${job.id}/events` });

  const events = await readEvents(job.links.events);
  const last = events.at(-1)!;
  assert.equal(last.event, 'end');
  assert.deepEqual([last.data.state, last.data.done, last.data.failed, last.data.eta], ['completed', 12, 1, 0]);
  assert.ok(events.slice(0, -1).every((e) => e.event === 'progress'));
  const finished = events.map((e) => (e.data.done as number) + (e.data.failed as number));
  assert.deepEqual(finished, [...finished].sort((a, b) => a - b), 'progress never goes back');

  const status = await (await fetch(`${url}${job.links.status}`)).json();
  assert.deepEqual([status.state, status.done, status.failed], ['completed', 12, 1]);
  assert.ok(status.rate > 0);

  const page = await (await fetch(`${url}${job.links.results}?limit=5&offset=10`)).json();
  assert.deepEqual([page.offset, page.count, page.total], [10, 3, 13]);
  assert.deepEqual(
    page.items.map((r: { status: string; caption: string | null; error: { code: string } | null }) => r.caption ?? r.error?.code),
    ['a picture of thing 10', 'a picture of thing 11', 'NOT_AN_IMAGE'],
  );

  const jsonl = await fetch(`${url}${job.links.results}?format=jsonl`);
  assert.match(jsonl.headers.get('content-type') ?? '', /^application\/x-ndjson/);
  const rows = (await jsonl.text()).trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(rows.length, 13);
  assert.deepEqual(Object.keys(rows[0]), ['index', 'source', 'status', 'imageId', 'caption', 'error']);
  assert.equal(rows[12].error.message, `${inputs[12]}: not an image`);

  const csv = await fetch(`${url}${job.links.results}?format=csv`);
  assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
  const lines = (await csv.text()).trim().split('\n');
  assert.equal(lines[0], 'index,source,status,image_id,caption,error_code,error_message');
  assert.equal(lines.length, 14);
});

test('bad requests: a bad id, an unknown job, a bad body, nothing to caption', { skip: SKIP }, async () => {
  const bad = await fetch(`${url}/v1/jobs/not-a-job`);
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, 'INVALID_ARGUMENT');
  const unknown = await fetch(`${url}/v1/jobs/00000000-0000-4000-8000-000000000000`);
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, 'NOT_FOUND');
  assert.equal((await fetch(`${url}/v1/jobs/00000000-0000-4000-8000-000000000000/events`)).status, 404, 'a 404 before the stream starts');

  for (const [body, field] of [
    [{}, 'inputs'],
    [{ inputs: [] }, 'inputs'],
    [{ inputs: [inputs[0]], options: { beam: 2, nbest: 3 } }, 'nbest'],
    [{ inputs: [inputs[0]], extra: 1 }, 'extra'],
  ] as const) {
    const res = await json('/v1/jobs', { method: 'POST', body });
    assert.equal(res.status, 400, JSON.stringify(body));
    const { error } = await res.json();
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.ok(error.message.includes(field), `${error.message} names ${field}`);
  }
  const empty = await json('/v1/jobs', { method: 'POST', body: { inputs: [join(dir, 'nothing-here', '*.jpg')] } });
  assert.equal(empty.status, 400);
  assert.match((await empty.json()).error.message, /no images found/);
});

test('DELETE cancels a job; its stream ends at once', { skip: SKIP }, async () => {
  await worker!.close(); // nobody takes the inputs
  worker = undefined;
  const job = await (await json('/v1/jobs', { method: 'POST', body: { inputs: inputs.slice(0, 4) } })).json();
  assert.equal(job.state, 'queued');
  const res = await fetch(`${url}/v1/jobs/${job.id}`, { method: 'DELETE' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).state, 'cancelled');
  const events = await readEvents(`/v1/jobs/${job.id}/events`);
  assert.deepEqual(
    events.map((e) => [e.event, e.data.state]),
    [['end', 'cancelled']],
  );
  assert.equal((await fetch(`${url}/v1/jobs/00000000-0000-4000-8000-000000000000`, { method: 'DELETE' })).status, 404);
  await startWorker();
});

test('with API keys: a key sees only its own jobs, and local paths need an admin key', { skip: SKIP }, async (t) => {
  const { key: alice } = await store.createKey('alice', false);
  const { key: admin } = await store.createKey('root', true);
  t.after(async () => {
    await store.revokeKey('alice');
    await store.revokeKey('root');
  });
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  assert.equal((await json('/v1/jobs', { method: 'POST', body: { inputs: inputs.slice(0, 2) } })).status, 401);
  const local = await json('/v1/jobs', { method: 'POST', body: { inputs: inputs.slice(0, 2) }, headers: as(alice) });
  assert.equal(local.status, 403);
  assert.equal((await local.json()).error.code, 'FORBIDDEN');
  const job = await (await json('/v1/jobs', { method: 'POST', body: { inputs: inputs.slice(0, 2) }, headers: as(admin) })).json();
  assert.equal((await fetch(`${url}/v1/jobs/${job.id}`, { headers: as(admin) })).status, 200);
  assert.equal((await fetch(`${url}/v1/jobs/${job.id}`, { headers: as(alice) })).status, 404, "another key's job is not there for alice");
  assert.equal((await fetch(`${url}/v1/jobs/${job.id}`, { method: 'DELETE', headers: as(alice) })).status, 404);
});

test('the job routes are in the OpenAPI document', { skip: SKIP }, async () => {
  const doc = await (await fetch(`${url}/openapi.json`)).json();
  for (const path of ['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/results', '/v1/jobs/{id}/events']) assert.ok(doc.paths[path], `${path} documented`);
  assert.ok(doc.paths['/v1/jobs/{id}/events'].get.responses['200'].content['text/event-stream']);
});

test('--remote-captioning: POST /v1/captions is captioned by a worker over the queue', { skip: SKIP }, async (t) => {
  const remote = await buildServer({
    loadEngine: () => Promise.reject(new Error('no local model in a remote-captioning replica')),
    library: store,
    logger: false,
    queue: { redisUrl: redis.url, remoteEngine: () => RemoteCaptionEngine.connect({ redisUrl: redis.url, card: fakeEngine.card, timeoutMs: 1500 }) },
  });
  const remoteUrl = await remote.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => remote.app.close());
  await remote.engineReady;
  const post = (bytes: Buffer) => fetch(`${remoteUrl}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(bytes) });

  const res = await post(await image('a remote cat'));
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.captions[0].text, 'a picture of a remote cat');
  const many = await Promise.all([1, 2, 3].map(async (i) => (await post(await image(`remote ${i}`))).json()));
  assert.deepEqual(
    many.map((b) => b.captions[0].text),
    ['a picture of remote 1', 'a picture of remote 2', 'a picture of remote 3'],
  );
  const notImage = await post(Buffer.from('hello'));
  assert.equal(notImage.status, 422);
  assert.deepEqual(await notImage.json(), { error: { code: 'NOT_AN_IMAGE', message: 'image: not an image' } });

  await worker!.close(); // no worker: the request times out
  worker = undefined;
  const timedOut = await post(await image('nobody home'));
  assert.equal(timedOut.status, 504);
  assert.equal((await timedOut.json()).error.code, 'TIMEOUT');
});
