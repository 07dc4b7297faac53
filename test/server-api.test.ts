import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { buildServer, type ServerOptions } from '../src/server/app.js';
import { EVERYONE } from '../src/library/index.js';
import type { CaptionEngine } from '../src/server/engine.js';
import { resolveGeneration, type GenerationOptions } from '../src/decoder/generation.js';
import { Captioner, type CaptionOutcome } from '../src/pipeline/captioner.js';
import { sentenceScores } from '../src/metrics/sentence.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const NEEDS_DATA = { skip: !HAVE_FLICKR8K && 'no ../shared' };
const GIRL = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');
const DOG = join(FLICKR8K_IMAGES, '1001773457_577c3a7d70.jpg');
const MAX_PIXELS = 1_000_000;

/** One real Captioner for the file (loading it is the slow part); servers get a wrapper that does not release it. */
let captioner: Promise<Captioner> | undefined;
const realEngine = async (): Promise<CaptionEngine> => {
  const c = await (captioner ??= Captioner.load({ batchSize: 8, limits: { maxPixels: MAX_PIXELS } }));
  return { card: c.card, caption: (inputs, options) => c.caption(inputs, options), release: async () => {} };
};
test.after(async () => (await captioner)?.release());

/** A fake engine: every image gets the caption "a fake caption", after `ms` per batch. */
function slowEngine(ms: number, batches: number[] = []): CaptionEngine {
  return {
    card: { name: 'fake' },
    async caption(inputs) {
      batches.push(inputs.length);
      await sleep(ms);
      return inputs.map(
        (_, i): CaptionOutcome => ({
          source: `<buffer ${i}>`,
          image: { format: 'jpeg', width: 1, height: 1 },
          captions: [{ text: 'a fake caption', tokens: ['a', 'fake', 'caption'], score: -1, logProb: -1 }],
          timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: ms },
        }),
      );
    },
    release: async () => {},
  };
}

async function startServer(t: { after: (fn: () => unknown) => void }, options: Partial<ServerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'px-server-'));
  const server = await buildServer({ loadEngine: realEngine, library: join(dir, 'library.sqlite'), logger: false, ...options });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => {
    await server.app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ...server, url };
}

function postImage(url: string, bytes: Buffer, { query = '', type = 'image/jpeg' } = {}) {
  return fetch(`${url}/v1/captions${query}`, { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(bytes) });
}

function postForm(url: string, fields: Record<string, string | Blob>, query = '') {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Blob) form.append(k, v, 'upload.bin');
    else form.append(k, v);
  }
  return fetch(`${url}/v1/captions${query}`, { method: 'POST', body: form });
}

