/** Checks on the real Flickr8k in ../shared/datasets (skipped where it is absent). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../src/data/datasets/index.js';
import { md5File, prepareCaptions } from '../src/data/prepared-captions.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = process.env.PIXEL_INFO_DATA_DIR || join(repoRoot, '..', 'shared', 'datasets');
const absent = existsSync(join(dataDir, 'flickr8k')) ? false : `no Flickr8k under ${dataDir}`;

test('real Flickr8k: Karpathy split and official split agree image for image and caption for caption', { skip: absent }, async () => {
  const karpathy = await loadDataset('flickr8k', { dataDir, checkImages: true });
  const official = await loadDataset('flickr8k', { dataDir, splits: 'official', checkImages: true });
  assert.equal(karpathy.images.length, 8000);
  const count = (split: string) => karpathy.images.filter((im) => im.split === split).length;
  assert.deepEqual([count('train'), count('val'), count('test')], [6000, 1000, 1000]);
  assert.ok(karpathy.images.every((im) => im.captions.length === 5));
  assert.ok(!official.images.some((im) => im.name.startsWith('2258277193_586949ec62')), 'the glitch line is ignored');
  assert.deepEqual(official.images, karpathy.images);
});

test('real Flickr8k: source checksums match the README and the vocabulary comes from train only', { skip: absent }, async (t) => {
  const ds = await loadDataset('flickr8k', { dataDir });
  const md5 = await md5File(ds.sources[0]);
  assert.equal(md5, 'd849a5652ec81b17fc1df4ef25563b1d');
  assert.equal(await md5File(join(dataDir, 'flickr8k', 'Flickr8k.token.txt')), 'bb65d4d46ba6cb856d8f17da6d9d7e5d');

  const { captions, summary } = prepareCaptions(ds, { sourceMd5s: [md5] });
  t.diagnostic(JSON.stringify(summary));
  const trainWords = new Set(captions.images.filter((im) => im.split === 'train').flatMap((im) => im.captions.flatMap((c) => c.tokens)));
  assert.ok(captions.vocab.slice(4).every((w) => trainWords.has(w)));
  assert.deepEqual(captions.vocab.slice(4, 8), ['a', 'in', 'the', 'on'], 'most frequent words first');
  assert.ok(summary.vocabSize > 2000 && summary.vocabSize < 4000, `vocab size ${summary.vocabSize}`);
  assert.ok(summary.trainCoverage >= 0.99);
  assert.ok(summary.maxLength >= 15 && summary.maxLength <= 30, `max length ${summary.maxLength}`);
  assert.ok(summary.valUnkFraction !== null && summary.valUnkFraction > 0 && summary.valUnkFraction < 0.06);
});
