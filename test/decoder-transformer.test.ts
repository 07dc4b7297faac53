/**
 * The `transformer` decoder architecture end to end: a tiny random model exported by the trainer
 * (`python3 -m trainer.export --tiny --architecture transformer`), its graphs against PyTorch (the parity fixture),
 * the TypeScript StepModel's beam search against PyTorch's beam search (trainer/decoding.py) on the same features,
 * select() with repeated and dropped rows, the int8 refusal, and a Captioner running it on real images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { TransformerStepModel } from '../src/decoder/models/transformer.js';
import { loadDecoder, readModelDir } from '../src/decoder/model-dir.js';
import { Int8UnsupportedError } from '../src/decoder/registry.js';
import { resolveInt8Decoder } from '../src/decoder/precision.js';
import { beamSearch, type Hypothesis } from '../src/decoder/search.js';
import { DEFAULT_GENERATION, type GenerationConfig } from '../src/decoder/generation.js';
import { Captioner, type CaptionResult } from '../src/pipeline/captioner.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const PYTHON = process.env.PIXEL_INFO_PYTHON ?? '/usr/bin/python3';
const HAVE_TORCH = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const NEEDS_TORCH = { skip: !HAVE_TORCH && `no torch for ${PYTHON}`, timeout: 300_000 };
const R = 49;
const D = 2048;
const VOCAB = 24; // trainer/export.py tiny_checkpoint

const root = mkdtempSync(join(tmpdir(), 'px-transformer-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const modelDir = join(root, 'model');
const fixture = join(root, 'parity.bin');

/** Exports the tiny transformer once for the whole file. */
let exported: Promise<void> | undefined;
function exportTiny(): Promise<void> {
  exported ??= (async () => {
    const r = spawnSync(PYTHON, ['-m', 'trainer.export', '--tiny', '--architecture', 'transformer', '--out', modelDir, '--parity-fixture', fixture], { encoding: 'utf8' });
    assert.equal(r.status, 0, `trainer.export failed:\n${String(r.stderr).slice(-3000)}`);
  })();
  return exported;
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

/** `count` images of ReLU'd pseudo-random features [count, 49, 2048], the same on every run. */
function features(count: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(count * R * D);
  for (let i = 0; i < out.length; i++) out[i] = Math.max(0, rand() * 2 - 1) * 1.6;
  return out;
}

/** PyTorch's beam search (trainer/decoding.py) on the same fp16-rounded weights the ONNX files hold. */
const PYTORCH_SEARCH = `
import json, sys
import numpy as np, torch
from trainer.checkpoint import model_from_checkpoint
from trainer.decoding import DecodingConfig, beam_search, default_config
from trainer.export import fp16_export_copy, tiny_checkpoint
torch.set_num_threads(1)
path, count, configs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
ck = tiny_checkpoint(architecture="transformer")
model = fp16_export_copy(model_from_checkpoint(ck).eval())
feats = torch.from_numpy(np.fromfile(path, dtype="<f4").reshape(count, 49, 2048))
out = []
for c in configs:
    cfg = DecodingConfig.from_json({**default_config().to_json(), **c})
    hyps = beam_search(model, feats, cfg, ck["vocab"], ck["specials"], return_attention=True)
    out.append([[{"tokens": h.tokens, "logProb": h.log_prob, "score": h.score,
                  "alphas": [a.tolist() for a in h.alphas]} for h in hs] for hs in hyps])
print(json.dumps(out))
`;

interface PyHypothesis {
  tokens: number[];
  logProb: number;
  score: number;
  alphas: number[][];
}

function pytorchBeamSearch(feats: Float32Array, count: number, configs: Partial<GenerationConfig>[]): PyHypothesis[][][] {
  const path = join(root, `features-${count}.f32`);
  writeFileSync(path, new Uint8Array(feats.buffer, feats.byteOffset, feats.byteLength));
  const r = spawnSync(PYTHON, ['-c', PYTORCH_SEARCH, path, String(count), JSON.stringify(configs)], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, `PyTorch beam search failed:\n${String(r.stderr).slice(-3000)}`);
  return JSON.parse(r.stdout);
}

function assertSameHypotheses(actual: Hypothesis[][], expected: PyHypothesis[][], what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((list, i) => {
    assert.deepEqual(list.map((h) => h.tokens), expected[i].map((h) => h.tokens), `${what}, image ${i}: tokens`);
    list.forEach((h, j) => {
      const want = expected[i][j];
      assert.ok(Math.abs(h.logProb - want.logProb) < 1e-4, `${what}, image ${i}: logProb ${h.logProb} vs PyTorch ${want.logProb}`);
      assert.ok(Math.abs(h.score - want.score) < 1e-4, `${what}, image ${i}: score`);
      assert.equal(h.alphas!.length, want.alphas.length);
      h.alphas!.forEach((row, k) => row.forEach((a, r) => assert.ok(Math.abs(a - want.alphas[k][r]) < 1e-4, `${what}, image ${i} word ${k} region ${r}`)));
    });
  });
}

test('trainer.export --tiny --architecture transformer: the graphs declare the documented interface and run like PyTorch in onnxruntime (parity fixture)', NEEDS_TORCH, async () => {
  await exportTiny();
  const card = JSON.parse(readFileSync(join(modelDir, 'model-card.json'), 'utf8'));
  assert.equal(card.architecture.type, 'transformer');
  const { layers: L, heads: H, d_model: dModel } = card.architecture.config;
  const hd = dModel / H;
  assert.deepEqual(card.onnx.init.outputs, { memory: ['B', R, dModel], cross_keys: ['B', L, H, R, hd], cross_values: ['B', L, H, R, hd] });
  assert.deepEqual(card.onnx.step.inputs.past_keys, ['N', L, H, 'T', hd]);
  assert.deepEqual(card.onnx.step.outputs.past_keys_out, ['N', L, H, 'T1', hd]);
  assert.deepEqual(card.onnx.step.outputs.log_probs, ['N', VOCAB]);

  const { tolerance, tensors } = readParityFixture(fixture);
  assert.ok(tolerance <= 1e-4);
  const B = tensors.get('init.features')!.dims[0];
  const [N, , , T] = tensors.get('step.past_keys')!.dims;
  assert.ok(N !== B && T > 0, `fixture: N ${N}, B ${B}, T ${T}`);
  for (const graph of ['init', 'step'] as const) {
    const session = await ort.InferenceSession.create(join(modelDir, `decoder_${graph}.onnx`));
    const feeds = Object.fromEntries(session.inputNames.map((n) => [n, tensors.get(`${graph}.${n}`)!]));
    const out = await session.run(feeds);
    for (const name of session.outputNames) {
      const expected = tensors.get(`${graph}.${name}`)!;
      assert.deepEqual(out[name].dims, expected.dims, `${graph}.${name} dims`);
      const a = out[name].data as Float32Array;
      const e = expected.data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - e[i]));
      assert.ok(maxDiff < tolerance, `${graph}.${name}: max |onnxruntime - PyTorch| = ${maxDiff}`);
    }
    await session.release();
  }
});

