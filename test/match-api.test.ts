/**
 * Image–text matching over HTTP, with a fake engine whose matcher sees colours: POST /v1/match (multipart, JSON,
 * a library image by id; its errors, 503 without a matcher, the captioning rate limit), `confidence` in the
 * captions response and in library entries, and library search by meaning (mode=meaning|words) over SQLite and
 * PostgreSQL. The real model, in a browser, is test/web-match.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { buildServer, type ServerOptions } from '../src/server/app.js';
import type { CaptionEngine } from '../src/server/engine.js';
import type { CaptionOutcome } from '../src/pipeline/captioner.js';
import type { MatchScore } from '../src/match/types.js';
import { EVERYONE, openLibrary } from '../src/library/index.js';
import { LIMITS } from '../src/server/limits.js';
import { processItem } from '../src/worker/items.js';
import { POSTGRES_SKIP, postgresFor } from './helpers/postgres.js';
import { fakeZebraEngine } from './helpers/fake-engine.js';

const COLOURS = { red: [1, 0, 0], green: [0, 1, 0], blue: [0, 0, 1] } as const;
type Colour = keyof typeof COLOURS;
const CALIBRATION = { a: 10, b: -5 };
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** A solid image of one colour (a PNG; `seed` makes distinct bytes of the same colour). */
async function solid(colour: Colour, seed = 0): Promise<Buffer> {
  const [r, g, b] = COLOURS[colour].map((c) => c * 200 + seed);
  return sharp({ create: { width: 64, height: 48, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
}

/** The fake matcher's image embedding: the image's mean colour, unit length. */
async function imageEmbedding(bytes: Buffer): Promise<Float32Array> {
  const { channels } = await sharp(bytes).stats(); // rejects for a non-image
  return unit(channels.slice(0, 3).map((c) => c.mean + 1));
}

/** The fake matcher's sentence embedding: the colour words it holds (none: a grey direction). */
function textEmbedding(text: string): Float32Array {
  const v = [0.05, 0.05, 0.05];
  for (const word of text.toLowerCase().split(/\W+/)) {
    const c = COLOURS[word as Colour];
    if (c) c.forEach((x, i) => (v[i] += x));
  }
  return unit(v);
}

function unit(v: number[]): Float32Array {
  const n = Math.hypot(...v);
  return Float32Array.from(v, (x) => x / n);
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);

function scoreOf(text: string, image: Float32Array): MatchScore {
  const cosine = dot(textEmbedding(text), image);
  const logit = CALIBRATION.a * cosine + CALIBRATION.b;
  return { text, cosine, logit, score: sigmoid(logit) };
}

/** Captions each image "a <colour> square" (its strongest channel), with confidence and, when asked, its embedding. */
function colourEngine(): CaptionEngine & { matchCalls: number } {
  const engine = {
    card: { name: 'fake' },
    modelId: 'fake@0123456789ab',
    matching: { id: 'colours@0123456789ab', name: 'colours', dim: 3, calibration: CALIBRATION },
    matchCalls: 0,
    async caption(inputs: ReadonlyArray<string | Buffer>, options: { returnEmbedding?: boolean } = {}) {
      return Promise.all(
        inputs.map(async (input, i): Promise<CaptionOutcome> => {
          const bytes = input as Buffer;
          const embedding = await imageEmbedding(bytes).catch(() => undefined);
          if (!embedding) return { source: `<buffer ${i}>`, error: { code: 'NOT_AN_IMAGE', message: `<buffer ${i}>: not an image` } };
          const colour = (Object.keys(COLOURS) as Colour[])[embedding.indexOf(Math.max(...embedding))];
          const texts = [`a ${colour} square`, 'a square'];
          return {
            source: `<buffer ${i}>`,
            image: { format: 'png', width: 64, height: 48 },
            captions: texts.map((text, k) => ({ text, tokens: text.split(' '), score: -1 - k, logProb: -1 - k, confidence: scoreOf(text, embedding).score })),
            timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
            ...(options.returnEmbedding ? { embedding: Array.from(embedding) } : {}),
          };
        }),
      );
    },
    async match(image: Buffer, texts: readonly string[]) {
      engine.matchCalls++;
      let embedding: Float32Array;
      try {
        embedding = await imageEmbedding(image);
      } catch {
        const { PixelInfoError } = await import('../src/errors.js');
        throw new PixelInfoError('NOT_AN_IMAGE', '<buffer>: not an image (unknown format)');
      }
      return texts.map((t) => scoreOf(t, embedding));
    },
    async embedTexts(texts: readonly string[]) {
      return texts.map((t) => Array.from(textEmbedding(t)));
    },
    release: async () => {},
  };
  return engine;
}

async function start(t: { after(fn: () => unknown): void }, options: Partial<ServerOptions> = {}) {
  const server = await buildServer({ loadEngine: async () => colourEngine(), library: ':memory:', logger: false, ...options });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => server.app.close());
  await server.engineReady;
  return { ...server, url };
}

function form(image: Buffer | undefined, fields: Array<[string, string]>): FormData {
  const body = new FormData();
  if (image) body.append('image', new Blob([new Uint8Array(image)], { type: 'image/png' }), 'x.png');
  for (const [name, value] of fields) body.append(name, value);
  return body;
}

const postJson = (url: string, body: unknown) =>
  fetch(`${url}/v1/match`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function expectError(response: Response, status: number, code: string, pattern?: RegExp) {
  const body = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code);
  if (pattern) assert.match(body.error.message, pattern);
}

describe('POST /v1/match', () => {
  test('multipart (text fields or one texts field) and JSON (base64 or a library id): scores in the order given', async (t) => {
    const { url } = await start(t);
    const red = await solid('red');
    const texts = ['a red car', 'a blue sky', 'something'];
    const expected = texts.map((text) => scoreOf(text, unit([201, 1, 1])));

    const check = async (response: Response) => {
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(body.matcher, 'colours');
      assert.deepEqual(
        body.results.map((r: MatchScore) => r.text),
        texts,
      );
      body.results.forEach((r: MatchScore, i: number) => {
        for (const key of ['score', 'logit', 'cosine'] as const) assert.ok(Math.abs(r[key] - expected[i][key]) < 1e-5, `${key} of ${r.text}`);
        assert.ok(Math.abs(r.score - sigmoid(r.logit)) < 1e-9);
      });
      assert.ok(body.results[0].score > 0.9 && body.results[1].score < 0.1, 'red matches, blue does not');
      assert.equal(response.headers.get('cache-control'), 'no-store');
    };
    await check(await fetch(`${url}/v1/match`, { method: 'POST', body: form(red, texts.map((x) => ['text', x])) }));
    await check(await fetch(`${url}/v1/match`, { method: 'POST', body: form(red, [['texts', JSON.stringify(texts)]]) }));
    await check(await postJson(url, { image: red.toString('base64'), texts }));

    // A captioned image, by its library id (the caller's library only).
    const captioned = await (await fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(red) })).json();
    await check(await postJson(url, { imageId: captioned.id, texts }));
    await expectError(await postJson(url, { imageId: 'a'.repeat(64), texts }), 404, 'NOT_FOUND', /no image/);
  });

  test('bad requests: 400 naming the field, 422 for a non-image, 413 over the size limit', async (t) => {
    const { url } = await start(t, { bodyLimit: 64 * 1024 });
    const red = await solid('red');
    await expectError(await fetch(`${url}/v1/match`, { method: 'POST', body: form(red, []) }), 400, 'INVALID_ARGUMENT', /at least one sentence/);
    await expectError(await fetch(`${url}/v1/match`, { method: 'POST', body: form(undefined, [['text', 'a dog']]) }), 400, 'INVALID_ARGUMENT', /no file field named "image"/);
    await expectError(await fetch(`${url}/v1/match`, { method: 'POST', body: form(red, [['texts', '[1, 2']]) }), 400, 'INVALID_ARGUMENT', /JSON array/);
    await expectError(
      await fetch(`${url}/v1/match`, { method: 'POST', body: form(red, [['text', 'a'], ['texts', '["b"]']]) }),
      400,
      'INVALID_ARGUMENT',
      /not both/,
    );
    await expectError(await fetch(`${url}/v1/match`, { method: 'POST', body: form(red, [['beam', '3']]) }), 400, 'INVALID_ARGUMENT', /unknown form field "beam"/);
    const tooMany = Array.from({ length: LIMITS.matchTexts + 1 }, (_, i) => `sentence ${i}`);
    await expectError(await postJson(url, { image: red.toString('base64'), texts: tooMany }), 400, 'INVALID_ARGUMENT', new RegExp(`at most ${LIMITS.matchTexts}`));
    await expectError(await postJson(url, { image: red.toString('base64'), texts: ['x'.repeat(LIMITS.sentenceChars + 1)] }), 400, 'INVALID_ARGUMENT', /at most 2000/);
    await expectError(await postJson(url, { texts: ['a dog'] }), 400, 'INVALID_ARGUMENT', /exactly one of image and imageId/);
    await expectError(await postJson(url, { image: 'not base64!', texts: ['a dog'] }), 400, 'INVALID_ARGUMENT', /base64/);
    await expectError(await postJson(url, { image: red.toString('base64'), texts: ['a'], beam: 3 }), 400, 'INVALID_ARGUMENT', /unknown field "beam"/);
    await expectError(await postJson(url, { image: Buffer.from('hello').toString('base64'), texts: ['a dog'] }), 422, 'NOT_AN_IMAGE', /^image: /);
    await expectError(
      await fetch(`${url}/v1/match`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(red) }),
      415,
      'INVALID_ARGUMENT',
    );
    const big = Buffer.alloc(100 * 1024, 1);
    await expectError(await fetch(`${url}/v1/match`, { method: 'POST', body: form(big, [['text', 'a']]) }), 413, 'PAYLOAD_TOO_LARGE');
  });

  test('with API keys: a key matches only images of its own library by id', async (t) => {
    const store = await openLibrary(':memory:');
    t.after(() => store.close());
    const a = await store.createKey('a', false);
    const b = await store.createKey('b', false);
    const { url } = await start(t, { library: store, keysCacheMs: 0 });
    const auth = (key: string) => ({ authorization: `Bearer ${key}` });
    const red = await solid('red');
    const captioned = await (
      await fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png', ...auth(a.key) }, body: new Uint8Array(red) })
    ).json();
    const byId = (key: string) =>
      fetch(`${url}/v1/match`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(key) }, body: JSON.stringify({ imageId: captioned.id, texts: ['red'] }) });
    assert.equal((await byId(a.key)).status, 200);
    await expectError(await byId(b.key), 404, 'NOT_FOUND');
    await expectError(await postJson(url, { imageId: captioned.id, texts: ['red'] }), 401, 'UNAUTHENTICATED');
  });

  test('503 MODEL_NOT_FOUND on a server without a matcher, before the upload is read', async (t) => {
    const { url } = await start(t, { loadEngine: async () => fakeZebraEngine({ width: 64, height: 48 }) });
    const response = await fetch(`${url}/v1/match`, { method: 'POST', body: form(await solid('red'), [['text', 'a red square']]) });
    assert.equal(response.headers.get('connection'), 'close');
    await expectError(response, 503, 'MODEL_NOT_FOUND', /matcher/);
  });

  test('counts against the captioning rate limit', async (t) => {
    const { url } = await start(t, { rateLimit: { max: 1, readMax: 100 } });
    const red = (await solid('red')).toString('base64');
    assert.equal((await postJson(url, { image: red, texts: ['a'] })).status, 200);
    await expectError(await postJson(url, { image: red, texts: ['a'] }), 429, 'RATE_LIMITED', /captioning requests/);
  });

  test('is documented in the OpenAPI document', async (t) => {
    const { url } = await start(t);
    const doc = await (await fetch(`${url}/openapi.json`)).json();
    const match = doc.paths['/v1/match'].post;
    assert.deepEqual(match.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/MatchResponse' });
    assert.deepEqual(Object.keys(doc.components.schemas.MatchResponse.properties.results.items.properties), ['text', 'score', 'logit', 'cosine']);
    assert.ok(match.requestBody.content['multipart/form-data'].schema.properties.image);
    assert.deepEqual(match.requestBody.content['application/json'].schema.required, ['texts']);
    assert.ok(match.responses['503']);
    const mode = doc.paths['/v1/library'].get.parameters.find((p: { name: string }) => p.name === 'mode');
    assert.deepEqual(mode.schema.enum, ['meaning', 'words']);
    assert.ok(doc.components.schemas.Caption.properties.confidence);
    assert.ok(doc.components.schemas.LibraryEntry.properties.confidence);
  });
});

