import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadDataset } from '../src/data/datasets/index.js';
import { resolveDataDir } from '../src/data/paths.js';
import { PixelInfoError } from '../src/errors.js';
import {
  COCO_IMAGES,
  COCO_KARPATHY_SPLIT,
  FLICKR8K_SPLITS,
  captionsFor,
  makeTmpDataDir,
  writeCoco,
  writeFlickr30k,
  writeFlickr8k,
} from './fixtures/data/make-datasets.js';

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PixelInfoError, `expected a PixelInfoError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

test('resolveDataDir: flag, then env, then ../shared/datasets, each named when missing', (t) => {
  const tmp = makeTmpDataDir();
  const savedEnv = process.env.PIXEL_INFO_DATA_DIR;
  const savedCwd = process.cwd();
  t.after(() => {
    if (savedEnv === undefined) delete process.env.PIXEL_INFO_DATA_DIR;
    else process.env.PIXEL_INFO_DATA_DIR = savedEnv;
    process.chdir(savedCwd);
    tmp.cleanup();
  });
  const envDir = join(tmp.dir, 'env');
  const flagDir = join(tmp.dir, 'flag');
  mkdirSync(envDir);
  mkdirSync(flagDir);
  process.env.PIXEL_INFO_DATA_DIR = envDir;
  assert.equal(resolveDataDir(flagDir), flagDir);
  assert.equal(resolveDataDir(), envDir);
  assert.throws(() => resolveDataDir(join(tmp.dir, 'nope')), rejectsWith('DATASET_NOT_FOUND', /nope.*--data-dir/));

  delete process.env.PIXEL_INFO_DATA_DIR;
  const work = join(tmp.dir, 'work', 'main');
  mkdirSync(work, { recursive: true });
  process.chdir(work);
  assert.throws(() => resolveDataDir(), rejectsWith('DATASET_NOT_FOUND', /shared\/datasets.*default/));
  mkdirSync(join(tmp.dir, 'work', 'shared', 'datasets'), { recursive: true });
  assert.equal(resolveDataDir(), resolve(tmp.dir, 'work', 'shared', 'datasets'));
});

test('flickr8k: Karpathy and official fixtures load to the same images, splits and ordered captions', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeFlickr8k(tmp.dir);
  const karpathy = await loadDataset('flickr8k', { dataDir: tmp.dir, checkImages: true });
  const official = await loadDataset('flickr8k', { dataDir: tmp.dir, splits: 'official', checkImages: true });

  assert.equal(karpathy.root, root);
  assert.equal(karpathy.imageDir, join(root, 'images'));
  assert.equal(karpathy.splits, 'karpathy');
  assert.deepEqual(karpathy.sources, [join(root, 'dataset_flickr8k.json')]);
  assert.equal(official.sources[0], join(root, 'Flickr8k.token.txt'));
  assert.equal(official.sources.length, 4);

  const expectedNames = Object.values(FLICKR8K_SPLITS).flat().sort();
  for (const ds of [karpathy, official]) {
    assert.deepEqual(ds.images.map((im) => im.name), expectedNames, 'sorted by name, unsplit image and glitch line left out');
    for (const im of ds.images) {
      const split = (Object.keys(FLICKR8K_SPLITS) as Array<keyof typeof FLICKR8K_SPLITS>).find((s) => FLICKR8K_SPLITS[s].includes(im.name));
      assert.equal(im.split, split);
      assert.deepEqual(im.captions, captionsFor(im.name));
      assert.equal(im.path, join(root, 'images', im.name));
      assert.equal(im.id, undefined);
    }
  }
  assert.deepEqual(official.images, karpathy.images);
});

test('flickr8k official: malformed token line, unlisted image and duplicate listing are DATASET_INVALID', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeFlickr8k(tmp.dir);
  const tokenFile = join(root, 'Flickr8k.token.txt');

  writeFileSync(tokenFile, '1000_a.jpg#0\tA dog .\nthis line has no tab\n');
  await assert.rejects(loadDataset('flickr8k', { dataDir: tmp.dir, splits: 'official' }), rejectsWith('DATASET_INVALID', /Flickr8k\.token\.txt: line 2/));

  writeFileSync(tokenFile, '1000_a.jpg#0\tA dog .\n');
  await assert.rejects(
    loadDataset('flickr8k', { dataDir: tmp.dir, splits: 'official' }),
    rejectsWith('DATASET_INVALID', /no captions for image '1001_b\.jpg' of the train split/),
  );

  writeFlickr8k(tmp.dir);
  writeFileSync(join(root, 'Flickr_8k.testImages.txt'), '1000_a.jpg\n');
  await assert.rejects(
    loadDataset('flickr8k', { dataDir: tmp.dir, splits: 'official' }),
    rejectsWith('DATASET_INVALID', /testImages\.txt: image '1000_a\.jpg' is already listed in the train split/),
  );

  unlinkSync(join(root, 'Flickr_8k.devImages.txt'));
  await assert.rejects(
    loadDataset('flickr8k', { dataDir: tmp.dir, splits: 'official' }),
    rejectsWith('DATASET_NOT_FOUND', /devImages\.txt: file not found/),
  );
});

test('flickr8k karpathy: missing file, bad JSON, wrong shape, wrong dataset, duplicates, missing images', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeFlickr8k(tmp.dir);
  const file = join(root, 'dataset_flickr8k.json');
  const load = () => loadDataset('flickr8k', { dataDir: tmp.dir });

  await assert.rejects(loadDataset('flickr8k', { dataDir: join(tmp.dir, 'absent') }), rejectsWith('DATASET_NOT_FOUND', /absent/));
  await assert.rejects(loadDataset('flickr30k', { dataDir: tmp.dir }), rejectsWith('DATASET_NOT_FOUND', /dataset folder not found: .*flickr30k/));

  writeFileSync(file, '{"images": [');
  await assert.rejects(load(), rejectsWith('DATASET_INVALID', /dataset_flickr8k\.json: not valid JSON/));

  writeFileSync(file, JSON.stringify({ images: [{ filename: 'x.jpg', split: 'train' }] }));
  await assert.rejects(load(), rejectsWith('DATASET_INVALID', /dataset_flickr8k\.json: images\[0\]\.sentences: Required/));

  writeFileSync(file, JSON.stringify({ images: [{ filename: 'x.jpg', split: 'dev', sentences: [{ raw: 'a' }] }] }));
  await assert.rejects(load(), rejectsWith('DATASET_INVALID', /images\[0\]\.split/));

  writeFileSync(file, JSON.stringify({ dataset: 'coco', images: [{ filename: 'x.jpg', split: 'train', sentences: [{ raw: 'a' }] }] }));
  await assert.rejects(load(), rejectsWith('DATASET_INVALID', /dataset 'coco', expected 'flickr8k'/));

  const dup = { filename: 'x.jpg', split: 'train', sentences: [{ raw: 'a' }] };
  writeFileSync(file, JSON.stringify({ images: [dup, { ...dup, split: 'test' }] }));
  await assert.rejects(load(), rejectsWith('DATASET_INVALID', /'x\.jpg' is listed twice/));

  writeFlickr8k(tmp.dir);
  unlinkSync(join(root, 'images', '2000_d.jpg'));
  assert.equal((await load()).images.length, 5, 'images are only checked on request');
  await assert.rejects(
    loadDataset('flickr8k', { dataDir: tmp.dir, checkImages: true }),
    rejectsWith('DATASET_NOT_FOUND', /1 of 5 flickr8k image files are missing: .*2000_d\.jpg/),
  );

  unlinkSync(file);
  await assert.rejects(load(), rejectsWith('DATASET_NOT_FOUND', /dataset_flickr8k\.json: file not found/));
});

test('flickr30k: Karpathy JSON with images under flickr30k-images/ or images/; no official split', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeFlickr30k(tmp.dir);
  const ds = await loadDataset('flickr30k', { dataDir: tmp.dir, checkImages: true });
  assert.equal(ds.imageDir, join(root, 'flickr30k-images'));
  assert.deepEqual(
    ds.images.map((im) => [im.name, im.split]),
    [
      ['1000092795.jpg', 'train'],
      ['10002456.jpg', 'train'],
      ['1000268201.jpg', 'val'],
      ['1000344755.jpg', 'test'],
    ],
  );
  assert.deepEqual(ds.images[2].captions, captionsFor('1000268201.jpg'));
  assert.equal(ds.images[0].path, join(root, 'flickr30k-images', '1000092795.jpg'));

  rmSync(join(root, 'flickr30k-images'), { recursive: true });
  writeFlickr30k(tmp.dir, 'images');
  const alt = await loadDataset('flickr30k', { dataDir: tmp.dir, checkImages: true });
  assert.equal(alt.imageDir, join(root, 'images'));
  assert.equal(alt.images[0].path, join(root, 'images', '1000092795.jpg'));

  await assert.rejects(loadDataset('flickr30k', { dataDir: tmp.dir, splits: 'official' }), rejectsWith('INVALID_ARGUMENT', /no official split/));
});

test('coco Karpathy: filepath folders, cocoid as id, restval kept as its own split', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeCoco(tmp.dir);
  const ds = await loadDataset('coco', { dataDir: tmp.dir, checkImages: true });
  assert.equal(ds.imageDir, root);
  assert.deepEqual(ds.sources, [join(root, 'dataset_coco.json')]);
  const sorted = [...COCO_IMAGES].sort((a, b) => (a.file_name < b.file_name ? -1 : 1));
  assert.deepEqual(
    ds.images.map((im) => ({ name: im.name, id: im.id, split: im.split, path: im.path })),
    sorted.map((im) => ({ name: im.file_name, id: im.id, split: COCO_KARPATHY_SPLIT[im.id], path: join(root, im.folder, im.file_name) })),
  );
  assert.deepEqual(new Set(ds.images.map((im) => im.split)), new Set(['train', 'restval', 'val', 'test']));
  for (const im of ds.images) assert.deepEqual(im.captions, captionsFor(im.name));
});

test('coco official: captions_{train,val}2014.json from annotations/ or the root, grouped per image', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeCoco(tmp.dir);
  const ds = await loadDataset('coco', { dataDir: tmp.dir, splits: 'official', checkImages: true });
  assert.deepEqual(ds.sources, [join(root, 'annotations', 'captions_train2014.json'), join(root, 'annotations', 'captions_val2014.json')]);
  assert.equal(ds.images.length, COCO_IMAGES.length);
  for (const im of ds.images) {
    const expected = COCO_IMAGES.find((c) => c.file_name === im.name)!;
    assert.equal(im.id, expected.id);
    assert.equal(im.split, expected.folder === 'train2014' ? 'train' : 'val');
    assert.equal(im.path, join(root, expected.folder, im.name));
    assert.deepEqual(im.captions, captionsFor(im.name), 'captions in file order, trailing newline trimmed');
  }

  rmSync(join(root, 'annotations'), { recursive: true });
  await assert.rejects(
    loadDataset('coco', { dataDir: tmp.dir, splits: 'official' }),
    rejectsWith('DATASET_NOT_FOUND', /tried .*annotations\/captions_train2014\.json and .*coco\/captions_train2014\.json/),
  );
  writeCoco(tmp.dir, { annotationsFolder: false });
  const flat = await loadDataset('coco', { dataDir: tmp.dir, splits: 'official' });
  assert.deepEqual(flat.images, ds.images);

  const valFile = join(root, 'captions_val2014.json');
  writeFileSync(valFile, JSON.stringify({ images: [{ id: 1, file_name: 'a.jpg' }], annotations: [{ image_id: 2, caption: 'x' }] }));
  await assert.rejects(
    loadDataset('coco', { dataDir: tmp.dir, splits: 'official' }),
    rejectsWith('DATASET_INVALID', /captions_val2014\.json: annotations\[0\] refers to image_id 2/),
  );
  writeFileSync(valFile, JSON.stringify({ images: [{ id: 1 }], annotations: [] }));
  await assert.rejects(
    loadDataset('coco', { dataDir: tmp.dir, splits: 'official' }),
    rejectsWith('DATASET_INVALID', /captions_val2014\.json: images\[0\] needs a numeric id and a file_name/),
  );
});

test('loadDataset rejects unknown names and split schemes as INVALID_ARGUMENT', async () => {
  await assert.rejects(loadDataset('imagenet' as never), rejectsWith('INVALID_ARGUMENT', /unknown dataset 'imagenet'/));
  await assert.rejects(loadDataset('flickr8k', { splits: 'random' as never }), rejectsWith('INVALID_ARGUMENT', /unknown split scheme/));
});