test('transformer StepModel via the registry: its beam search equals PyTorch\'s (greedy, beam 3 n-best with the default rules, beam 4 with a length penalty), attention included', NEEDS_TORCH, async (t) => {
  await exportTiny();
  const model = await readModelDir(modelDir);
  const decoder = await loadDecoder(model, { threads: 1 });
  t.after(() => decoder.release());
  assert.ok(decoder instanceof TransformerStepModel);
  assert.equal(decoder.regions, R);
  assert.equal(decoder.featureDim, D);
  assert.equal(decoder.vocabSize, VOCAB);

  const count = 5;
  const feats = features(count, 7);
  const configs: Partial<GenerationConfig>[] = [
    { beamSize: 1, maxLength: 12, nBest: 1, lengthPenalty: 0, noRepeatNgram: 0, rules: [] },
    { beamSize: 3, maxLength: 20, nBest: 3, lengthPenalty: 0, noRepeatNgram: 3, rules: [...DEFAULT_GENERATION.rules] },
    { beamSize: 4, maxLength: 15, nBest: 2, lengthPenalty: 0.7, noRepeatNgram: 2, rules: ['no-specials', 'no-empty', 'no-repeated-token'] },
  ];
  const expected = pytorchBeamSearch(feats, count, configs);
  for (let k = 0; k < configs.length; k++) {
    const ours = await beamSearch(decoder, feats, count, { ...configs[k], returnAttention: true }, { words: model.vocabulary.words });
    assertSameHypotheses(ours, expected[k], `config ${k} (beam ${configs[k].beamSize})`);
    for (const list of ours) for (const h of list) for (const row of h.alphas!) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  }
  // a batch decodes as each image alone (rows of different images never mix)
  const opts = { beamSize: 3, maxLength: 12, returnAttention: false };
  const batched = await beamSearch(decoder, feats, count, opts);
  for (const i of [0, 3]) {
    const [alone]: Hypothesis[][] = await beamSearch(decoder, feats.slice(i * R * D, (i + 1) * R * D), 1, opts);
    assert.deepEqual(alone.map((h) => h.tokens), batched[i].map((h) => h.tokens));
    assert.ok(Math.abs(alone[0].logProb - batched[i][0].logProb) < 1e-5);
  }
});

