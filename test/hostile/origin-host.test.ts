/**
 * Finding 1, cross-site writes and DNS rebinding: a page on another site posted into the library of a local
 * server (Origin: http://evil.example → 200, stored), and any Host was served (Host: rebind.attacker.example →
 * 200 on /v1/library). Now: 403 ORIGIN_NOT_ALLOWED and 421 HOST_NOT_ALLOWED; the page's own origin, clients
 * that send no Origin, listed hosts and origins, and API-key requests are served as before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../../src/server/app.js';
import { openLibrary } from '../../src/library/index.js';
import type { CaptionEngine } from '../../src/server/engine.js';
import { multipartBody, photo, send, serve } from './helpers.js';

const TIMEOUT = { timeout: 120_000 };

test('a cross-site POST or DELETE is 403 ORIGIN_NOT_ALLOWED and stores nothing; a rebinding Host is 421 HOST_NOT_ALLOWED', TIMEOUT, async (t) => {
  const server = await serve(t);
  const { port } = server;
  const image = await photo(320, 240, 1);
  const form = multipartBody([{ name: 'image', file: image }]);
  const post = (headers: Record<string, string>) => send(port, { method: 'POST', path: '/v1/captions', headers: { 'content-type': form.type, ...headers }, body: form.body });

  const evil = await post({ origin: 'http://evil.example' });
  t.diagnostic(`POST with Origin: http://evil.example → ${evil.status}`);
  assert.equal(evil.status, 403, evil.text);
  assert.equal(evil.json().error?.code, 'ORIGIN_NOT_ALLOWED');
  assert.equal(evil.headers.connection, 'close', 'the body is not read: the connection is not kept for it');
  assert.equal((await post({ origin: 'null' })).status, 403, 'a sandboxed page (Origin: null) too');
  const library = await send(port, { path: '/v1/library' });
  assert.equal(library.json().total, 0, 'nothing was stored');

  const rebound = await send(port, { path: '/v1/library', headers: { host: `rebind.attacker.example:${port}` } });
  t.diagnostic(`GET /v1/library with Host: rebind.attacker.example → ${rebound.status}`);
  assert.equal(rebound.status, 421, rebound.text);
  assert.match(rebound.headers['content-type'] ?? '', /application\/json/);
  assert.equal(rebound.json().error?.code, 'HOST_NOT_ALLOWED');
  assert.equal((await send(port, { path: '/', headers: { host: 'rebind.attacker.example' } })).status, 421, 'the page too');

  // What is served as before: the page's own origin, clients without Origin, loopback names and addresses.
  const same = await post({ origin: `http://127.0.0.1:${port}` });
  assert.equal(same.status, 200, same.text);
  const id = same.json().id as string;
  assert.equal((await post({})).status, 200, 'no Origin header: not a browser');
  assert.equal((await post({ origin: `http://localhost:${port}`, host: `localhost:${port}` })).status, 200);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `app.localhost:${port}`]) {
    assert.equal((await send(port, { path: '/healthz', headers: { host } })).status, 200, host);
  }
  const del = await send(port, { method: 'DELETE', path: `/v1/library/${id}`, headers: { origin: 'https://evil.example' } });
  assert.equal(del.status, 403, del.text);
  assert.equal((await send(port, { path: `/v1/library/${id}` })).status, 200, 'still there');
});

/** Captions without a model: the guards are what is tested here. */
const fakeEngine = async (): Promise<CaptionEngine> => ({
  card: { name: 'fake' },
  async caption(inputs) {
    return inputs.map((_, i) => ({
      source: `<buffer ${i}>`,
      image: { format: 'jpeg', width: 320, height: 240 },
      captions: [{ text: 'a fake caption', tokens: ['a', 'fake', 'caption'], score: -1, logProb: -1 }],
      timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
    }));
  },
  release: async () => {},
});

test('--allowed-hosts and --allowed-origins are honoured; a request with a valid API key is not checked for its origin', TIMEOUT, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-guards-'));
  const library = await openLibrary(join(dir, 'lib.sqlite'));
  t.after(async () => {
    await library.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const server = await buildServer({
    loadEngine: fakeEngine,
    library,
    logger: false,
    allowedHosts: ['photos.example.com', '.lan.example'],
    allowedOrigins: ['https://app.example.com'],
  });
  t.after(() => server.app.close());
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (server.app.server.address() as { port: number }).port;
  const image = await photo(320, 240, 2);
  const post = (headers: Record<string, string>) => send(port, { method: 'POST', path: '/v1/captions', headers: { 'content-type': 'image/jpeg', ...headers }, body: image });

  assert.equal((await send(port, { path: '/healthz', headers: { host: 'photos.example.com' } })).status, 200);
  assert.equal((await send(port, { path: '/healthz', headers: { host: 'nas.lan.example:8080' } })).status, 200, 'a listed domain covers its subdomains');
  assert.equal((await send(port, { path: '/healthz', headers: { host: 'photos.example.com.evil.example' } })).status, 421);
  assert.equal((await post({ origin: 'https://app.example.com' })).status, 200, 'a listed origin');
  assert.equal((await post({ origin: 'https://app.example.com:443' })).status, 200, 'the same origin with its default port');
  assert.equal((await post({ origin: 'http://app.example.com' })).status, 403, 'another scheme is another origin');
  assert.equal((await post({ origin: 'https://photos.example.com', host: 'photos.example.com' })).status, 200, 'the page served under a listed host');

  // With keys: a request that carries a valid key was meant by whoever holds it, whatever page sent it.
  const { key } = await library.createKey('alice', false);
  await new Promise((r) => setTimeout(r, 2100)); // the server asks whether keys exist at most every 2 s
  const keyed = await post({ origin: 'https://elsewhere.example', authorization: `Bearer ${key}` });
  assert.equal(keyed.status, 200, keyed.text);
  const forged = await post({ origin: 'https://elsewhere.example', authorization: 'Bearer pxi_not-a-key' });
  assert.equal(forged.status, 401, 'a made-up key is no key');

  await assert.rejects(
    buildServer({ loadEngine: fakeEngine, library, logger: false, allowedOrigins: ['app.example.com/path'] }),
    /--allowed-origins/,
    'a list entry that is not an origin stops the server at start',
  );
});
