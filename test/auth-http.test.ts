/**
 * Who may see what, over HTTP, against a server started in this process with a fake engine: API keys on every
 * /v1 route once one exists (401 without one, with a revoked or an unknown one), each key seeing and deleting
 * only its own images (another key's image is a 404, as one that does not exist), an admin key seeing all,
 * DELETE /v1/library/:id, store=false, the public routes, the security headers and no CORS. The same scenario
 * runs on an SQLite file and on PostgreSQL.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildServer } from '../src/server/app.js';
import { cachedKeyPresence, isLoopbackHost, presentedKey } from '../src/server/auth.js';
import { EVERYONE, openLibrary, type LibraryStore } from '../src/library/index.js';
import { POSTGRES_SKIP, postgresFor } from './helpers/postgres.js';
import { fakeZebraEngine } from './helpers/fake-engine.js';

const engine = fakeZebraEngine({ width: 64, height: 48 });

/** A small PNG of one colour: a distinct image (and library id) per colour. */
function png(background: string): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background } }).png().toBuffer();
}

type Credentials = { bearer: string } | { apiKey: string } | { authorization: string } | null;

function headersOf(who: Credentials): Record<string, string> {
  if (!who) return {};
  if ('bearer' in who) return { authorization: `Bearer ${who.bearer}` };
  if ('apiKey' in who) return { 'x-api-key': who.apiKey };
  return { authorization: who.authorization };
}

