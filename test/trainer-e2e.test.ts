/**
 * The whole training path on 20 real Flickr8k images, on CPU, in about a minute:
 * `pixel-info features` → captions.json → PyTorch trainer → ONNX export → TypeScript decodes.
 * The exported graphs must equal PyTorch on the same inputs (< 1e-4), and the model must
 * reproduce the captions it was trained on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ptbTokenize } from '../src/text/ptb.js';
import { Vocabulary } from '../src/text/vocabulary.js';
import { Captioner } from '../src/pipeline/captioner.js';
import { FLICKR8K, FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const PYTHON = process.env.PIXEL_INFO_PYTHON ?? '/usr/bin/python3';
const HAVE_TORCH = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const CLI = join(process.cwd(), 'bin', 'pixel-info.js');

function check(r: ReturnType<typeof spawnSync>, what: string): void {
  assert.equal(r.status, 0, `${what} failed:\n${String(r.stderr).slice(-3000)}`);
}

/** Parity fixture written by trainer/parity.py: a JSON header line, then raw little-endian tensors. */
function readParityFixture(path: string): { tolerance: number; tensors: Map<string, ort.Tensor> } {
  const data = readFileSync(path);
  const nl = data.indexOf(0x0a);
  const header = JSON.parse(data.subarray(0, nl).toString('utf8'));
  const body = data.subarray(nl + 1);
  const tensors = new Map<string, ort.Tensor>();
  for (const t of header.tensors) {
    const bytes = Uint8Array.prototype.slice.call(body, t.offset, t.offset + t.nbytes);
    const values = t.dtype === 'int64' ? new BigInt64Array(bytes.buffer) : new Float32Array(bytes.buffer);
    tensors.set(t.name, new ort.Tensor(t.dtype, values, t.shape));
  }
  return { tolerance: header.tolerance, tensors };
}

test('features → train → export → TypeScript decodes its training captions', { skip: (!HAVE_FLICKR8K && 'no ../shared') || (!HAVE_TORCH && `no torch for ${PYTHON}`), timeout: 900_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'px-e2e-'));
  const karpathy = JSON.parse(readFileSync(join(FLICKR8K, 'dataset_flickr8k.json'), 'utf8'));
  const chosen = karpathy.images.filter((im: any) => im.split === 'train').slice(0, 20);
  const imageDir = join(root, 'data', 'mini', 'images');
  mkdirSync(imageDir, { recursive: true });
  for (const im of chosen) copyFileSync(join(FLICKR8K_IMAGES, im.filename), join(imageDir, im.filename));

  // 1. features, with the real encoder
  const store = join(root, 'store');
  check(spawnSync(process.execPath, [CLI, 'features', '--dataset', 'mini', '--data-dir', join(root, 'data'), '--out', store, '--no-progress'], { encoding: 'utf8' }), 'features');

  // 2. one caption per image; the same images serve as val so that selection keeps the memorising checkpoint
  const targets = new Map<string, string[]>(chosen.map((im: any) => [im.filename, ptbTokenize(im.sentences[0].raw)]));
  const vocab = Vocabulary.build([...targets.values()], 1);
  // five copies of the one caption, the shape of a Flickr8k image (5 captions), so an epoch is 5 optimiser steps
  const entry = (name: string, split: string) => ({
    name,
    split,
    captions: Array.from({ length: 5 }, () => ({ raw: name, tokens: targets.get(name)!, ids: vocab.encode(targets.get(name)!) })),
  });
  const names = [...targets.keys()].sort();
  const captions = {
    format: 'pixel-info-captions', version: 1, dataset: 'mini', source: { file: 'test', md5: '0' }, tokenizer: 'ptb',
    minCount: 1, maxLength: 30, specials: { pad: 0, start: 1, end: 2, unk: 3 }, vocab: vocab.toJSON(),
    images: [...names.map((n) => entry(n, 'train')), ...names.map((n) => entry(n, 'val'))],
  };
  writeFileSync(join(root, 'captions.json'), JSON.stringify(captions));

  // 3. train a small decoder on CPU until it has memorised them
  const run = join(root, 'run');
  check(
    spawnSync(PYTHON, ['-m', 'trainer.train', '--features', store, '--captions', join(root, 'captions.json'), '--out', run,
      '--embed-dim', '64', '--hidden-dim', '128', '--attention-dim', '64', '--dropout', '0', '--att-lambda', '0',
      '--batch-size', '20', '--lr', '5e-3', '--epochs', '30', '--patience', '30', '--lr-schedule', 'none', '--feature-norm', 'layernorm',
      '--threads', '2', '--no-fp16-parts', '--log-every', '1000'], { encoding: 'utf8' }),
    'trainer.train',
  );

  // 4. export, with a parity fixture of PyTorch's outputs
  const modelDir = join(root, 'model');
  const fixture = join(root, 'parity.bin');
  check(
    spawnSync(PYTHON, ['-m', 'trainer.export', '--checkpoint', join(run, 'best.pt'), '--captions', join(root, 'captions.json'), '--out', modelDir, '--parity-fixture', fixture], {
      encoding: 'utf8',
    }),
    'trainer.export',
  );

  // 5a. onnxruntime-node runs the exported graphs like PyTorch does
  const { tolerance, tensors } = readParityFixture(fixture);
  assert.ok(tolerance <= 1e-4);
  for (const graph of ['init', 'step'] as const) {
    const session = await ort.InferenceSession.create(join(modelDir, `decoder_${graph}.onnx`));
    const feeds = Object.fromEntries(session.inputNames.map((n) => [n, tensors.get(`${graph}.${n}`)!]));
    const out = await session.run(feeds);
    for (const name of session.outputNames) {
      const expected = tensors.get(`${graph}.${name}`)!.data as Float32Array;
      const actual = out[name].data as Float32Array;
      assert.equal(actual.length, expected.length, `${graph}.${name} size`);
      let maxDiff = 0;
      for (let i = 0; i < actual.length; i++) maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
      assert.ok(maxDiff < 1e-4, `${graph}.${name}: max |onnxruntime - PyTorch| = ${maxDiff}`);
    }
    await session.release();
  }

  // 5b. the TypeScript captioner reproduces the training captions from the images
  const captioner = await Captioner.load({ modelDir, threads: 2 });
  const results = await captioner.caption(names.map((n) => join(imageDir, n)), { beamSize: 1, maxLength: 30, noRepeatNgram: 0 });
  await captioner.release();
  let exact = 0;
  results.forEach((r, i) => {
    assert.ok(!('error' in r), `${names[i]} failed`);
    const want = targets.get(names[i])!.join(' ');
    if ('captions' in r && r.captions[0].text === want) exact++;
    else if ('captions' in r) console.log(`# ${names[i]}: got "${r.captions[0].text}", trained on "${want}"`);
  });
  console.log(`# ${exact}/20 training captions reproduced exactly`);
  assert.ok(exact >= 18, `only ${exact}/20 training captions reproduced`);
});
