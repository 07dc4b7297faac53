/**
 * Tags over HTTP and in the library: POST /v1/captions answers the engine's tags, the library keeps them with the
 * captions (both stores) and a search by words finds an image by a tag its captions do not say.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildServer } from '../src/server/app.js';
import type { CaptionEngine } from '../src/server/engine.js';
import type { CaptionOutcome } from '../src/pipeline/captioner.js';
import { EVERYONE, openLibrary } from '../src/library/index.js';
import { POSTGRES_SKIP, postgresFor } from './helpers/postgres.js';

const TAGS = [{ word: 'cat', probability: 0.9912, classes: [{ index: 285, label: 'Egyptian cat', probability: 0.94 }] }];

/** Every image: "a white dog", tagged cat (what the classifier sees and the caption misses). */
const engine: CaptionEngine = {
  card: { name: 'fake' },
  modelId: 'fake@0123456789ab',
  async caption(inputs) {
    return inputs.map(
      (_, i): CaptionOutcome => ({
        source: `<buffer ${i}>`,
        image: { format: 'png', width: 64, height: 48 },
        captions: [{ text: 'a white dog', tokens: ['a', 'white', 'dog'], score: -1, logProb: -1 }],
        tags: TAGS,
        timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
      }),
    );
  },
  release: async () => {},
};

async function exercise(t: { after(fn: () => unknown): void }, library: string) {
  const server = await buildServer({ loadEngine: async () => engine, library, logger: false });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => server.app.close());
  const bytes = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c84' } }).png().toBuffer();
  const post = () => fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(bytes) });

  const body = await (await post()).json();
  assert.deepEqual(body.tags, TAGS);
  assert.deepEqual((await server.library.get(body.id, EVERYONE))?.tags, [{ word: 'cat', probability: 0.9912 }]);
  const entry = await (await fetch(`${url}/v1/library/${body.id}`)).json();
  assert.deepEqual(entry.tags, [{ word: 'cat', probability: 0.9912 }]);
  const byTag = await (await fetch(`${url}/v1/library?q=cat&mode=words`)).json();
  assert.deepEqual(byTag.items.map((i: { id: string }) => i.id), [body.id], 'found by its tag');
  assert.deepEqual(byTag.items[0].tags, [{ word: 'cat', probability: 0.9912 }]);
  assert.equal((await (await fetch(`${url}/v1/library?q=dog&mode=words`)).json()).count, 1, 'and by its caption');
  assert.equal((await (await fetch(`${url}/v1/library?q=zebra&mode=words`)).json()).count, 0);

  // the OpenAPI document describes them
  const doc = await (await fetch(`${url}/openapi.json`)).json();
  assert.ok(doc.components.schemas.CaptionResponse.properties.tags);
  assert.ok(doc.components.schemas.LibraryEntry.properties.tags);
}

describe('tags over HTTP and in the library', () => {
  test('SQLite', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'px-tags-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await exercise(t, join(dir, 'library.sqlite'));
  });

  test('PostgreSQL', { skip: POSTGRES_SKIP }, async (t) => {
    const pg = await postgresFor(t);
    if (!pg) return;
    await exercise(t, await pg.createDatabase());
  });

  test('entries stored without tags read as before (no `tags` field from the store, [] in the API)', async () => {
    const store = await openLibrary(':memory:');
    const bytes = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
    const id = 'a'.repeat(64);
    await store.put({ id, bytes, width: 8, height: 8, format: 'png', captions: [{ text: 'a dog', score: -1 }], model: 'm', owner: null });
    assert.equal((await store.get(id, EVERYONE))?.tags, undefined);
    await assert.rejects(
      store.put({ id, bytes, width: 8, height: 8, format: 'png', captions: [], tags: [{ word: 'cat', probability: 2 }], model: 'm', owner: null }),
      { code: 'INVALID_ARGUMENT', message: /tag 0/ },
    );
    await store.close();
  });
});