async function libraryByMeaning(t: { after(fn: () => unknown): void }, library: string) {
  const { url, library: store } = await start(t, { library });
  const post = async (bytes: Buffer) =>
    (await fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(bytes) })).json();
  const red = await post(await solid('red'));
  const green = await post(await solid('green'));
  const blue = await post(await solid('blue'));
  await post(await solid('blue', 10));

  // Confidence: on every caption of the response, and with the stored entry.
  assert.equal(red.matcher, 'colours');
  assert.deepEqual(
    red.captions.map((c: { text: string }) => c.text),
    ['a red square', 'a square'],
  );
  assert.ok(red.captions[0].confidence > 0.9, String(red.captions[0].confidence));
  assert.ok(red.captions[1].confidence < red.captions[0].confidence);
  const entry = await (await fetch(`${url}/v1/library/${red.id}`)).json();
  assert.ok(Math.abs(entry.confidence - red.captions[0].confidence) < 1e-9);
  assert.ok(Math.abs(entry.captions[1].confidence - red.captions[1].confidence) < 1e-9);
  assert.equal((await store.get(red.id, EVERYONE))?.confidence, entry.confidence);

  // By meaning (the default with a matcher): "one" is no word of any caption, the embedding still finds red first.
  const search = async (query: string) => (await fetch(`${url}/v1/library?${query}`)).json();
  const redOne = await search('q=the+red+one');
  assert.equal(redOne.mode, 'meaning');
  assert.equal(redOne.count, 4);
  assert.equal(redOne.items[0].id, red.id);
  assert.ok(redOne.items[0].match.score > 0.9 && redOne.items[0].match.score <= 1);
  assert.ok(redOne.items[0].match.cosine > redOne.items[1].match.cosine);
  assert.ok(Math.abs(redOne.items[0].match.score - sigmoid(redOne.items[0].match.logit)) < 1e-9);
  const sky = await search('q=sky+blue&limit=2&mode=meaning');
  assert.deepEqual(new Set(sky.items.map((i: { caption: string }) => i.caption)), new Set(['a blue square']));
  assert.notEqual(sky.items[0].id, green.id);
  // By words: full-text, no scores.
  const words = await search('q=red&mode=words');
  assert.equal(words.mode, 'words');
  assert.deepEqual(
    words.items.map((i: { id: string }) => i.id),
    [red.id],
  );
  assert.equal(words.items[0].match, undefined);
  assert.equal((await search('q=the+red+one&mode=words')).count, 0, 'by words, every word must occur');
  // An empty query lists the newest, in either mode.
  assert.equal((await search('q=')).count, 4);
  await expectError(await fetch(`${url}/v1/library?q=x&mode=vibes`), 400, 'INVALID_ARGUMENT', /mode: must be meaning or words/);
  void blue;
}

