import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cocoImageIdOf,
  readCocoAnnotations,
  readCocoResults,
  splitReferences,
  toCocoAnnotations,
  writeCocoAnnotations,
  writeCocoResults,
} from '../src/data/coco-format.js';
import { loadDataset } from '../src/data/datasets/index.js';
import { PixelInfoError } from '../src/errors.js';
import { captionsFor, makeTmpDataDir, writeCoco, writeFlickr8k } from './fixtures/data/make-datasets.js';

const isCode = (code: string, pattern: RegExp) => (e: unknown) =>
  e instanceof PixelInfoError && e.code === code && pattern.test(e.message);

test('cocoImageIdOf: numeric COCO id, else the file name without extension as a string', () => {
  assert.equal(cocoImageIdOf({ name: '1000268201_693b08cb0e.jpg' }), '1000268201_693b08cb0e');
  assert.equal(cocoImageIdOf({ name: '1000092795.jpg' }), '1000092795');
  assert.equal(cocoImageIdOf({ name: 'COCO_val2014_000000000042.jpg', id: 42 }), 42);
  assert.equal(cocoImageIdOf({ name: 'noext' }), 'noext');
});

test('Flickr8k train references → COCO annotation JSON the toolkit can read, and back', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  writeFlickr8k(tmp.dir);
  const ds = await loadDataset('flickr8k', { dataDir: tmp.dir });
  const refs = splitReferences(ds, 'train');
  assert.deepEqual(refs.map((r) => r.imageId), ['1000_a', '1001_b', '1002_c']);

  const file = join(tmp.dir, 'refs.json');
  await writeCocoAnnotations(file, refs, 'flickr8k train');
  const json = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(json.type, 'captions');
  assert.deepEqual(json.info, { description: 'flickr8k train' });
  assert.deepEqual(json.images[0], { id: '1000_a', file_name: '1000_a.jpg' });
  assert.equal(json.annotations.length, 15);
  assert.deepEqual(json.annotations[6], { image_id: '1001_b', id: 7, caption: captionsFor('1001_b.jpg')[1] });
  assert.deepEqual(new Set(json.annotations.map((a: { id: number }) => a.id)).size, 15, 'annotation ids unique');

  assert.deepEqual(await readCocoAnnotations(file), refs);
});

test('COCO references keep numeric ids; several splits at once (train + restval)', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  writeCoco(tmp.dir);
  const ds = await loadDataset('coco', { dataDir: tmp.dir });
  const refs = splitReferences(ds, ['train', 'restval']);
  assert.deepEqual(refs.map((r) => r.imageId), [9, 25, 42]);
  const ann = toCocoAnnotations(refs);
  assert.deepEqual(ann.images.map((im) => im.id), [9, 25, 42]);
  assert.ok(ann.annotations.every((a) => typeof a.image_id === 'number'));
  assert.throws(() => toCocoAnnotations([...refs, refs[0]]), isCode('INVALID_ARGUMENT', /image_id 9 appears twice/));
});

test('results JSON: write, read, and reject malformed or duplicate entries', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const file = join(tmp.dir, 'results.json');
  const results = [
    { image_id: '1000_a', caption: 'a dog runs' },
    { image_id: 42, caption: 'a cat sits' },
  ];
  await writeCocoResults(file, results);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), results);
  assert.deepEqual(await readCocoResults(file), results);

  await assert.rejects(readCocoResults(join(tmp.dir, 'none.json')), isCode('FILE_NOT_FOUND', /none\.json: file not found/));
  writeFileSync(file, '[{"image_id": 1, "caption": "x"}, {"image_id": 1, "caption": "y"}]');
  await assert.rejects(readCocoResults(file), isCode('INVALID_ARGUMENT', /image_id 1 has more than one caption/));
  writeFileSync(file, '[{"image_id": 1}]');
  await assert.rejects(readCocoResults(file), isCode('INVALID_ARGUMENT', /results\.json: \[0\]\.caption: Required/));
  writeFileSync(file, '{"image_id": 1, "caption": "x"}');
  await assert.rejects(readCocoResults(file), isCode('INVALID_ARGUMENT', /results\.json: Expected array/));
  await assert.rejects(writeCocoResults(file, [results[0], results[0]]), isCode('INVALID_ARGUMENT', /appears twice/));
});