async function expectError(res: Response, status: number, code: string, messagePattern?: RegExp) {
  const body = (await res.json()) as { error?: { code: string; message: string } };
  assert.equal(res.status, status, `status of ${JSON.stringify(body)}`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(body.error?.code, code, JSON.stringify(body));
  assert.equal(typeof body.error?.message, 'string');
  if (messagePattern) assert.match(body.error!.message, messagePattern);
  return body.error!;
}

test('POST /v1/captions: a real image, raw and multipart, gives the library result shape with id = sha256', NEEDS_DATA, async (t) => {
  const { url } = await startServer(t);
  const bytes = readFileSync(GIRL);
  const res = await postImage(url, bytes, { query: '?beam=3&nbest=2&attention=true' });
  assert.equal(res.status, 200);
  const body = await res.json();
  const { createHash } = await import('node:crypto');
  assert.equal(body.id, createHash('sha256').update(bytes).digest('hex'));
  assert.deepEqual(body.image, { format: 'jpeg', width: 224, height: 224 });
  assert.equal(body.model, 'flickr8k-sat');
  assert.equal(body.captions.length, 2);
  assert.deepEqual(body.options, { beam: 3, nbest: 2, maxLength: 20, attention: true, rerank: 'score' });
  const best = body.captions[0];
  assert.ok(best.score >= body.captions[1].score);
  assert.equal(best.text, best.tokens.join(' '));
  assert.ok(best.tokens.includes('girl'), `caption: ${best.text}`);
  assert.equal(best.attention.length, best.tokens.length);
  for (const grid of best.attention) {
    assert.equal(grid.length, 7);
    for (const row of grid) assert.equal(row.length, 7);
    const sum = grid.flat().reduce((a: number, b: number) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-3, `attention sums to ${sum}`);
  }
  assert.equal(body.altText, best.text[0].toUpperCase() + best.text.slice(1) + '.');
  for (const k of ['preprocessMs', 'encoderMs', 'decoderMs', 'totalMs', 'queueMs', 'requestMs', 'batchSize']) assert.equal(typeof body.timings[k], 'number', k);

  // The same caption as the library call; multipart without attention has none.
  const direct = await (await captioner!).caption(bytes, { beamSize: 3, nBest: 2 });
  assert.equal(best.text, direct.captions[0].text);
  const form = await postForm(url, { image: new Blob([bytes], { type: 'image/jpeg' }), beam: '3' });
  assert.equal(form.status, 200);
  const formBody = await form.json();
  assert.equal(formBody.captions[0].text, best.text);
  assert.equal(formBody.captions[0].attention, undefined);
  assert.equal(formBody.id, body.id);
});

test('POST /v1/captions: concurrent requests are micro-batched; different beam sizes get their own batches', NEEDS_DATA, async (t) => {
  const { url, metrics } = await startServer(t, { maxWaitMs: 200, maxBatch: 4 });
  const girl = readFileSync(GIRL);
  const dog = readFileSync(DOG);
  const requests = [
    postImage(url, girl, { query: '?beam=2' }),
    postImage(url, dog, { query: '?beam=2' }),
    postImage(url, girl, { query: '?beam=1' }),
    postImage(url, dog, { query: '?beam=2' }),
  ];
  const bodies = await Promise.all(requests.map(async (r) => (await r).json()));
  assert.deepEqual(bodies.map((b) => b.options.beam), [2, 2, 1, 2]);
  assert.deepEqual(bodies.map((b) => b.timings.batchSize), [3, 3, 1, 3]);
  assert.equal(bodies[0].captions[0].text, (await (await captioner!).caption(girl, { beamSize: 2 })).captions[0].text);
  assert.equal(bodies[1].captions[0].text, bodies[3].captions[0].text);
  const text = await metrics.registry.getSingleMetricAsString('pixel_info_encoder_batch_size');
  assert.match(text, /pixel_info_encoder_batch_size_count 2/);
  assert.match(text, /pixel_info_encoder_batch_size_sum 4/);
});

test('POST /v1/captions: bad inputs are 4xx JSON errors with the image layer\'s codes', NEEDS_DATA, async (t) => {
  const { url } = await startServer(t);
  const jpeg = readFileSync(GIRL);
  await expectError(await postForm(url, { image: new Blob(['just some text, not pixels'], { type: 'text/plain' }) }), 422, 'NOT_AN_IMAGE');
  await expectError(await postImage(url, Buffer.from('%PDF-1.4 not an image')), 422, 'NOT_AN_IMAGE');
  await expectError(await postImage(url, Buffer.alloc(0)), 422, 'FILE_EMPTY');
  await expectError(await fetch(`${url}/v1/captions`, { method: 'POST' }), 422, 'FILE_EMPTY');
  await expectError(await postImage(url, jpeg.subarray(0, 3000)), 422, 'IMAGE_TRUNCATED');
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
  await expectError(await postImage(url, svg, { type: 'image/svg+xml' }), 422, 'UNSUPPORTED_FORMAT');
  // Too many pixels: refused from the header (a 2000x1000 PNG is small on the wire).
  const big = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: '#808080' } }).png().toBuffer();
  await expectError(await postImage(url, big, { type: 'image/png' }), 422, 'IMAGE_TOO_LARGE', /2000x1000/);
  await expectError(await postImage(url, jpeg, { type: 'text/plain' }), 400, 'INVALID_ARGUMENT', /content-type text\/plain/);
  await expectError(await postImage(url, jpeg, { type: 'application/pdf' }), 415, 'INVALID_ARGUMENT');
  await expectError(await postForm(url, { photo: new Blob([jpeg], { type: 'image/jpeg' }) }), 400, 'INVALID_ARGUMENT', /"image"/);
});

