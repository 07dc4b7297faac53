/**
 * Finding 6, client mistakes answered as server faults: multipart without a boundary, or cut before its closing
 * boundary → 500 with a stack trace logged at error level; two `beam` fields → the last silently won; two files →
 * 413 "reach files limit". Now each is 400 INVALID_ARGUMENT naming the problem, nothing is logged as an error, and
 * what a library or database says when it fails stays in the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../../src/server/app.js';
import { ErrorCodes, PixelInfoError } from '../../src/errors.js';
import { openLibrary, type LibraryStore } from '../../src/library/index.js';
import type { CaptionEngine } from '../../src/server/engine.js';
import { multipartBody, photo, send, serve } from './helpers.js';

test('malformed multipart, duplicate options and two files are 400 INVALID_ARGUMENT, not 500 or 413; nothing is logged as an error', { timeout: 120_000 }, async (t) => {
  const server = await serve(t);
  const { port } = server;
  const image = await photo(320, 240, 3);
  const post = (type: string, body: Buffer) => send(port, { method: 'POST', path: '/v1/captions', headers: { 'content-type': type }, body });
  const whole = multipartBody([{ name: 'image', file: image }]);

  const cases: Array<[string, () => Promise<Awaited<ReturnType<typeof send>>>, RegExp]> = [
    ['no boundary', () => post('multipart/form-data', whole.body), /multipart/i],
    ['cut before its closing boundary', () => post(whole.type, whole.body.subarray(0, whole.body.length - 60)), /multipart/i],
    ['a malformed part header', () => post(whole.type, Buffer.from(`--hostileBoundary7MA4YWxk\r\nContent-Disposition\r\n\r\nx\r\n--hostileBoundary7MA4YWxk--\r\n`)), /image|multipart/i],
    ['beam given twice', () => { const f = multipartBody([{ name: 'beam', value: '1' }, { name: 'beam', value: '5' }, { name: 'image', file: image }]); return post(f.type, f.body); }, /beam.*twice/],
    ['two files', () => { const f = multipartBody([{ name: 'image', file: image }, { name: 'image', file: image }]); return post(f.type, f.body); }, /more than one file/],
    ['a file under another name', () => { const f = multipartBody([{ name: 'photo', file: image }]); return post(f.type, f.body); }, /"image"/],
  ];
  for (const [what, run, message] of cases) {
    const answer = await run();
    t.diagnostic(`${what} → ${answer.status} ${answer.text.slice(0, 160)}`);
    assert.equal(answer.status, 400, `${what}: ${answer.text}`);
    assert.equal(answer.json().error?.code, 'INVALID_ARGUMENT', what);
    assert.match(answer.json().error!.message, message, what);
  }
  assert.equal((await post(whole.type, whole.body)).status, 200, 'a well-formed form still works');
  const errors = server.lines.filter((l) => l.level >= 50);
  assert.deepEqual(errors.map((l) => l.msg), [], 'client mistakes are not logged as server errors');
});

/** A library whose reads fail the way a database does: with details no client should see. */
function failingLibrary(library: LibraryStore): LibraryStore {
  const secret = 'SQLITE_CORRUPT: database disk image is malformed (/srv/secret/pixel-info-library.sqlite, table images)';
  return Object.assign(Object.create(library) as LibraryStore, {
    search: async () => {
      throw new PixelInfoError(ErrorCodes.INTERNAL, secret);
    },
    get: async () => {
      throw new PixelInfoError(ErrorCodes.IO_ERROR, `cannot open /srv/secret/images: EACCES`);
    },
    count: async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:5432 (user pixel, password hunter2)'), { code: 'ECONNREFUSED' });
    },
  });
}

test('library and database errors answer 500 INTERNAL with a generic message; the details stay in the log', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-leak-'));
  const library = await openLibrary(join(dir, 'lib.sqlite'));
  t.after(async () => {
    await library.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const engine: CaptionEngine = { card: { name: 'fake' }, caption: async () => [], release: async () => {} };
  const server = await buildServer({ loadEngine: async () => engine, library: failingLibrary(library), logger: false });
  t.after(() => server.app.close());
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (server.app.server.address() as { port: number }).port;
  for (const path of ['/v1/library?q=dog', `/v1/library/${'a'.repeat(64)}`]) {
    const answer = await send(port, { path });
    t.diagnostic(`GET ${path} → ${answer.status} ${answer.text}`);
    assert.equal(answer.status, 500);
    assert.deepEqual(answer.json(), { error: { code: 'INTERNAL', message: 'internal error (see the server log)' } });
    assert.doesNotMatch(answer.text, /SQLITE|secret|EACCES|5432|hunter2/);
  }
});