test('transformer select(): repeated, reordered and dropped rows carry their whole cache and image', NEEDS_TORCH, async (t) => {
  await exportTiny();
  const decoder = await TransformerStepModel.load(modelDir, { threads: 1, vocabSize: VOCAB });
  t.after(() => decoder.release());
  const feats = features(2, 11);
  const { layers, heads, headDim } = decoder.cache;
  const V = VOCAB;

  // two images, two steps (each row a different history), then rows [1, 1, 0] and [1]
  let state = await decoder.init(feats, 2);
  assert.equal(state.length, 0);
  assert.equal(state.pastKeys.length, 0);
  state = (await decoder.step([1, 1], state)).state;
  state = (await decoder.step([5, 9], state)).state;
  assert.equal(state.length, 2);
  assert.equal(state.pastKeys.length, 2 * layers * heads * 2 * headDim);
  const picked = decoder.select(state, [1, 1, 0]);
  assert.equal(picked.rows, 3);
  assert.equal(picked.length, 2);
  assert.deepEqual(Array.from(picked.image, Number), [1, 1, 0]);
  const out = await decoder.step([7, 7, 7], picked);
  assert.equal(out.state.length, 3);
  assert.deepEqual(out.logProbs.subarray(0, V), out.logProbs.subarray(V, 2 * V), 'a repeated row gives the same distribution');
  assert.notDeepEqual(out.logProbs.subarray(0, V), out.logProbs.subarray(2 * V, 3 * V));

  // each selected row equals the same history decoded alone, without any select
  const alone = async (image: number, history: number[]) => {
    const s = await decoder.init(feats.subarray(image * R * D, (image + 1) * R * D), 1);
    let o = await decoder.step([history[0]], s);
    for (const token of history.slice(1)) o = await decoder.step([token], o.state);
    return o;
  };
  const row1 = await alone(1, [1, 9, 7]);
  const row0 = await alone(0, [1, 5, 7]);
  const close = (a: Float32Array, b: Float32Array) => a.every((x, i) => Math.abs(x - b[i]) < 1e-5);
  assert.ok(close(out.logProbs.subarray(0, V), row1.logProbs), 'row 0 of [1, 1, 0] is image 1 with its own history');
  assert.ok(close(out.logProbs.subarray(2 * V, 3 * V), row0.logProbs), 'row 2 of [1, 1, 0] is image 0 with its own history');
  assert.ok(close(out.alpha.subarray(2 * R, 3 * R), row0.alpha));

  // dropping rows: only image 1's beam goes on
  const dropped = decoder.select(state, [1]);
  assert.equal(dropped.rows, 1);
  const one = await decoder.step([7], dropped);
  assert.ok(close(one.logProbs, row1.logProbs));

  assert.throws(() => decoder.select(state, [2]), RangeError);
  await assert.rejects(decoder.step([1, 2, 3], state), RangeError);
  await assert.rejects(decoder.init(new Float32Array(R * D), 2), { code: 'INVALID_ARGUMENT' });
});

test('int8 with a transformer: auto stays fp32 (no gate in its card), an explicit request is a typed error naming the architecture', NEEDS_TORCH, async () => {
  await exportTiny();
  const model = await readModelDir(modelDir);
  assert.equal(resolveInt8Decoder('auto', model.card), false);
  const isInt8Refusal = (err: unknown) => {
    assert.ok(err instanceof Int8UnsupportedError);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.architecture, 'transformer');
    assert.match(err.message, /not supported for the "transformer" decoder architecture/);
    return true;
  };
  await assert.rejects(loadDecoder(model, { int8: true }), isInt8Refusal);
  await assert.rejects(loadDecoder(model, { observe: { tensors: {}, onRun: () => {} } }), (err: Error) => /int8 calibration/.test(err.message) && isInt8Refusal(err));
  // the captioner loads decoders first: the refusal comes before any encoder work
  await assert.rejects(Captioner.load({ modelDir, int8Decoder: true, matcher: false }), isInt8Refusal);
});

test('Captioner with a transformer model directory: captions real images with per-word attention', { ...NEEDS_TORCH, skip: NEEDS_TORCH.skip || (!HAVE_FLICKR8K && 'no ../shared') }, async (t) => {
  await exportTiny();
  const captioner = await Captioner.load({ modelDir, threads: 1, matcher: false });
  t.after(() => captioner.release());
  assert.equal(captioner.int8Decoder, false);
  const images = ['1001773457_577c3a7d70.jpg', '1000268201_693b08cb0e.jpg'].map((n) => join(FLICKR8K_IMAGES, n));
  const out = (await captioner.caption(images, { returnAttention: true, nBest: 2 })) as CaptionResult[];
  for (const r of out) {
    assert.ok(!('error' in r), JSON.stringify(r));
    assert.equal(r.captions.length, 2);
    for (const c of r.captions) {
      assert.ok(c.tokens.length >= 1 && c.tokens.length <= 20);
      assert.ok(c.tokens.every((w) => /^w\d+$/.test(w)), c.text);
      assert.equal(c.attention!.length, c.tokens.length);
      for (const row of c.attention!) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    }
  }
});