describe('library search by meaning', () => {
  test('over SQLite', async (t) => {
    await libraryByMeaning(t, ':memory:');
  });

  test('over PostgreSQL (pgvector)', { skip: POSTGRES_SKIP }, async (t) => {
    const pg = await postgresFor(t);
    if (!pg) return;
    await libraryByMeaning(t, await pg.createSchema());
  });

  test('without a matcher: by words, and mode=meaning is 503; images stored without an embedding are found by words', async (t) => {
    const store = await openLibrary(':memory:');
    t.after(() => store.close());
    const plain = await start(t, { library: store, loadEngine: async () => fakeZebraEngine({ width: 64, height: 48 }) });
    await fetch(`${plain.url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(await solid('green')) });
    const found = await (await fetch(`${plain.url}/v1/library?q=zebra`)).json();
    assert.deepEqual([found.mode, found.count, found.items[0].confidence], ['words', 1, null]);
    await expectError(await fetch(`${plain.url}/v1/library?q=zebra&mode=meaning`), 503, 'MODEL_NOT_FOUND', /matcher/);

    // The same library under a server with a matcher: the zebra (no embedding) is still found by its words.
    const matched = await start(t, { library: store });
    await fetch(`${matched.url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(await solid('red')) });
    const both = await (await fetch(`${matched.url}/v1/library?q=striped+zebra`)).json();
    assert.equal(both.mode, 'meaning');
    assert.deepEqual(
      both.items.map((i: { caption: string; match?: unknown }) => [i.caption, i.match !== undefined]),
      [
        ['a red square', true],
        ['a striped zebra grazing', false],
      ],
    );
  });
});

