/**
 * Opening a library: which store a target picks, the errors a bad target gives (naming it, never its password),
 * where commands find their library, the search words, and the model id stored with captions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PixelInfoError } from '../src/errors.js';
import { describeLibraryTarget, EVERYONE, libraryTarget, modelIdOf, openLibrary, redactUrl } from '../src/library/index.js';
import { searchWords, toFtsQuery, toTsQuery } from '../src/library/search.js';
import { defaultModelDir } from '../src/pipeline/captioner.js';
import { postgresFor } from './helpers/postgres.js';

function tempDir(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function openFails(target: string, code: string, pattern: RegExp, secret?: string) {
  await assert.rejects(openLibrary(target), (err: unknown) => {
    assert.ok(err instanceof PixelInfoError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    if (secret) {
      assert.ok(!err.message.includes(secret), `the password is in "${err.message}"`);
      assert.ok(!String(err.subject).includes(secret));
      assert.ok(!String((err.cause as Error | undefined)?.message ?? '').includes(secret));
    }
    return true;
  });
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

test('openLibrary: a file path, :memory: and sqlite: URLs open SQLite, created with its folder', async (t) => {
  const dir = tempDir(t);
  for (const target of [join(dir, 'nested', 'lib.sqlite'), ':memory:', 'sqlite::memory:', `sqlite://${join(dir, 'url.sqlite')}`, `sqlite:${join(dir, 'plain.sqlite')}`]) {
    const store = await openLibrary(target);
    assert.equal(store.kind, 'sqlite', target);
    assert.equal(await store.count(EVERYONE), 0);
    await store.close();
    await store.close(); // twice is fine
  }
  assert.equal(describeLibraryTarget('lib.sqlite'), resolve('lib.sqlite'));
  assert.equal(describeLibraryTarget('sqlite::memory:'), ':memory:');
});

test('openLibrary: bad SQLite targets are INVALID_ARGUMENT or IO_ERROR naming the file', async (t) => {
  const dir = tempDir(t);
  const garbage = join(dir, 'garbage.sqlite');
  writeFileSync(garbage, 'this is not a database, just some text that is long enough to have a header'.repeat(20));
  await openFails(garbage, 'INVALID_ARGUMENT', new RegExp(`${garbage}.*not an SQLite database`));
  await openFails(dir, 'IO_ERROR', new RegExp(dir));
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  await openFails(join(file, 'lib.sqlite'), 'IO_ERROR', /a-file/);
  await openFails('', 'INVALID_ARGUMENT', /file path or a postgres/);
  await openFails('sqlite:', 'INVALID_ARGUMENT', /sqlite:PATH/);
});

test('openLibrary: unknown URL schemes and unreachable servers name the URL without its password', async () => {
  await openFails('mysql://pixel:hunter2@db.example/lib', 'INVALID_ARGUMENT', /unsupported library URL mysql:\/\/pixel:\*\*\*@db\.example\/lib/, 'hunter2');
  const port = await closedPort();
  await openFails(`postgres://pixel:s3cret-pw@127.0.0.1:${port}/lib`, 'IO_ERROR', new RegExp(`postgres://pixel:\\*\\*\\*@127\\.0\\.0\\.1:${port}/lib.*ECONNREFUSED`), 's3cret-pw');
  await openFails(`postgresql://pixel:s3cret-pw@[::1:${port}/lib`, 'INVALID_ARGUMENT', /postgresql:\/\/pixel:\*\*\*@/, 's3cret-pw');
  assert.equal(redactUrl('postgres://u:p%40ss@h:5432/db?sslmode=require'), 'postgres://u:***@h:5432/db?sslmode=require');
  assert.equal(redactUrl('postgres://h/db'), 'postgres://h/db');
  assert.equal(describeLibraryTarget('postgres://u:pw@h/db'), 'postgres://u:***@h/db');
});

test('openLibrary: a PostgreSQL database that does not exist is INVALID_ARGUMENT; one that does opens', async (t) => {
  const server = await postgresFor(t);
  if (!server) return;
  const missing = server.url.replace(/\/postgres$/, '/no_such_db');
  await openFails(missing, 'INVALID_ARGUMENT', /no_such_db.*does not exist/);
  const store = await openLibrary(await server.createDatabase());
  t.after(() => store.close());
  assert.equal(store.kind, 'postgres');
  assert.equal(await store.count(EVERYONE), 0);
});

test('libraryTarget: --database, --library, $PIXEL_INFO_DATABASE_URL, $PIXEL_INFO_LIBRARY, ./pixel-info-library.sqlite', () => {
  const env = { PIXEL_INFO_DATABASE_URL: 'postgres://env/db', PIXEL_INFO_LIBRARY: '/env/lib.sqlite' };
  assert.equal(libraryTarget({ database: 'postgres://flag/db' }, env), 'postgres://flag/db');
  assert.equal(libraryTarget({ library: 'flag.sqlite' }, env), 'flag.sqlite');
  assert.equal(libraryTarget({}, env), 'postgres://env/db');
  assert.equal(libraryTarget({}, { PIXEL_INFO_LIBRARY: '/env/lib.sqlite' }), '/env/lib.sqlite');
  assert.equal(libraryTarget({}, {}), resolve('pixel-info-library.sqlite'));
  assert.throws(() => libraryTarget({ database: 'postgres://a/b', library: 'c.sqlite' }, {}), /give one of them/);
});

test('search words: letters and digits only, lower case, no stop words, at most 16 words of 64 characters', () => {
  assert.deepEqual(searchWords('"Dog" AND (NEAR* -grass) café:* 🐕 x2'), { words: ['dog', 'near', 'grass', 'café', 'x2'], onlyStopWords: false });
  assert.deepEqual(searchWords('The dog, in the park'), { words: ['dog', 'park'], onlyStopWords: false });
  assert.deepEqual(searchWords('the AND of'), { words: [], onlyStopWords: true });
  assert.deepEqual(searchWords(undefined), { words: [], onlyStopWords: false });
  assert.deepEqual(searchWords('"( * -'), { words: [], onlyStopWords: false });
  assert.equal(searchWords(Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ')).words.length, 16);
  assert.equal(searchWords('y'.repeat(500)).words[0].length, 64);
  assert.equal(toFtsQuery(['dog', 'runs']), '"dog"* "runs"*');
  assert.equal(toTsQuery(['dog', 'run']), "'dog':* & 'run':*");
  assert.equal(toFtsQuery([]), '');
  assert.equal(toTsQuery([]), '');
});

test('modelIdOf: card name and a hash of the model files; +int8 for int8 decoder weights', async (t) => {
  const dir = tempDir(t);
  const copy = join(dir, 'model');
  cpSync(defaultModelDir(), copy, { recursive: true });
  const id = await modelIdOf(copy, { int8Decoder: false });
  assert.match(id, /^flickr8k-sat@[0-9a-f]{12}$/);
  assert.equal(await modelIdOf(defaultModelDir(), { int8Decoder: false }), id, 'the same files, the same id, wherever they are');
  assert.equal(await modelIdOf(copy, { int8Decoder: true }), `${id}+int8`);
  // the default ('auto') resolves as the Captioner does: int8 because the shipped card records a passed gate
  assert.equal(JSON.parse(readFileSync(join(copy, 'model-card.json'), 'utf8')).quantization.int8Decoder.passed, true);
  assert.equal(await modelIdOf(copy), `${id}+int8`);
  appendFileSync(join(copy, 'model-card.json'), '\n');
  assert.notEqual(await modelIdOf(copy, { int8Decoder: false }), id, 'another file, another id');
  await assert.rejects(modelIdOf(join(dir, 'none')), (err: PixelInfoError) => err.code === 'MODEL_NOT_FOUND');
});