test('POST /v1/captions: bad options are 400 INVALID_ARGUMENT naming the field', NEEDS_DATA, async (t) => {
  const { url } = await startServer(t);
  const jpeg = readFileSync(GIRL);
  for (const [query, field] of [
    ['?beam=0', 'beam'],
    ['?beam=11', 'beam'],
    ['?beam=abc', 'beam'],
    ['?beam=2.5', 'beam'],
    ['?beam=1&beam=2', 'beam'],
    ['?nbest=4&beam=2', 'nbest'],
    ['?nbest=5', 'nbest'], // more than the default beam (3)
    ['?maxLength=0', 'maxLength'],
    ['?attention=maybe', 'attention'],
    ['?beams=3', '"beams"'],
  ]) {
    const err = await expectError(await postImage(url, jpeg, { query }), 400, 'INVALID_ARGUMENT');
    assert.ok(err.message.includes(field), `${query}: "${err.message}" should name ${field}`);
  }
  const err = await expectError(await postForm(url, { image: new Blob([jpeg], { type: 'image/jpeg' }), beam: '42' }), 400, 'INVALID_ARGUMENT');
  assert.match(err.message, /form fields: beam: must be an integer from 1 to 10/);
  // The query and the form may each give one of beam and nbest: checked together.
  await expectError(await postForm(url, { image: new Blob([jpeg], { type: 'image/jpeg' }), nbest: '3' }, '?beam=2'), 400, 'INVALID_ARGUMENT', /nbest: must be at most beam \(2\), got 3/);
});

test('POST /v1/captions: a body over --body-limit is 413 PAYLOAD_TOO_LARGE, raw or multipart', NEEDS_DATA, async (t) => {
  const { url } = await startServer(t, { bodyLimit: 10_000 });
  const jpeg = readFileSync(GIRL); // 33 KB
  await expectError(await postImage(url, jpeg), 413, 'PAYLOAD_TOO_LARGE');
  await expectError(await postForm(url, { image: new Blob([jpeg], { type: 'image/jpeg' }) }), 413, 'PAYLOAD_TOO_LARGE');
  const small = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).jpeg().toBuffer();
  assert.equal((await postImage(url, small)).status, 200);
});

test('a request runs with the resolved GenerationConfig (request > model card > defaults); equal configs share a batch', async (t) => {
  const calls: Array<{ size: number; options: GenerationOptions | undefined }> = [];
  const fake = slowEngine(50);
  const engine: CaptionEngine = {
    ...fake,
    card: { name: 'fake', decoding: { beamSize: 2, lengthPenalty: 0.5 } },
    caption: (inputs, options) => {
      calls.push({ size: inputs.length, options });
      return fake.caption(inputs, options);
    },
  };
  const { url } = await startServer(t, { loadEngine: async () => engine, maxWaitMs: 200 });
  const image = Buffer.from('fake engines do not decode');
  // No options and beam=2 resolve to the same config (the card says beam 2); maxLength=5 does not.
  const bodies = await Promise.all(['', '?beam=2', '?maxLength=5', '?attention=true'].map(async (query) => (await postImage(url, image, { query })).json()));
  assert.deepEqual(bodies.map((b) => b.options), [
    { beam: 2, nbest: 1, maxLength: 20, attention: false, rerank: 'score' },
    { beam: 2, nbest: 1, maxLength: 20, attention: false, rerank: 'score' },
    { beam: 2, nbest: 1, maxLength: 5, attention: false, rerank: 'score' },
    { beam: 2, nbest: 1, maxLength: 20, attention: true, rerank: 'score' },
  ]);
  assert.deepEqual(bodies.map((b) => b.timings.batchSize), [3, 3, 1, 3]);
  assert.deepEqual(calls.map((c) => c.size), [3, 1]);
  // The engine gets the whole config: the card's length penalty, the library's defaults, attention always on.
  assert.deepEqual(calls[0].options, resolveGeneration({ beamSize: 2, returnAttention: true }, { lengthPenalty: 0.5 }));
  assert.equal(calls[0].options!.lengthPenalty, 0.5);
  assert.equal(calls[1].options!.maxLength, 5);
  // nbest above the card's beam is refused naming the field.
  await expectError(await postImage(url, image, { query: '?nbest=3' }), 400, 'INVALID_ARGUMENT', /nbest: must be at most beam \(2, the default\)/);
});

