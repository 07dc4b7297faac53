import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerPrepare } from '../src/cli/commands/prepare.js';
import { loadDataset } from '../src/data/datasets/index.js';
import { lengthStats, percentile, prepareCaptions, readPreparedCaptions } from '../src/data/prepared-captions.js';
import { PixelInfoError } from '../src/errors.js';
import { makeTmpDataDir, writeCoco, writeFlickr8k } from './fixtures/data/make-datasets.js';

const md5 = (file: string) => createHash('md5').update(readFileSync(file)).digest('hex');

test('percentile is nearest-rank; lengthStats summarises', () => {
  const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(sorted, 0.5), 5);
  assert.equal(percentile(sorted, 0.99), 10);
  assert.equal(percentile(sorted, 0.9), 9);
  assert.equal(percentile([], 0.5), 0);
  assert.deepEqual(lengthStats([3, 1, 2]), { count: 3, mean: 2, p50: 2, p90: 3, p95: 3, p99: 3, max: 3 });
});

test('prepareCaptions on the Flickr8k fixture: train-only vocabulary, ids, cut, unk share, md5', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  writeFlickr8k(tmp.dir);
  const ds = await loadDataset('flickr8k', { dataDir: tmp.dir });
  const { captions, summary } = prepareCaptions(ds, { sourceMd5s: ['0123456789abcdef0123456789abcdef'] });

  // Train captions are "A dog number <i> runs near the <image> ." (3 images x 5): the six shared words appear
  // 15 times (ties in code-point order), each image stem 5 times, the digits 3 times (< minCount 5).
  assert.deepEqual(captions.vocab, ['<pad>', '<start>', '<end>', '<unk>', 'a', 'dog', 'near', 'number', 'runs', 'the', '1000_a', '1001_b', '1002_c']);
  assert.equal(captions.format, 'pixel-info-captions');
  assert.equal(captions.version, 1);
  assert.equal(captions.tokenizer, 'ptb');
  assert.deepEqual(captions.specials, { pad: 0, start: 1, end: 2, unk: 3 });
  assert.deepEqual(captions.source, { file: 'dataset_flickr8k.json', md5: '0123456789abcdef0123456789abcdef' });
  assert.equal(captions.minCount, 5);
  assert.equal(captions.maxLength, 8, 'every caption has 8 tokens, so the 99th percentile is 8');

  const val = captions.images.find((im) => im.split === 'val')!;
  assert.equal(val.name, '2000_d.jpg');
  assert.deepEqual(val.captions[2], {
    raw: 'A dog number 2 runs near the 2000_d .',
    tokens: ['a', 'dog', 'number', '2', 'runs', 'near', 'the', '2000_d'],
    ids: [4, 5, 7, 3, 8, 6, 9, 3],
  });
  assert.deepEqual(summary.imagesPerSplit, { train: 3, val: 1, test: 1 });
  assert.deepEqual(summary.captionsPerSplit, { train: 15, val: 5, test: 5 });
  assert.equal(summary.vocabSize, 13);
  assert.equal(summary.valUnkFraction, 2 / 8);
  assert.equal(summary.trainCoverage, 1);
  assert.equal(summary.truncatedCaptions, 0);
  assert.equal(summary.maxLengthIsDefault, true);

  const cut = prepareCaptions(ds, { sourceMd5s: ['0123456789abcdef0123456789abcdef'], maxLength: 3, minCount: 15 });
  assert.equal(cut.captions.vocab.length, 10);
  assert.deepEqual(cut.captions.images[0].captions[0].ids, [4, 5, 7]);
  assert.equal(cut.captions.images[0].captions[0].tokens.length, 8, 'tokens stay whole for the metrics');
  assert.equal(cut.summary.truncatedCaptions, 25);
  assert.equal(cut.summary.trainCoverage, 0);
  assert.throws(() => prepareCaptions(ds, { sourceMd5s: ['x'], maxLength: 0 }), (e: unknown) => e instanceof PixelInfoError && e.code === 'INVALID_ARGUMENT');
});