test('POST /v1/captions?rerank=match orders the n-best captions by confidence; 503 without a matcher', async (t) => {
  // The fake decoder ranks the vaguer caption first here; the matcher prefers the one naming the colour.
  const server = await buildServer({
    loadEngine: async () => {
      const engine = colourEngine();
      const caption = engine.caption.bind(engine);
      engine.caption = async (...args: Parameters<typeof caption>) =>
        (await caption(...args)).map((o) => ('captions' in o ? { ...o, captions: [...o.captions].reverse() } : o));
      return engine;
    },
    library: ':memory:',
    logger: false,
  });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => server.app.close());
  const post = async (query: string) =>
    fetch(`${url}/v1/captions${query}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(await solid('green')) });
  const plain = await (await post('?store=false')).json();
  assert.deepEqual(plain.captions.map((c: { text: string }) => c.text), ['a square', 'a green square']);
  const reranked = await (await post('?store=false&rerank=match')).json();
  assert.deepEqual(reranked.captions.map((c: { text: string }) => c.text), ['a green square', 'a square']);
  assert.equal(reranked.options.rerank, 'match');
  assert.equal(reranked.altText, 'A green square.');
  await expectError(await post('?rerank=best'), 400, 'INVALID_ARGUMENT', /rerank/);

  const bare = await buildServer({ loadEngine: async () => ({ ...colourEngine(), matching: undefined }), library: ':memory:', logger: false });
  const bareUrl = await bare.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => bare.app.close());
  const response = await fetch(`${bareUrl}/v1/captions?rerank=match`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(await solid('red')) });
  await expectError(response, 503, 'MODEL_NOT_FOUND', /matcher/);
});

test('batch jobs: a worker with a matcher stores each caption\'s confidence and the image embedding', async (t) => {
  const store = await openLibrary(':memory:');
  t.after(() => store.close());
  const engine = colourEngine();
  await store.createJob({ id: 'job-1', owner: null, sources: ['/blue.png'], options: {} });
  const blue = await solid('blue');
  const outcome = await processItem(
    { jobId: 'job-1', index: 0, source: '/blue.png', owner: null, options: {} },
    {
      store,
      read: async () => blue,
      caption: async (bytes, generation) => {
        const [result] = await engine.caption([bytes], { ...generation, returnEmbedding: true });
        if ('error' in result) throw new Error(result.error.message);
        return result;
      },
      modelId: 'fake@1',
      matcherId: engine.matching!.id,
      card: { name: 'fake' },
    },
  );
  assert.equal(outcome, 'captioned');
  const [found] = await store.search({ q: 'sky', embedding: { model: engine.matching!.id, vector: textEmbedding('blue sky') } }, EVERYONE);
  assert.equal(found?.caption, 'a blue square');
  assert.ok(found.cosine! > 0.9, String(found.cosine));
  assert.ok(found.confidence! > 0.5);
  assert.equal(typeof found.captions[1].confidence, 'number');
});
