/**
 * The library contract: one suite, run against every LibraryStore (SQLite in a temporary file, PostgreSQL on a
 * throw-away server), so that the two dialects cannot drift. Each test gets an empty store of its own. What only
 * one store has (opening a library file made before migrations) follows the suite.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import sharp from 'sharp';
import { EVERYONE, openLibrary, type JobItemResult, type LibraryStore, type NewEntry, type Viewer } from '../src/library/index.js';
import { loadMigrations, type Dialect } from '../src/library/migrate.js';
import { PixelInfoError } from '../src/errors.js';
import { POSTGRES_SKIP, startPostgres, type TestPostgres } from './helpers/postgres.js';

/** How the suite reaches one kind of store. */
interface StoreKind {
  dialect: Dialect;
  /** Why this kind is skipped here, or false. */
  skip: string | false;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** Where a new, empty library can be opened. */
  newTarget(): Promise<string>;
  /** Rows of a plain SQL query on the library at `target`, bypassing the store. */
  rows(target: string, sql: string): Promise<Record<string, unknown>[]>;
}

function sqliteKind(): StoreKind {
  let dir = '';
  let n = 0;
  return {
    dialect: 'sqlite',
    skip: false,
    async setUp() {
      dir = mkdtempSync(join(tmpdir(), 'px-library-'));
    },
    async tearDown() {
      rmSync(dir, { recursive: true, force: true });
    },
    async newTarget() {
      return join(dir, `library-${++n}.sqlite`);
    },
    async rows(target, sql) {
      const db = new Database(target, { readonly: true });
      try {
        return db.prepare(sql).all() as Record<string, unknown>[];
      } finally {
        db.close();
      }
    },
  };
}

function postgresKind(): StoreKind {
  let server: TestPostgres | undefined;
  return {
    dialect: 'postgres',
    skip: POSTGRES_SKIP,
    async setUp() {
      server = await startPostgres();
    },
    async tearDown() {
      await server?.stop();
    },
    newTarget: () => server!.createSchema(),
    async rows(target, sql) {
      const client = new pg.Client({ connectionString: target });
      await client.connect();
      try {
        return (await client.query(sql)).rows;
      } finally {
        await client.end();
      }
    },
  };
}

// --- fixtures ------------------------------------------------------------------------------------------------------

const KEY_A: Viewer = { keyId: 'key_a', admin: false };
const KEY_B: Viewer = { keyId: 'key_b', admin: false };
const ADMIN_KEY: Viewer = { keyId: 'key_admin', admin: true };

/** A distinct PNG per seed (600 x 400, so the thumbnail is smaller). */
async function image(seed: number): Promise<{ id: string; bytes: Buffer }> {
  const bytes = await sharp({ create: { width: 600, height: 400, channels: 3, background: { r: seed % 256, g: (seed * 7) % 256, b: (seed * 13) % 256 } } })
    .png()
    .toBuffer();
  return { id: createHash('sha256').update(bytes).digest('hex'), bytes };
}

async function entry(seed: number, captions: string[], extra: Partial<NewEntry> = {}): Promise<NewEntry> {
  const { id, bytes } = await image(seed);
  return {
    id,
    bytes,
    width: 600,
    height: 400,
    format: 'png',
    captions: captions.map((text, i) => ({ text, score: -1 - i })),
    model: 'flickr8k-sat@0123456789ab',
    owner: null,
    ...extra,
  };
}

const ids = (entries: { id: string }[]) => entries.map((e) => e.id).sort();