test('prepareCaptions on COCO Karpathy: restval trains, ids kept, official sources listed', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  writeCoco(tmp.dir);
  const ds = await loadDataset('coco', { dataDir: tmp.dir });
  const { captions, summary } = prepareCaptions(ds, { sourceMd5s: ['f'.repeat(32)] });
  assert.ok(captions.vocab.includes('coco_val2014_000000000042'), 'the restval image stem counts as training text');
  assert.ok(!captions.vocab.includes('coco_val2014_000000000074'), 'the val image stem does not');
  assert.deepEqual(summary.imagesPerSplit, { train: 2, restval: 1, test: 1, val: 1 });
  assert.deepEqual(captions.images.map((im) => im.id), [9, 25, 42, 73, 74]);

  const official = await loadDataset('coco', { dataDir: tmp.dir, splits: 'official' });
  const prepared = prepareCaptions(official, { sourceMd5s: ['a'.repeat(32), 'b'.repeat(32)] });
  assert.deepEqual(prepared.captions.sources, [
    { file: 'captions_train2014.json', md5: 'a'.repeat(32) },
    { file: 'captions_val2014.json', md5: 'b'.repeat(32) },
  ]);
  assert.equal(prepared.captions.splits, 'official');
});

function program(): Command {
  const p = new Command();
  p.exitOverride();
  p.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerPrepare(p);
  return p;
}

test('pixel-info prepare writes a valid captions.json with the source md5 and prints the summary', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const root = writeFlickr8k(tmp.dir);
  const out = join(tmp.dir, 'out', 'nested', 'captions.json');
  const log = t.mock.method(console, 'log', () => undefined);
  await program().parseAsync(['prepare', '--dataset', 'flickr8k', '--data-dir', tmp.dir, '--out', out, '--min-count', '3'], { from: 'user' });
  assert.equal(process.exitCode ?? 0, 0);

  const printed = String(log.mock.calls[0].arguments[0]);
  assert.match(printed, /images: +train 3, val 1, test 1 \(total 5\)/);
  assert.match(printed, /vocabulary: 18 ids/);
  assert.match(printed, /max length: 8 \(default, keeps 100\.0% of train captions whole/);

  const { captions, vocab } = await readPreparedCaptions(out);
  assert.equal(captions.source.md5, md5(join(root, 'dataset_flickr8k.json')));
  assert.equal(captions.minCount, 3);
  assert.equal(vocab.size, 18, 'digits 0-4 (3 each) now make the cut');
  assert.equal(captions.images.length, 5);

  log.mock.resetCalls();
  await program().parseAsync(
    ['prepare', '--dataset', 'flickr8k', '--data-dir', tmp.dir, '--splits', 'official', '--max-length', '4', '--json', '--out', out],
    { from: 'user' },
  );
  const summary = JSON.parse(String(log.mock.calls[0].arguments[0]));
  assert.equal(summary.maxLength, 4);
  assert.equal(summary.splits, 'official');
  const official = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(official.source.file, 'Flickr8k.token.txt');
  assert.equal(official.source.md5, md5(join(root, 'Flickr8k.token.txt')));
  assert.equal(official.sources.length, 4);
});

test('pixel-info prepare: usage errors come from commander, dataset errors are typed PixelInfoErrors', async (t) => {
  const tmp = makeTmpDataDir();
  t.after(tmp.cleanup);
  const out = join(tmp.dir, 'captions.json');
  const run = (args: string[]) => program().parseAsync(['prepare', ...args], { from: 'user' });
  const usage = (code: string) => (e: unknown) => e instanceof CommanderError && e.code === code;
  const typed = (code: string, pattern: RegExp) => (e: unknown) => e instanceof PixelInfoError && e.code === code && pattern.test(e.message);

  await assert.rejects(run(['--dataset', 'mnist', '--out', out]), usage('commander.invalidArgument'));
  await assert.rejects(run(['--dataset', 'flickr8k', '--min-count', 'abc', '--out', out]), usage('commander.invalidArgument'));
  await assert.rejects(run(['--dataset', 'flickr8k', '--max-length', '0', '--out', out]), usage('commander.invalidArgument'));
  await assert.rejects(run(['--dataset', 'flickr8k', '--splits', 'random', '--out', out]), usage('commander.invalidArgument'));
  await assert.rejects(run(['--dataset', 'flickr8k']), usage('commander.missingMandatoryOptionValue'));

  await assert.rejects(run(['--dataset', 'flickr8k', '--data-dir', tmp.dir, '--out', out]), typed('DATASET_NOT_FOUND', /dataset folder not found: .*flickr8k/));
  writeFlickr8k(tmp.dir);
  writeFileSync(join(tmp.dir, 'flickr8k', 'dataset_flickr8k.json'), '[]');
  await assert.rejects(
    run(['--dataset', 'flickr8k', '--data-dir', tmp.dir, '--out', out]),
    typed('DATASET_INVALID', /dataset_flickr8k\.json: Expected object, received array/),
  );
  assert.ok(!existsSync(out), 'nothing written on failure');
});
