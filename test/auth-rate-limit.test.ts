/**
 * Per-key rate limits over HTTP: past its captioning budget a key gets 429 RATE_LIMITED with Retry-After while
 * other keys, other /v1 requests and the public routes go on; without keys the client address is counted; 0
 * turns the limit off; and with Redis two replicas count against one budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { Redis } from 'ioredis';
import { buildServer, type ServerOptions } from '../src/server/app.js';
import type { CaptionEngine } from '../src/server/engine.js';
import type { CaptionOutcome } from '../src/pipeline/captioner.js';
import { openLibrary, type LibraryStore } from '../src/library/index.js';
import { haveRedisServer, startRedis } from './helpers/redis.js';

const engine: CaptionEngine = {
  card: { name: 'fake' },
  async caption(inputs) {
    return inputs.map(
      (): CaptionOutcome => ({
        source: '<buffer>',
        image: { format: 'png', width: 8, height: 8 },
        captions: [{ text: 'a dog', tokens: ['a', 'dog'], score: -1, logProb: -1 }],
        timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
      }),
    );
  },
  release: async () => {},
};

const image = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } }).png().toBuffer();

async function startServer(t: { after(fn: () => unknown): void }, store: LibraryStore, options: Partial<ServerOptions>): Promise<string> {
  const server = await buildServer({ loadEngine: async () => engine, library: store, logger: false, keysCacheMs: 0, ...options });
  t.after(() => server.app.close());
  return server.app.listen({ port: 0, host: '127.0.0.1' });
}

async function openStore(t: { after(fn: () => unknown): void }): Promise<LibraryStore> {
  const store = await openLibrary(':memory:');
  t.after(() => store.close());
  return store;
}

function caption(url: string, key?: string): Promise<Response> {
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  return fetch(`${url}/v1/captions?store=false`, { method: 'POST', headers: { 'content-type': 'image/png', ...auth }, body: new Uint8Array(image) });
}

test('a key over its captioning budget gets 429 with Retry-After; other keys and routes go on', async (t) => {
  const store = await openStore(t);
  const a = (await store.createKey('a', false)).key;
  const b = (await store.createKey('b', false)).key;
  const url = await startServer(t, store, { rateLimit: { max: 2, readMax: 3, windowMs: 60_000 } });

  const first = await caption(url, a);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-ratelimit-limit'), '2');
  assert.equal(first.headers.get('x-ratelimit-remaining'), '1');
  assert.equal((await caption(url, a)).status, 200);

  const limited = await caption(url, a);
  assert.equal(limited.status, 429);
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After ${limited.headers.get('retry-after')}`);
  const { error } = (await limited.json()) as { error: { code: string; message: string } };
  assert.equal(error.code, 'RATE_LIMITED');
  assert.match(error.message, /at most 2 per minute; retry in/);

  assert.equal((await caption(url, b)).status, 200, 'another key has its own budget');
  const auth = { authorization: `Bearer ${a}` };
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${url}/v1/library`, { headers: auth })).status, 200, 'reads have their own budget');
  assert.equal((await fetch(`${url}/v1/library`, { headers: auth })).status, 429, 'the read budget is limited too');
  for (let i = 0; i < 5; i++) assert.equal((await fetch(`${url}/healthz`)).status, 200, 'public routes are not limited');
  assert.equal((await fetch(`${url}/healthz`)).headers.get('x-ratelimit-limit'), null);
  assert.equal((await fetch(`${url}/v1/library`)).status, 401, 'no key: refused before any count');
});

test('without keys the client address is counted; 0 (or no rateLimit option) turns the limit off', async (t) => {
  const limitedUrl = await startServer(t, await openStore(t), { rateLimit: { max: 1, windowMs: 1000 } });
  assert.equal((await caption(limitedUrl)).status, 200);
  const limited = await caption(limitedUrl);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('retry-after'), '1');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await caption(limitedUrl)).status, 200, 'a new window');

  for (const rateLimit of [{ max: 0 }, undefined]) {
    const openUrl = await startServer(t, await openStore(t), { rateLimit });
    for (let i = 0; i < 5; i++) {
      const response = await caption(openUrl);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-ratelimit-limit'), null, `no limit with rateLimit ${JSON.stringify(rateLimit)}`);
    }
  }
});

test('with Redis, replicas share one budget per key', async (t) => {
  if (!(await haveRedisServer())) return t.skip('redis-server is not installed');
  const redisServer = await startRedis();
  t.after(() => redisServer.destroy());
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  t.after(() => redis.quit());
  const store = await openStore(t);
  const key = (await store.createKey('shared', false)).key;
  const options = { rateLimit: { max: 3, windowMs: 60_000 }, rateLimitRedis: redis };
  const replicas = [await startServer(t, store, options), await startServer(t, store, options)];

  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await caption(replicas[i % 2], key)).status);
  assert.deepEqual(statuses, [200, 200, 200, 429], 'the fourth request, on either replica, is over the shared budget');
  assert.ok((await redis.keys('pixel-info:rate-limit:*')).length > 0, 'counted in Redis');
});

test("in distributed mode the counters live in the queue's Redis, on the server's own connection", async (t) => {
  if (!(await haveRedisServer())) return t.skip('redis-server is not installed');
  const redisServer = await startRedis();
  t.after(() => redisServer.destroy());
  const store = await openStore(t);
  const url = await startServer(t, store, { rateLimit: { max: 1, windowMs: 60_000 }, queue: { redisUrl: redisServer.url } });
  assert.equal((await caption(url)).status, 200);
  assert.equal((await caption(url)).status, 429);
  const redis = new Redis(redisServer.url);
  t.after(() => redis.quit());
  assert.ok((await redis.keys('pixel-info:rate-limit:*')).length > 0);
});