async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PixelInfoError, `expected a PixelInfoError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

// --- the contract --------------------------------------------------------------------------------------------------

function libraryContract(kind: StoreKind) {
  describe(`LibraryStore contract: ${kind.dialect}`, { skip: kind.skip }, () => {
    before(() => kind.setUp());
    after(() => kind.tearDown());

    /** An empty store for one test, closed after it. */
    async function fresh(t: { after(fn: () => unknown): void }): Promise<{ store: LibraryStore; target: string }> {
      const target = await kind.newTarget();
      const store = await openLibrary(target);
      t.after(() => store.close());
      assert.equal(store.kind, kind.dialect);
      return { store, target };
    }

    test('put, get, image and thumbnail round-trip; created once', async (t) => {
      const { store } = await fresh(t);
      const e = await entry(1, ['a brown dog runs through the grass', 'a dog running']);
      assert.deepEqual(await store.put(e), { created: true });
      const got = await store.get(e.id, EVERYONE);
      assert.ok(got);
      assert.deepEqual({ ...got, created: undefined }, {
        id: e.id,
        created: undefined,
        width: 600,
        height: 400,
        format: 'png',
        caption: 'a brown dog runs through the grass',
        captions: e.captions,
        model: e.model,
        confidence: null,
      });
      assert.ok(Math.abs(Date.parse(got.created) - Date.now()) < 60_000, got.created);
      assert.match(got.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.deepEqual(await store.image(e.id, EVERYONE), { bytes: e.bytes, format: 'png' });
      const thumb = await store.thumbnail(e.id, EVERYONE);
      const meta = await sharp(thumb).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.deepEqual([meta.width, meta.height], [256, 171]);
      assert.equal(await store.count(EVERYONE), 1);
      const unknown = 'f'.repeat(64);
      assert.equal(await store.get(unknown, EVERYONE), undefined);
      assert.equal(await store.image(unknown, EVERYONE), undefined);
      assert.equal(await store.thumbnail(unknown, EVERYONE), undefined);
      await rejectsWith(store.put({ ...e, id: 'not-a-hash' }), 'INVALID_ARGUMENT', /64/);
    });

    test('search: every word as a prefix, case-insensitive, stemmed; empty query lists newest first; limit', async (t) => {
      const { store } = await fresh(t);
      const dog = await entry(1, ['a brown dog runs through the grass']);
      const dogs = await entry(2, ['two dogs playing with a ball', 'dogs on a beach']);
      const girl = await entry(3, ['a little girl climbing stairs']);
      const cafe = await entry(4, ['people outside a café in Zürich']);
      for (const e of [dog, dogs, girl, cafe]) {
        await store.put(e);
        await new Promise((r) => setTimeout(r, 5)); // distinct creation times
      }
      const search = async (q: string, limit?: number) => ids(await store.search({ q, limit }, EVERYONE));
      assert.deepEqual(await search('dog'), ids([dog, dogs]));
      assert.deepEqual(await search('DOGS'), ids([dog, dogs]), 'stemming: "dogs" finds "dog"');
      assert.deepEqual(await search('pla'), ids([dogs]), 'prefix');
      assert.deepEqual(await search('bro gra'), ids([dog]), 'prefixes');
      assert.deepEqual(await search('dog grass'), ids([dog]), 'every word must match');
      assert.deepEqual(await search('climb'), ids([girl]));
      assert.deepEqual(await search('beach'), ids([dogs]), 'alternative captions are searched too');
      assert.deepEqual(await search('zebra'), []);
      assert.deepEqual(await search('the dog with a ball'), ids([dogs]), 'stop words are left out');
      assert.deepEqual(await search('The'), [], 'stop words only: nothing');
      assert.deepEqual(await search('café'), ids([cafe]));
      assert.deepEqual(await search('zür'), ids([cafe]));
      assert.equal((await store.search({ q: 'dog', limit: 1 }, EVERYONE)).length, 1);
      // No words: newest first.
      const recent = await store.search({}, EVERYONE);
      assert.deepEqual(
        recent.map((e) => e.id),
        [cafe, girl, dogs, dog].map((e) => e.id),
      );
      assert.deepEqual((await store.search({ q: '  ', limit: 2 }, EVERYONE)).map((e) => e.id), [cafe.id, girl.id]);
      assert.equal((await store.search({ limit: 1000 }, EVERYONE)).length, 4, 'limit is clamped, not an error');
      assert.equal((await store.search({ limit: 0 }, EVERYONE)).length, 1);
    });

    test('search: hostile input is only words, never a syntax error', async (t) => {
      const { store } = await fresh(t);
      const dog = await entry(1, ['a brown dog runs through the grass']);
      await store.put(dog);
      const hostile = [
        '"',
        '""',
        "'",
        "dog'",
        '\\',
        'AND (',
        '"dog" AND (NEAR* -',
        '*',
        'dog*',
        'dog:*',
        '(dog',
        'dog)',
        'NOT dog',
        '-dog',
        'dog | grass & !brown <-> runs',
        'dog:A',
        'NEAR(dog grass, 2)',
        'id:dog',
        '{dog}',
        '^dog',
        '\u0000dog',
        '🐕 dog 🐕',
        '狗',
        'x'.repeat(5000),
        Array.from({ length: 200 }, (_, i) => `w${i}`).join(' '),
        "'; DROP TABLE images; --",
      ];
      for (const q of hostile) {
        const found = await store.search({ q }, EVERYONE);
        assert.ok(Array.isArray(found), q);
      }
      for (const q of ['"dog"', 'dog*', 'dog:*', '(dog', "dog'", '🐕 dog 🐕', '-dog', '\u0000dog']) {
        assert.deepEqual(ids(await store.search({ q }, EVERYONE)), [dog.id], `"${q}" is the word dog`);
      }
      assert.equal(await store.count(EVERYONE), 1, 'the table is still there');
    });

    test('put again: idempotent by id; keeps created, bytes and thumbnail, takes the new captions and model', async (t) => {
      const { store } = await fresh(t);
      const first = await entry(1, ['a dog on the grass']);
      await store.put(first);
      const before = (await store.get(first.id, EVERYONE))!;
      const thumbnail = await store.thumbnail(first.id, EVERYONE);
      await new Promise((r) => setTimeout(r, 5));
      const again = { ...first, captions: [{ text: 'a puppy in a meadow', score: -0.5 }], model: 'other-model@ffffffffffff' };
      assert.deepEqual(await store.put(again), { created: false });
      const after = (await store.get(first.id, EVERYONE))!;
      assert.equal(after.created, before.created);
      assert.equal(after.caption, 'a puppy in a meadow');
      assert.deepEqual(after.captions, again.captions);
      assert.equal(after.model, 'other-model@ffffffffffff');
      assert.deepEqual(await store.thumbnail(first.id, EVERYONE), thumbnail);
      assert.deepEqual((await store.image(first.id, EVERYONE))!.bytes, first.bytes);
      assert.equal(await store.count(EVERYONE), 1);
      assert.deepEqual(ids(await store.search({ q: 'puppy' }, EVERYONE)), [first.id]);
      assert.deepEqual(await store.search({ q: 'grass' }, EVERYONE), [], 'the old captions are no longer searched');
      assert.equal(await store.hasCaptions(first.id, 'other-model@ffffffffffff'), true);
      assert.equal(await store.hasCaptions(first.id, first.model), false);
      assert.equal(await store.hasCaptions('0'.repeat(64), first.model), false);
    });

    test('concurrent puts of one new image: created exactly once, every owner kept', async (t) => {
      const { store } = await fresh(t);
      const e = await entry(1, ['a dog']);
      const owners = Array.from({ length: 10 }, (_, i) => `key_${i}`);
      const results = await Promise.all(owners.map((owner) => store.put({ ...e, owner })));
      assert.equal(results.filter((r) => r.created).length, 1);
      assert.equal(await store.count(EVERYONE), 1);
      for (const keyId of owners) assert.ok(await store.get(e.id, { keyId, admin: false }), keyId);
    });

    test('owners: a key sees only what it stored; admin and EVERYONE see all', async (t) => {
      const { store } = await fresh(t);
      const a = await entry(1, ['a dog of a'], { owner: 'key_a' });
      const b = await entry(2, ['a dog of b'], { owner: 'key_b' });
      const both = await entry(3, ['a dog of both'], { owner: 'key_a' });
      const none = await entry(4, ['a dog of nobody'], { owner: null });
      for (const e of [a, b, both, none]) await store.put(e);
      await store.put({ ...both, owner: 'key_b' });

      const sees = async (viewer: Viewer) => ids(await store.search({ q: 'dog' }, viewer));
      assert.deepEqual(await sees(KEY_A), ids([a, both]));
      assert.deepEqual(await sees(KEY_B), ids([b, both]));
      assert.deepEqual(await sees(ADMIN_KEY), ids([a, b, both, none]));
      assert.deepEqual(await sees(EVERYONE), ids([a, b, both, none]));
      assert.deepEqual(ids(await store.search({}, KEY_A)), ids([a, both]), 'the newest-first listing too');
      assert.equal(await store.count(KEY_A), 2);
      assert.equal(await store.count(KEY_B), 2);
      assert.equal(await store.count({ keyId: 'key_c', admin: false }), 0);
      assert.equal(await store.count(ADMIN_KEY), 4);

      assert.equal(await store.get(b.id, KEY_A), undefined);
      assert.equal(await store.image(b.id, KEY_A), undefined);
      assert.equal(await store.thumbnail(b.id, KEY_A), undefined);
      assert.ok(await store.get(b.id, KEY_B));
      assert.ok(await store.image(both.id, KEY_A));
      assert.ok(await store.thumbnail(both.id, KEY_B));
      assert.equal(await store.get(none.id, KEY_A), undefined, 'stored without a key: only admin and EVERYONE');

      // addOwner: a resubmission by another key, idempotent; an unknown image is NOT_FOUND.
      await store.addOwner(b.id, 'key_a');
      await store.addOwner(b.id, 'key_a');
      assert.ok(await store.get(b.id, KEY_A));
      assert.equal(await store.count(KEY_A), 3);
      await rejectsWith(store.addOwner('0'.repeat(64), 'key_a'), 'NOT_FOUND');
    });

    test('storedBytes: of every image, or of one key\'s (an image held by two keys counts for each)', async (t) => {
      const { store } = await fresh(t);
      assert.equal(await store.storedBytes(), 0);
      const a = await entry(1, ['a dog of a'], { owner: 'key_a' });
      const both = await entry(2, ['a dog of both'], { owner: 'key_a' });
      const none = await entry(3, ['a dog of nobody'], { owner: null });
      for (const e of [a, both, none]) await store.put(e);
      await store.put({ ...both, owner: 'key_b' });
      assert.equal(await store.storedBytes(), a.bytes.length + both.bytes.length + none.bytes.length);
      assert.equal(await store.storedBytes('key_a'), a.bytes.length + both.bytes.length);
      assert.equal(await store.storedBytes('key_b'), both.bytes.length);
      assert.equal(await store.storedBytes(null), none.bytes.length);
      assert.equal(await store.storedBytes('key_c'), 0);
    });

    test('delete: a key lets go of its own; the image goes with its last owner; admin removes outright', async (t) => {
      const { store } = await fresh(t);
      const a = await entry(1, ['a dog of a'], { owner: 'key_a' });
      const both = await entry(2, ['a dog of both'], { owner: 'key_a' });
      const shared = await entry(3, ['a dog stored without a key too'], { owner: null });
      await store.put(a);
      await store.put(both);
      await store.put({ ...both, owner: 'key_b' });
      await store.put(shared);
      await store.put({ ...shared, owner: 'key_a' });

      assert.equal(await store.delete(a.id, KEY_B), false, 'B cannot delete what it cannot see');
      assert.ok(await store.get(a.id, KEY_A));

      assert.equal(await store.delete(both.id, KEY_A), true);
      assert.equal(await store.get(both.id, KEY_A), undefined);
      assert.ok(await store.get(both.id, KEY_B), 'B still owns it');
      assert.equal(await store.delete(both.id, KEY_A), false, 'A no longer owns it');
      assert.equal(await store.delete(both.id, KEY_B), true);
      assert.equal(await store.get(both.id, EVERYONE), undefined, 'no owner left: gone');
      assert.equal(await store.image(both.id, EVERYONE), undefined);
      assert.equal(await store.thumbnail(both.id, EVERYONE), undefined);
      assert.deepEqual(ids(await store.search({ q: 'both' }, EVERYONE)), []);

      assert.equal(await store.delete(shared.id, KEY_A), true);
      assert.ok(await store.get(shared.id, EVERYONE), 'the keyless owner keeps it');

      assert.equal(await store.delete(a.id, ADMIN_KEY), true);
      assert.equal(await store.get(a.id, EVERYONE), undefined);
      assert.equal(await store.delete(shared.id, EVERYONE), true);
      assert.equal(await store.count(EVERYONE), 0);
      assert.equal(await store.delete(a.id, EVERYONE), false, 'already gone');

      // Stored again after deletion: a new image, with a new thumbnail and owner.
      assert.deepEqual(await store.put(a), { created: true });
      assert.ok(await store.thumbnail(a.id, KEY_A));
    });

    test('API keys: create (shown once, stored hashed), verify, list, revoke by id or name', async (t) => {
      const { store, target } = await fresh(t);
      assert.equal(await store.hasKeys(), false);
      const ci = await store.createKey('ci', false);
      const ops = await store.createKey('ops', true);
      assert.match(ci.key, /^pxi_[A-Za-z0-9_-]{43}$/);
      assert.notEqual(ci.key, ops.key);
      assert.equal(ci.info.name, 'ci');
      assert.equal(ci.info.admin, false);
      assert.equal(ci.info.revoked, null);
      assert.match(ci.info.created, /Z$/);
      assert.equal(await store.hasKeys(), true);

      assert.deepEqual(await store.verifyKey(ci.key), { keyId: ci.info.id, admin: false });
      assert.deepEqual(await store.verifyKey(ops.key), { keyId: ops.info.id, admin: true });
      for (const wrong of ['', 'pxi_', ci.key.slice(0, -1), `${ci.key}x`, ci.key.toUpperCase(), ci.info.id, "pxi_' OR 1=1 --"]) {
        assert.equal(await store.verifyKey(wrong), undefined, wrong);
      }

      const stored = await kind.rows(target, 'SELECT * FROM api_keys');
      assert.equal(stored.length, 2);
      const dump = JSON.stringify(stored);
      assert.ok(!dump.includes(ci.key) && !dump.includes(ci.key.slice(4)), 'no plain key in the database');
      assert.ok(dump.includes(createHash('sha256').update(ci.key).digest('hex')), 'its SHA-256 instead');

      await rejectsWith(store.createKey('ci', true), 'INVALID_ARGUMENT', /"ci" already exists/);
      await rejectsWith(store.createKey('  ', false), 'INVALID_ARGUMENT', /name/);
      await rejectsWith(store.createKey('x'.repeat(65), false), 'INVALID_ARGUMENT', /name/);

      const listed = await store.listKeys();
      assert.deepEqual(
        listed.map((k) => [k.name, k.admin, k.revoked]),
        [
          ['ci', false, null],
          ['ops', true, null],
        ],
      );
      assert.deepEqual(Object.keys(listed[0]).sort(), ['admin', 'created', 'id', 'name', 'revoked']);

      assert.equal(await store.revokeKey('ci'), true, 'by name');
      assert.equal(await store.verifyKey(ci.key), undefined);
      assert.equal(await store.revokeKey('ci'), true, 'already revoked: still that key');
      assert.equal(await store.revokeKey('nope'), false);
      assert.match((await store.listKeys()).find((k) => k.name === 'ci')!.revoked!, /Z$/);

      const again = await store.createKey('ci', false);
      assert.notEqual(again.info.id, ci.info.id, 'a revoked name can be used again');
      assert.deepEqual(await store.verifyKey(again.key), { keyId: again.info.id, admin: false });

      assert.equal(await store.revokeKey(ops.info.id), true, 'by id');
      assert.equal(await store.revokeKey(again.info.id), true);
      assert.equal(await store.hasKeys(), false, 'only revoked keys left');
    });

    test('jobs: queued → running → completed; first result wins; per-image errors count as failed', async (t) => {
      const { store } = await fresh(t);
      const sources = ['/data/a.jpg', '/data/b.jpg', 's3://bucket/c.png'];
      const job = await store.createJob({ id: 'job-1', owner: null, sources, options: { beamSize: 3 } });
      assert.deepEqual({ ...job, created: undefined }, {
        id: 'job-1',
        owner: null,
        state: 'queued',
        total: 3,
        done: 0,
        failed: 0,
        created: undefined,
        finished: null,
        options: { beamSize: 3 },
      });
      assert.deepEqual(await store.createJob({ id: 'job-1', owner: 'key_a', sources: ['x'], options: {} }), job, 'the same id again: the job as created');
      assert.deepEqual(
        (await store.pendingItems('job-1')).map((i) => [i.index, i.source, i.result]),
        sources.map((s, i) => [i, s, null]),
      );

      const ok: JobItemResult = { imageId: 'a'.repeat(64) };
      const bad: JobItemResult = { error: { code: 'NOT_AN_IMAGE', message: '/data/b.jpg: not an image' } };
      let now = await store.recordItem('job-1', 0, ok);
      assert.deepEqual([now.state, now.done, now.failed, now.finished], ['running', 1, 0, null]);
      now = await store.recordItem('job-1', 0, bad);
      assert.deepEqual([now.state, now.done, now.failed], ['running', 1, 0], 'a redelivery changes nothing');
      now = await store.recordItem('job-1', 1, bad);
      assert.deepEqual([now.done, now.failed], [1, 1]);
      assert.deepEqual(
        (await store.pendingItems('job-1')).map((i) => i.index),
        [2],
      );
      now = await store.recordItem('job-1', 2, ok);
      assert.deepEqual([now.state, now.done, now.failed], ['completed', 2, 1]);
      assert.match(now.finished!, /Z$/);
      assert.deepEqual(await store.getJob('job-1', EVERYONE), now);
      assert.deepEqual(await store.pendingItems('job-1'), []);
      assert.deepEqual(await store.jobItems('job-1', EVERYONE), [
        { index: 0, source: sources[0], result: ok },
        { index: 1, source: sources[1], result: bad },
        { index: 2, source: sources[2], result: ok },
      ]);
      assert.deepEqual(
        (await store.jobItems('job-1', EVERYONE, { offset: 1, limit: 1 })).map((i) => i.index),
        [1],
      );
      assert.equal(await store.cancelJob('job-1', EVERYONE), false, 'a completed job is not cancelled');

      await rejectsWith(store.recordItem('job-1', 3, ok), 'NOT_FOUND', /item 3/);
      await rejectsWith(store.recordItem('job-1', -1, ok), 'NOT_FOUND', /item -1/);
      await rejectsWith(store.recordItem('job-1', 1.5, ok), 'NOT_FOUND', /item 1.5/);
      await rejectsWith(store.recordItem('no-such-job', 0, ok), 'NOT_FOUND', /no job/);
      assert.equal(await store.getJob('no-such-job', EVERYONE), undefined);
      await rejectsWith(store.createJob({ id: 'empty', owner: null, sources: [], options: {} }), 'INVALID_ARGUMENT', /at least one/);
      await rejectsWith(store.createJob({ id: 'nul', owner: null, sources: ['/a\0b'], options: {} }), 'INVALID_ARGUMENT', /NUL/);
    });

    test('jobs: 50 concurrent deliveries of every item keep done and failed exact', async (t) => {
      const { store } = await fresh(t);
      const total = 20;
      await store.createJob({ id: 'busy', owner: null, sources: Array.from({ length: total }, (_, i) => `/in/${i}.jpg`), options: {} });
      const deliveries: Promise<unknown>[] = [];
      for (let copy = 0; copy < 50; copy++) {
        for (let index = 0; index < total; index++) {
          // Items 0-14 succeed, 15-19 fail, whichever delivery is first; a few deliveries carry the other outcome.
          const succeeds = (index < 15) !== (copy % 17 === 16);
          deliveries.push(store.recordItem('busy', index, succeeds ? { imageId: String(index).padStart(64, '0') } : { error: { code: 'DECODE_FAILED', message: `copy ${copy}` } }));
        }
      }
      await Promise.all(deliveries);
      const job = (await store.getJob('busy', EVERYONE))!;
      const items = await store.jobItems('busy', EVERYONE);
      const succeeded = items.filter((i) => i.result && 'imageId' in i.result).length;
      assert.equal(job.done + job.failed, total);
      assert.equal(job.done, succeeded, 'done counts exactly the items whose recorded result is an image');
      assert.equal(job.failed, total - succeeded);
      assert.equal(job.state, 'completed');
      assert.deepEqual(await store.pendingItems('busy'), []);
    });

    test('jobs: owners see their own; cancel is sticky', async (t) => {
      const { store } = await fresh(t);
      await store.createJob({ id: 'of-a', owner: 'key_a', sources: ['/1', '/2'], options: {} });
      assert.ok(await store.getJob('of-a', KEY_A));
      assert.equal(await store.getJob('of-a', KEY_B), undefined);
      assert.ok(await store.getJob('of-a', ADMIN_KEY));
      assert.deepEqual(await store.jobItems('of-a', KEY_B), []);
      assert.equal(await store.cancelJob('of-a', KEY_B), false);
      assert.equal((await store.getJob('of-a', KEY_A))!.state, 'queued');

      assert.equal(await store.cancelJob('of-a', KEY_A), true);
      const cancelled = (await store.getJob('of-a', KEY_A))!;
      assert.equal(cancelled.state, 'cancelled');
      assert.match(cancelled.finished!, /Z$/);
      assert.equal(await store.cancelJob('of-a', KEY_A), true, 'cancelled already');
      const late = await store.recordItem('of-a', 0, { imageId: 'b'.repeat(64) });
      assert.deepEqual([late.state, late.done], ['cancelled', 1], 'a result in flight is still recorded; the job stays cancelled');
      assert.equal(await store.cancelJob('no-such-job', EVERYONE), false);
    });

    test('confidence: the best caption\'s, kept with the entry and every caption; null without a matcher', async (t) => {
      const { store } = await fresh(t);
      const e = await entry(1, ['a dog runs', 'a dog']);
      e.captions[0].confidence = 0.8125;
      e.captions[1].confidence = 0.25;
      await store.put(e);
      const got = await store.get(e.id, EVERYONE);
      assert.equal(got?.confidence, 0.8125);
      assert.deepEqual(got?.captions, [
        { text: 'a dog runs', score: -1, confidence: 0.8125 },
        { text: 'a dog', score: -2, confidence: 0.25 },
      ]);
      assert.equal((await store.search({ q: 'dog' }, EVERYONE))[0].confidence, 0.8125);
      // Captioned again without a matcher: no confidence.
      await store.put({ ...e, captions: [{ text: 'a dog', score: -1 }] });
      assert.equal((await store.get(e.id, EVERYONE))?.confidence, null);
      await rejectsWith(store.put({ ...e, captions: [{ text: 'x', score: -1, confidence: 1.5 }] }), 'INVALID_ARGUMENT', /confidence/);
    });

    test('search by meaning: cosine ranking over one matcher\'s embeddings, then word matches of images without one', async (t) => {
      const { store } = await fresh(t);
      const m = 'flickr8k-match@0123456789ab';
      const v = (...xs: number[]) => Float32Array.from(xs);
      const dog = await entry(1, ['a brown dog runs through the grass'], { embedding: { model: m, vector: v(1, 0, 0, 0) } });
      const puppy = await entry(2, ['a small animal on a sofa'], { embedding: { model: m, vector: v(0.8, 0.6, 0, 0) } });
      const beach = await entry(3, ['people on a beach'], { embedding: { model: m, vector: [0, 0, 1, 0] } });
      const otherMatcher = await entry(4, ['a dog on a lead'], { embedding: { model: 'other@ffff', vector: v(1, 0, 0, 0) } });
      const plain = await entry(5, ['two dogs playing with a ball']);
      const cat = await entry(6, ['a cat sleeping']);
      for (const e of [dog, puppy, beach, otherMatcher, plain, cat]) await store.put(e);

      // The query need not be unit length; the stored vectors are normalised too.
      const query = { model: m, vector: v(2, 1, 0, 0) };
      const found = await store.search({ q: 'dog', embedding: query }, EVERYONE);
      assert.deepEqual(
        found.slice(0, 3).map((e) => e.id),
        [puppy.id, dog.id, beach.id],
        'by cosine first (every image with an embedding of this matcher)',
      );
      assert.deepEqual(ids(found.slice(3)), ids([otherMatcher, plain]), 'then the word matches without one; the cat (no match) is not found');
      const expected = [(1.6 + 0.6) / Math.sqrt(5), 2 / Math.sqrt(5), 0];
      found.slice(0, 3).forEach((e, i) => assert.ok(Math.abs(e.cosine! - expected[i]) < 1e-5, `${e.cosine} vs ${expected[i]}`));
      assert.equal(found[3].cosine, undefined, 'word matches carry no cosine');
      assert.equal(found[1].caption, 'a brown dog runs through the grass');
      assert.deepEqual((await store.search({ q: 'dog', embedding: query, limit: 2 }, EVERYONE)).map((e) => e.id), [puppy.id, dog.id]);
      // Another matcher's query sees only its own embeddings.
      assert.deepEqual((await store.search({ q: 'zzz', embedding: { model: 'other@ffff', vector: [0, 1, 0, 0] } }, EVERYONE)).map((e) => e.id), [otherMatcher.id]);
      // A query of another size than the stored embeddings: words only.
      assert.deepEqual(ids(await store.search({ q: 'dog', embedding: { model: m, vector: [1, 0] } }, EVERYONE)), ids([otherMatcher, plain]));
      // Without an embedding, or with an empty query: as before.
      assert.deepEqual(ids(await store.search({ q: 'dog' }, EVERYONE)), ids([dog, otherMatcher, plain]));
      assert.equal((await store.search({ q: '', embedding: query }, EVERYONE))[0].id, cat.id, 'empty query: newest first');
      await rejectsWith(store.search({ q: 'dog', embedding: { model: m, vector: [0, 0, 0, 0] } }, EVERYONE), 'INVALID_ARGUMENT', /zero/);
      await rejectsWith(store.put({ ...cat, embedding: { model: m, vector: [1, Number.NaN, 0, 0] } }), 'INVALID_ARGUMENT', /finite/);

      // Captioned again without an embedding: the stored one is kept; with a new one, replaced.
      await store.put({ ...beach, embedding: undefined });
      assert.equal((await store.search({ q: 'x', embedding: { model: m, vector: [0, 0, 1, 0] } }, EVERYONE))[0].id, beach.id);
      await store.put({ ...beach, embedding: { model: m, vector: [1, 0, 0, 0.001] } });
      const near = await store.search({ q: 'x', embedding: { model: m, vector: [0, 0, 1, 0] } }, EVERYONE);
      assert.notEqual(near[0].id, beach.id, 'the new embedding replaced the old');

      // Owners: a key finds only its own images; deleted images are gone from the ranking.
      await store.put({ ...puppy, owner: 'key_a' });
      assert.deepEqual((await store.search({ q: 'dog', embedding: query }, KEY_A)).map((e) => e.id), [puppy.id]);
      assert.equal(await store.delete(puppy.id, EVERYONE), true);
      assert.equal((await store.search({ q: 'dog', embedding: query }, EVERYONE))[0].id, dog.id);
    });

    test('search by meaning: two stores on one library see each other\'s writes', async (t) => {
      const { store, target } = await fresh(t);
      const other = await openLibrary(target);
      t.after(() => other.close());
      const m = 'flickr8k-match@0123456789ab';
      const a = await entry(1, ['a dog'], { embedding: { model: m, vector: [1, 0] } });
      const b = await entry(2, ['a cat'], { embedding: { model: m, vector: [0, 1] } });
      await store.put(a);
      assert.deepEqual((await other.search({ q: 'cat', embedding: { model: m, vector: [0, 1] } }, EVERYONE)).map((e) => e.id), [a.id]);
      await store.put(b);
      assert.deepEqual((await other.search({ q: 'cat', embedding: { model: m, vector: [0, 1] } }, EVERYONE)).map((e) => e.id), [b.id, a.id]);
      await store.delete(b.id, EVERYONE);
      assert.deepEqual((await other.search({ q: 'cat', embedding: { model: m, vector: [0, 1] } }, EVERYONE)).map((e) => e.id), [a.id]);
    });

    test('migrations: recorded once; opening again (and several at once) changes nothing', async (t) => {
      const target = await kind.newTarget();
      const opened = await Promise.all([openLibrary(target), openLibrary(target), openLibrary(target)]);
      const e = await entry(1, ['a dog']);
      await opened[0].put(e);
      await Promise.all(opened.map((s) => s.close()));
      const reopened = await openLibrary(target);
      t.after(() => reopened.close());
      assert.equal((await reopened.get(e.id, EVERYONE))?.caption, 'a dog');
      const versions = (await kind.rows(target, 'SELECT version, name FROM schema_migrations ORDER BY version')).map((r) => [Number(r.version), r.name]);
      assert.deepEqual(
        versions,
        loadMigrations(kind.dialect).map((m) => [m.version, m.name]),
      );
    });
  });
}

libraryContract(sqliteKind());
libraryContract(postgresKind());

// --- SQLite only -----------------------------------------------------------------------------------------------------

test('SQLite: a library file made before migrations opens with its images kept (owner: none, model: "")', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-library-old-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'old.sqlite');
  const old = await entry(1, ['a black dog jumps over a log', 'a dog jumping']);
  const thumbnail = await sharp(old.bytes).resize(64).jpeg().toBuffer();
  // Exactly the schema and rows of the first release.
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, created TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
      format TEXT NOT NULL, caption TEXT NOT NULL, captions_json TEXT NOT NULL, bytes BLOB NOT NULL, thumbnail BLOB NOT NULL);
    CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5(id UNINDEXED, text, tokenize = 'porter unicode61');
  `);
  db.prepare('INSERT INTO images VALUES (?, ?, 600, 400, ?, ?, ?, ?, ?)').run(
    old.id,
    '2025-01-02T03:04:05.678Z',
    'png',
    old.captions[0].text,
    JSON.stringify(old.captions),
    old.bytes,
    thumbnail,
  );
  db.prepare('INSERT INTO images_fts (id, text) VALUES (?, ?)').run(old.id, old.captions.map((c) => c.text).join('\n'));
  db.close();

  const store = await openLibrary(file);
  t.after(() => store.close());
  assert.deepEqual(await store.get(old.id, EVERYONE), {
    id: old.id,
    created: '2025-01-02T03:04:05.678Z',
    width: 600,
    height: 400,
    format: 'png',
    caption: 'a black dog jumps over a log',
    captions: old.captions,
    model: '',
    confidence: null,
  });
  assert.deepEqual(ids(await store.search({ q: 'jump' }, EVERYONE)), [old.id]);
  assert.deepEqual(await store.thumbnail(old.id, EVERYONE), thumbnail);
  assert.equal(await store.get(old.id, KEY_A), undefined, 'no key stored it');
  assert.equal(await store.hasCaptions(old.id, 'flickr8k-sat@0123456789ab'), false, 'captioned by an unknown model: a job recomputes it');
  // A key storing it too, then letting go, leaves it with its keyless owner.
  await store.put({ ...old, owner: 'key_a' });
  assert.ok(await store.get(old.id, KEY_A));
  assert.equal(await store.delete(old.id, KEY_A), true);
  assert.ok(await store.get(old.id, EVERYONE));
  assert.equal(await store.count(EVERYONE), 1);
});
