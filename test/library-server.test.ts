/**
 * The HTTP library routes over both stores: a captioned image is stored with the engine's model id and found,
 * fetched and counted the same way whether the library is an SQLite file or a PostgreSQL database; and
 * `serve --database` reports a database it cannot open (naming it, never its password).
 */
import { describe, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildServer } from '../src/server/app.js';
import { EVERYONE, openLibrary } from '../src/library/index.js';
import { main } from '../src/cli/index.js';
import { POSTGRES_SKIP, postgresFor } from './helpers/postgres.js';
import { fakeZebraEngine } from './helpers/fake-engine.js';

const engine = fakeZebraEngine({ width: 320, height: 240 });

async function exercise(t: { after(fn: () => unknown): void }, library: string) {
  const server = await buildServer({ loadEngine: async () => engine, library, logger: false });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => server.app.close());
  const bytes = await sharp({ create: { width: 320, height: 240, channels: 3, background: '#3a7' } }).png().toBuffer();

  const captioned = await (await fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(bytes) })).json();
  assert.equal(captioned.library.thumbnailUrl, `/v1/library/${captioned.id}/thumbnail`);
  const stored = await server.library.get(captioned.id, EVERYONE);
  assert.equal(stored?.model, 'fake@0123456789ab', 'stored under the engine model id');

  const found = await (await fetch(`${url}/v1/library?q=zeb`)).json();
  assert.deepEqual([found.count, found.total, found.items[0]?.id], [1, 1, captioned.id]);
  assert.equal((await (await fetch(`${url}/v1/library?q=${encodeURIComponent('"zebra" (zeb* -')}`)).json()).count, 1);
  const image = await fetch(`${url}/v1/library/${captioned.id}/image`);
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.match(image.headers.get('cache-control') ?? '', /^private/);
  assert.deepEqual(Buffer.from(await image.arrayBuffer()), bytes);
  assert.equal((await fetch(`${url}/v1/library/${captioned.id}/thumbnail`)).headers.get('content-type'), 'image/jpeg');
  assert.equal((await fetch(`${url}/v1/library/${'0'.repeat(64)}`)).status, 404);
  assert.match(await (await fetch(`${url}/metrics`)).text(), /^pixel_info_library_images 1$/m);
}

describe('library routes', () => {
  test('over an SQLite file', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'px-libsrv-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await exercise(t, join(dir, 'library.sqlite'));
  });

  test('over PostgreSQL', { skip: POSTGRES_SKIP }, async (t) => {
    const pg = await postgresFor(t);
    if (!pg) return;
    await exercise(t, await pg.createDatabase());
  });

  test('a store passed in stays open after the server closes', async () => {
    const store = await openLibrary(':memory:');
    const server = await buildServer({ loadEngine: async () => engine, library: store, logger: false });
    assert.equal(server.library, store);
    await server.app.close();
    assert.equal(await store.count(EVERYONE), 0);
    await store.close();
  });
});

/** Runs `pixel-info serve ...` in this process; its exit code and what it printed on stderr. */
async function serve(args: string[]): Promise<{ code: number; stderr: string }> {
  const lines: string[] = [];
  const error = mock.method(console, 'error', (...a: unknown[]) => void lines.push(a.join(' ')));
  process.exitCode = undefined;
  try {
    await main(['node', 'pixel-info', 'serve', '--port', '0', '--log-level', 'silent', ...args]);
    return { code: Number(process.exitCode ?? 0), stderr: lines.join('\n') };
  } finally {
    error.mock.restore();
    process.exitCode = undefined;
  }
}

test('serve --database: an unreachable database exits 1 naming it without the password; with --library too, exit 2', async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as { port: number };
  await new Promise((r) => probe.close(r));

  const unreachable = await serve(['--database', `postgres://pixel:hunter2@127.0.0.1:${port}/lib`]);
  assert.equal(unreachable.code, 1, unreachable.stderr);
  assert.match(unreachable.stderr, new RegExp(`IO_ERROR: .*postgres://pixel:\\*\\*\\*@127\\.0\\.0\\.1:${port}/lib`));
  assert.ok(!unreachable.stderr.includes('hunter2'));

  const both = await serve(['--database', 'postgres://127.0.0.1/lib', '--library', 'x.sqlite']);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /INVALID_ARGUMENT: --database and --library/);
});