test('a full queue answers 503 OVERLOADED with Retry-After; a slow request answers 504 TIMEOUT', async (t) => {
  const batches: number[] = [];
  const { url } = await startServer(t, { loadEngine: async () => slowEngine(400, batches), maxBatch: 1, maxWaitMs: 0, maxQueue: 2 });
  const image = Buffer.from('fake engines do not decode');
  const responses = await Promise.all(Array.from({ length: 8 }, () => postImage(url, image)));
  const statuses = responses.map((r) => r.status).sort();
  const ok = statuses.filter((s) => s === 200).length;
  // One running + two queued; more only if requests trickled in after a batch finished (a very busy machine).
  assert.ok(ok >= 3 && ok <= 5, `statuses ${statuses}`);
  assert.equal(ok + statuses.filter((s) => s === 503).length, 8, `statuses ${statuses}`);
  assert.deepEqual(batches, new Array(ok).fill(1));
  for (const r of responses.filter((r) => r.status === 503)) {
    const retry = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${r.headers.get('retry-after')}`);
    await expectError(r, 503, 'OVERLOADED', /queued/);
  }
  for (const r of responses.filter((r) => r.status === 200)) assert.equal((await r.json()).captions[0].text, 'a fake caption');

  const slow = await startServer(t, { loadEngine: async () => slowEngine(400), timeoutMs: 100 });
  await expectError(await postImage(slow.url, image), 504, 'TIMEOUT', /100 ms/);
});

test('/healthz is 200 at once; /readyz is 503 until the model is loaded, then 200; load failures are reported', async (t) => {
  let finishLoading!: (e: CaptionEngine) => void;
  const loading = new Promise<CaptionEngine>((resolve) => (finishLoading = resolve));
  const { url } = await startServer(t, { loadEngine: () => loading });
  assert.deepEqual(await (await fetch(`${url}/healthz`)).json(), { status: 'ok' });
  const before = await fetch(`${url}/readyz`);
  assert.equal(before.status, 503);
  assert.equal((await before.json()).status, 'loading');
  // A caption request during loading waits for the model rather than failing.
  const early = postImage(url, Buffer.from('x'));
  await sleep(50);
  finishLoading(slowEngine(0));
  assert.equal((await early).status, 200);
  const after = await fetch(`${url}/readyz`);
  assert.equal(after.status, 200);
  assert.equal((await after.json()).model, 'fake');
  assert.deepEqual(await (await fetch(`${url}/v1/model`)).json(), { name: 'fake' });

  const { PixelInfoError } = await import('../src/errors.js');
  const failed = await startServer(t, { loadEngine: async () => Promise.reject(new PixelInfoError('MODEL_NOT_FOUND', 'no decoder model at /nowhere')) });
  const readyz = await fetch(`${failed.url}/readyz`);
  assert.equal(readyz.status, 503);
  assert.deepEqual(await readyz.json(), { status: 'failed', error: { code: 'MODEL_NOT_FOUND', message: 'no decoder model at /nowhere' } });
  await expectError(await postImage(failed.url, Buffer.from('x')), 503, 'MODEL_NOT_FOUND');
});

test('GET /metrics has request counts by route/status, latency, batch-size and queue-depth metrics', async (t) => {
  const { url } = await startServer(t, { loadEngine: async () => slowEngine(0) });
  await postImage(url, Buffer.from('x'));
  await fetch(`${url}/nowhere`);
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  for (const name of [
    'pixel_info_http_requests_total',
    'pixel_info_http_request_duration_seconds_bucket',
    'pixel_info_encoder_batch_size_bucket',
    'pixel_info_batch_duration_seconds',
    'pixel_info_queue_depth',
    'pixel_info_queue_wait_seconds',
    'pixel_info_library_images',
    'pixel_info_process_resident_memory_bytes',
  ]) {
    assert.ok(text.includes(name), `missing ${name}`);
  }
  assert.match(text, /pixel_info_http_requests_total\{method="POST",route="\/v1\/captions",status="200"\} 1/);
  assert.match(text, /pixel_info_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
});

test('GET /openapi.json is generated from the route schemas and covers every route the server has', async (t) => {
  const { app, url } = await startServer(t, { loadEngine: async () => slowEngine(0) });
  const doc = await (await fetch(`${url}/openapi.json`)).json();
  assert.match(doc.openapi, /^3\./);
  assert.ok(doc.info.title && doc.info.version);
  // Every documented operation exists...
  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(methods)) {
      const route = path.replace(/\{(\w+)\}/g, ':$1');
      assert.ok(app.hasRoute({ method: method.toUpperCase() as 'GET', url: route }), `documented ${method} ${path} is not a route`);
    }
  }
  // ... and every route is documented.
  const documented = new Set(Object.keys(doc.paths).map((p) => p.replace(/\{(\w+)\}/g, ':$1')));
  for (const path of ['/v1/captions', '/v1/score', '/v1/model', '/v1/library', '/v1/library/:id', '/v1/library/:id/image', '/v1/library/:id/thumbnail', '/healthz', '/readyz', '/metrics', '/openapi.json', '/']) {
    assert.ok(documented.has(path), `${path} is not documented`);
  }
  // Every $ref resolves.
  const refs = JSON.stringify(doc).match(/#\/components\/schemas\/\w+/g) ?? [];
  for (const ref of refs) assert.ok(doc.components.schemas[ref.split('/').pop()!], ref);

  // The zod schemas, converted: query options with their bounds and descriptions, the JSON body, the responses.
  const captions = doc.paths['/v1/captions'].post;
  const beam = captions.parameters.find((p: { name: string }) => p.name === 'beam');
  assert.deepEqual({ in: beam.in, schema: beam.schema }, { in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10 } });
  assert.match(beam.description, /greedy/);
  assert.deepEqual(captions.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/CaptionResponse' });
  assert.deepEqual(captions.responses['422'].content['application/json'].schema, { $ref: '#/components/schemas/Error' });
  assert.ok(captions.responses['503'].headers['Retry-After']);
  assert.deepEqual(doc.components.schemas.Error.required, ['error']);
  assert.deepEqual(doc.components.schemas.CaptionResponse.properties.captions.items, { $ref: '#/components/schemas/Caption' });
  // What zod cannot describe, declared on the route: the multipart form (image + the same options) and raw bytes...
  const form = captions.requestBody.content['multipart/form-data'].schema;
  assert.deepEqual(form.required, ['image']);
  assert.deepEqual(Object.keys(form.properties), ['image', 'beam', 'nbest', 'rerank', 'attention', 'maxLength', 'store', 'keepMetadata']);
  assert.equal(captions.requestBody.content['image/*'].schema.format, 'binary');
  // ... and binary or text responses.
  assert.equal(doc.paths['/v1/library/{id}/thumbnail'].get.responses['200'].content['image/jpeg'].schema.format, 'binary');
  assert.ok(doc.paths['/metrics'].get.responses['200'].content['text/plain']);
  const score = doc.paths['/v1/score'].post.requestBody.content['application/json'].schema;
  assert.deepEqual(score.required, ['references', 'candidate']);
  assert.equal(doc.paths['/v1/library/{id}'].get.parameters[0].schema.pattern, '^[0-9a-f]{64}$');
});

test('library: a captioned image is stored once, found by a word of its caption, with its bytes and a JPEG thumbnail', NEEDS_DATA, async (t) => {
  const { url, library } = await startServer(t);
  const bytes = readFileSync(DOG);
  const first = await (await postImage(url, bytes)).json();
  await postForm(url, { image: new Blob([bytes], { type: 'image/jpeg' }), beam: '1' }); // same image again
  assert.equal(await library.count(EVERYONE), 1);
  const word = first.captions[0].tokens.find((w: string) => w.length > 3)!;
  const found = await (await fetch(`${url}/v1/library?q=${encodeURIComponent(word.toUpperCase())}`)).json();
  assert.equal(found.count, 1, `search "${word}" in "${first.captions[0].text}"`);
  assert.equal(found.total, 1);
  assert.equal(found.items[0].id, first.id);
  assert.equal(found.items[0].thumbnailUrl, `/v1/library/${first.id}/thumbnail`);
  const none = await (await fetch(`${url}/v1/library?q=zebra+submarine`)).json();
  assert.equal(none.count, 0);
  const recent = await (await fetch(`${url}/v1/library`)).json();
  assert.equal(recent.items[0].id, first.id);
  // Punctuation and FTS5 syntax in a query are only words, never a syntax error.
  assert.equal((await fetch(`${url}/v1/library?q=${encodeURIComponent('"dog" AND (NEAR* -')}`)).status, 200);

  const image = await fetch(`${url}${found.items[0].imageUrl}`);
  assert.equal(image.headers.get('content-type'), 'image/jpeg');
  assert.deepEqual(Buffer.from(await image.arrayBuffer()), bytes);
  const thumb = await fetch(`${url}${found.items[0].thumbnailUrl}`);
  assert.equal(thumb.headers.get('content-type'), 'image/jpeg');
  const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
  assert.equal(meta.format, 'jpeg');
  assert.ok(meta.width! <= 256 && meta.height! <= 256);
  assert.equal((await (await fetch(`${url}/v1/library/${first.id}`)).json()).caption, found.items[0].caption);

  await expectError(await fetch(`${url}/v1/library/${'0'.repeat(64)}/image`), 404, 'NOT_FOUND');
  await expectError(await fetch(`${url}/v1/library/not-a-hash/thumbnail`), 400, 'INVALID_ARGUMENT', /id/);
  await expectError(await fetch(`${url}/v1/library?limit=1000`), 400, 'INVALID_ARGUMENT', /limit/);
});

test('POST /v1/score gives sentenceScores of the candidate; bad bodies are 400 naming the field', async (t) => {
  const { url } = await startServer(t, { loadEngine: async () => slowEngine(0) });
  const references = ['A little girl climbing the stairs to her playhouse.', 'A girl in a pink dress going into a wooden cabin.', ''];
  const candidate = 'a little girl in a pink dress is climbing the stairs';
  const res = await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ references, candidate }) });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(body, { scores: sentenceScores(references.slice(0, 2), candidate), references: 2 });
  assert.ok(body.scores['BLEU-1'] > 0.5);
  const post = (b: unknown) => fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  await expectError(await post({ candidate }), 400, 'INVALID_ARGUMENT', /references/);
  await expectError(await post({ references: ['  '], candidate }), 400, 'INVALID_ARGUMENT', /references/);
  await expectError(await post({ references: ['a dog'], candidate: 3 }), 400, 'INVALID_ARGUMENT', /candidate/);
  await expectError(await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"references": [' }), 400, 'INVALID_ARGUMENT');
});

test('the web app is served at / with its modules; unknown routes are 404 JSON', async (t) => {
  const { url } = await startServer(t, { loadEngine: async () => slowEngine(0) });
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const html = await page.text();
  assert.match(html, /role="tablist"/);
  for (const asset of ['/app.js', '/styles.css']) {
    const res = await fetch(`${url}${asset}`);
    assert.equal(res.status, 200, asset);
  }
  await expectError(await fetch(`${url}/v2/nothing`), 404, 'NOT_FOUND', /GET \/v2\/nothing/);
  await expectError(await fetch(`${url}/v1/captions`), 404, 'NOT_FOUND');
});