/** A client of the server at `url` as `who`. */
function client(url: string, who: Credentials) {
  const call = (path: string, init: RequestInit = {}) => fetch(`${url}${path}`, { ...init, headers: { ...headersOf(who), ...(init.headers as object) } });
  return {
    call,
    async caption(bytes: Buffer, query = ''): Promise<Response> {
      return call(`/v1/captions${query}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(bytes) });
    },
    async ids(q = ''): Promise<{ ids: string[]; total: number }> {
      const response = await call(`/v1/library?q=${encodeURIComponent(q)}`);
      assert.equal(response.status, 200, await response.clone().text());
      const page = (await response.json()) as { items: Array<{ id: string }>; total: number };
      return { ids: page.items.map((i) => i.id).sort(), total: page.total };
    },
  };
}

async function errorOf(response: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await response.json()) as { error: { code: string; message: string } };
  return { status: response.status, code: body.error.code, message: body.error.message };
}

async function startServer(t: { after(fn: () => unknown): void }, store: LibraryStore) {
  const server = await buildServer({ loadEngine: async () => engine, library: store, logger: false, keysCacheMs: 0, rateLimit: { max: 0 } });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => server.app.close());
  return { server, url };
}

/** The whole scenario against one library target. */
async function exercise(t: { after(fn: () => unknown): void }, target: string) {
  const store = await openLibrary(target);
  t.after(() => store.close());
  const { url } = await startServer(t, store);
  const anyone = client(url, null);

  // No key exists yet: the API is open, as in embedded use.
  assert.equal((await anyone.call('/v1/library')).status, 200);

  const a = await store.createKey('alice', false);
  const b = await store.createKey('bob', false);
  const root = await store.createKey('root', true);
  const alice = client(url, { bearer: a.key });
  const bob = client(url, { apiKey: b.key }); // the other header
  const admin = client(url, { bearer: root.key });

  // --- without a key: 401 on every /v1 route, with a Bearer challenge; the public routes stay public ---
  for (const [method, path] of [
    ['GET', '/v1/library'],
    ['GET', `/v1/library/${'a'.repeat(64)}`],
    ['GET', `/v1/library/${'a'.repeat(64)}/thumbnail`],
    ['DELETE', `/v1/library/${'a'.repeat(64)}`],
    ['GET', '/v1/model'],
    ['POST', '/v1/score'],
    ['POST', '/v1/match'],
    ['GET', '/v1/no-such-route'],
  ]) {
    const response = await anyone.call(path, { method });
    assert.equal(response.status, 401, `${method} ${path}`);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="pixel-info"');
    assert.equal((await errorOf(response)).code, 'UNAUTHENTICATED');
  }
  const noKey = await errorOf(await anyone.caption(await png('#123456')));
  assert.deepEqual([noKey.status, noKey.code], [401, 'UNAUTHENTICATED']);
  assert.match(noKey.message, /Authorization: Bearer/);
  for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/']) {
    assert.notEqual((await anyone.call(path)).status, 401, `${path} is public`);
  }

  // --- each key stores its own images; one image stored by both ---
  const [redBytes, blueBytes, sharedBytes] = await Promise.all([png('#c00'), png('#00c'), png('#0c0')]);
  const red = (await (await alice.caption(redBytes)).json()) as { id: string; library: unknown };
  const blue = (await (await bob.caption(blueBytes)).json()) as { id: string };
  const shared = (await (await alice.caption(sharedBytes)).json()) as { id: string };
  assert.equal((await bob.caption(sharedBytes)).status, 200);
  assert.ok(red.library, 'stored');

  assert.deepEqual(await alice.ids(), { ids: [red.id, shared.id].sort(), total: 2 });
  assert.deepEqual(await bob.ids(), { ids: [blue.id, shared.id].sort(), total: 2 });
  assert.deepEqual(await alice.ids('zebra'), { ids: [red.id, shared.id].sort(), total: 2 }, 'search shows only her images');
  assert.deepEqual(await admin.ids(), { ids: [red.id, blue.id, shared.id].sort(), total: 3 });

  // --- another key's image is exactly as absent as one that does not exist ---
  const nowhere = 'f'.repeat(64);
  for (const suffix of ['', '/image', '/thumbnail']) {
    const theirs = await errorOf(await alice.call(`/v1/library/${blue.id}${suffix}`));
    const missing = await errorOf(await alice.call(`/v1/library/${nowhere}${suffix}`));
    assert.deepEqual([theirs.status, theirs.code], [404, 'NOT_FOUND'], `GET ${suffix || 'entry'} of another key's image`);
    assert.deepEqual([missing.status, missing.code], [404, 'NOT_FOUND']);
    assert.equal(theirs.message.replace(blue.id, 'ID'), missing.message.replace(nowhere, 'ID'), 'the same answer as for a missing image');
  }
  assert.equal((await alice.call(`/v1/library/${red.id}/image`)).status, 200);
  assert.equal((await alice.call(`/v1/library/${red.id}/thumbnail`)).headers.get('content-type'), 'image/jpeg');
  assert.equal((await admin.call(`/v1/library/${blue.id}/image`)).status, 200, 'an admin key sees every image');

  // --- DELETE: not another key's image; a shared image stays for the other key until both removed it ---
  assert.deepEqual(await errorOf(await alice.call(`/v1/library/${blue.id}`, { method: 'DELETE' })), {
    status: 404,
    code: 'NOT_FOUND',
    message: `no image ${blue.id} in the library`,
  });
  assert.equal((await bob.call(`/v1/library/${blue.id}`)).status, 200, "bob's image is untouched");

  const removed = await alice.call(`/v1/library/${shared.id}`, { method: 'DELETE' });
  assert.equal(removed.status, 204);
  assert.equal(await removed.text(), '');
  assert.equal((await alice.call(`/v1/library/${shared.id}`)).status, 404, 'gone for alice');
  assert.equal((await alice.call(`/v1/library/${shared.id}`, { method: 'DELETE' })).status, 404, 'deleting twice: 404');
  const kept = await bob.call(`/v1/library/${shared.id}/image`);
  assert.equal(kept.status, 200, 'still there for bob');
  assert.deepEqual(Buffer.from(await kept.arrayBuffer()), sharedBytes);
  assert.equal((await bob.call(`/v1/library/${shared.id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await admin.call(`/v1/library/${shared.id}`)).status, 404, 'no owner left: the image is deleted');
  assert.equal(await store.thumbnail(shared.id, EVERYONE), undefined, 'its thumbnail too');

  assert.equal((await admin.call(`/v1/library/${red.id}`, { method: 'DELETE' })).status, 204, "an admin deletes any key's image");
  assert.deepEqual(await alice.ids(), { ids: [], total: 0 });
  assert.equal((await alice.call(`/v1/library/${'A'.repeat(64)}`, { method: 'DELETE' })).status, 400, 'a malformed id is a 400');

  // --- store=false: captions, keeps nothing (as a query parameter or as a form field) ---
  const before = await store.count(EVERYONE);
  const ephemeral = await alice.caption(await png('#abcdef'), '?store=false');
  assert.equal(ephemeral.status, 200);
  const body = (await ephemeral.json()) as { id: string; library: unknown; captions: unknown[] };
  assert.equal(body.library, null);
  assert.equal(body.captions.length, 1);
  const form = new FormData();
  form.append('store', 'false');
  form.append('image', new Blob([new Uint8Array(await png('#fedcba'))], { type: 'image/png' }), 'x.png');
  const formAnswer = (await (await alice.call('/v1/captions', { method: 'POST', body: form })).json()) as { id: string; library: unknown };
  assert.equal(formAnswer.library, null);
  assert.equal(await store.count(EVERYONE), before, 'nothing stored');
  assert.equal(await store.get(body.id, EVERYONE), undefined);
  assert.equal(await store.get(formAnswer.id, EVERYONE), undefined);
  assert.equal((await alice.call(`/v1/library/${body.id}`)).status, 404);
  assert.equal((await alice.caption(await png('#abcdef'), '?store=maybe')).status, 400, 'store must be a boolean');

  // --- unknown, malformed and revoked keys: 401 invalid_token ---
  for (const who of [
    { bearer: `pxi_${'A'.repeat(43)}` },
    { authorization: 'Bearer' },
    { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
    { apiKey: '' },
  ]) {
    const response = await client(url, who).call('/v1/library');
    assert.equal(response.status, 401, JSON.stringify(who));
    assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  }
  assert.equal(await store.revokeKey('alice'), true);
  const revoked = await alice.call('/v1/library');
  assert.deepEqual([revoked.status, (await errorOf(revoked)).code], [401, 'UNAUTHENTICATED']);
  assert.equal((await bob.call('/v1/library')).status, 200, 'other keys still work');

  // --- with every key revoked the API is open again ---
  await store.revokeKey(b.info.id);
  await store.revokeKey('root');
  assert.equal((await anyone.call('/v1/library')).status, 200);
}

describe('API keys over HTTP', () => {
  test('on an SQLite library', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'px-auth-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await exercise(t, join(dir, 'library.sqlite'));
  });

  test('on PostgreSQL', { skip: POSTGRES_SKIP }, async (t) => {
    const pg = await postgresFor(t);
    if (!pg) return;
    await exercise(t, await pg.createSchema());
  });
});

test('a key created while the server runs applies within the cache time', async (t) => {
  const store = await openLibrary(':memory:');
  t.after(() => store.close());
  const server = await buildServer({ loadEngine: async () => engine, library: store, logger: false, keysCacheMs: 150 });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => server.app.close());
  assert.equal((await fetch(`${url}/v1/library`)).status, 200);
  await store.createKey('late', false);
  const deadline = Date.now() + 2000;
  let status = 200;
  while (status === 200 && Date.now() < deadline) {
    status = (await fetch(`${url}/v1/library`)).status;
    if (status === 200) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(status, 401);
});

test('security headers on pages and API answers; no CORS', async (t) => {
  const store = await openLibrary(':memory:');
  t.after(() => store.close());
  const { url } = await startServer(t, store);
  for (const path of ['/', '/v1/library', '/healthz', '/v1/nope']) {
    const response = await fetch(`${url}${path}`, { headers: { origin: 'https://elsewhere.example' } });
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/, path);
    // 'wasm-unsafe-eval' (compiling WebAssembly, for captioning on the device) is allowed; script eval and inline are not.
    assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'/, path);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer', path);
    assert.equal(response.headers.get('access-control-allow-origin'), null, path);
  }
  const preflight = await fetch(`${url}/v1/library`, {
    method: 'OPTIONS',
    headers: { origin: 'https://elsewhere.example', 'access-control-request-method': 'DELETE' },
  });
  assert.equal(preflight.headers.get('access-control-allow-origin'), null, 'no preflight answer');
});

test('the OpenAPI document: DELETE, store=false, the key schemes and their 401/429 answers', async (t) => {
  const store = await openLibrary(':memory:');
  t.after(() => store.close());
  const { url } = await startServer(t, store);
  const doc = await (await fetch(`${url}/openapi.json`)).json();
  const remove = doc.paths['/v1/library/{id}'].delete;
  assert.ok(remove, 'DELETE /v1/library/{id} is documented');
  assert.deepEqual(Object.keys(remove.responses).sort(), ['204', '400', '401', '404', '429']);
  const captions = doc.paths['/v1/captions'].post;
  const store_ = captions.parameters.find((p: { name: string }) => p.name === 'store');
  assert.deepEqual({ in: store_.in, type: store_.schema.type }, { in: 'query', type: 'boolean' });
  assert.ok(captions.requestBody.content['multipart/form-data'].schema.properties.store, 'store is a form field too');
  assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['apiKey', 'bearer']);
  assert.deepEqual(captions.security, [{ bearer: [] }, { apiKey: [] }, {}]);
  assert.equal(doc.paths['/healthz'].get.security, undefined, 'health stays public');
});

test('presentedKey, isLoopbackHost and the key-presence cache', async () => {
  const of = (headers: Record<string, string | string[]>) => presentedKey({ headers });
  assert.equal(of({}), undefined);
  assert.equal(of({ authorization: 'Bearer pxi_x' }), 'pxi_x');
  assert.equal(of({ authorization: '  bearer   pxi_x ' }), 'pxi_x');
  assert.equal(of({ authorization: 'Basic abc' }), '');
  assert.equal(of({ 'x-api-key': ' pxi_y ' }), 'pxi_y');
  assert.equal(of({ 'x-api-key': ['a', 'b'] }), '');
  assert.equal(of({ authorization: 'Bearer pxi_x', 'x-api-key': 'pxi_y' }), 'pxi_x', 'Authorization first');

  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.org', '128.0.0.1']) assert.ok(!isLoopbackHost(host), host);

  let queries = 0;
  let answer = false;
  const present = cachedKeyPresence({ hasKeys: async () => (queries++, answer) }, 60_000);
  assert.deepEqual(await Promise.all([present(), present(), present()]), [false, false, false]);
  answer = true;
  assert.equal(await present(), false, 'cached');
  assert.equal(queries, 1, 'concurrent callers share one query');
  let failing = true;
  const flaky = cachedKeyPresence({ hasKeys: async () => (failing ? Promise.reject(new Error('down')) : true) }, 60_000);
  await assert.rejects(flaky(), /down/);
  failing = false;
  assert.equal(await flaky(), true, 'a failure is not cached');
});
