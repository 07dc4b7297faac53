import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShowAttendTellStepModel, type GraphFormat } from '../src/decoder/models/show-attend-tell.js';
import { readModelDir } from '../src/decoder/model-dir.js';
import { beamSearch, type Hypothesis } from '../src/decoder/search.js';
import { DataType, encodeModel, node, valueInfo } from '../src/onnx/proto.js';
import { ToyReferenceModel, toyFeatures, toyVocabulary, toyWeights, writeToyModelDir, SMALL_DIMS } from './fixtures/decoder/toy-decoder.js';

const ROW = 49 * 2048;

function tmpModel(t: { after: (fn: () => void) => void }, weights = toyWeights(), format: GraphFormat = 'per-image'): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-decoder-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return writeToyModelDir(join(dir, 'model'), weights, {}, format);
}

function assertSameHypotheses(actual: Hypothesis[][], expected: Hypothesis[][], tolerance = 1e-4): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((list, i) => {
    assert.deepEqual(list.map((h) => h.tokens), expected[i].map((h) => h.tokens), `image ${i} tokens`);
    list.forEach((h, j) => {
      assert.ok(Math.abs(h.logProb - expected[i][j].logProb) < tolerance, `image ${i}: logProb ${h.logProb} vs ${expected[i][j].logProb}`);
      assert.ok(Math.abs(h.score - expected[i][j].score) < tolerance);
      h.alphas?.forEach((row, k) =>
        row.forEach((a, r) => assert.ok(Math.abs(a - expected[i][j].alphas![k][r]) < 1e-5, `image ${i} word ${k} region ${r}`)),
      );
    });
  });
}

for (const format of ['per-image', 'per-row'] as const) test(`ShowAttendTellStepModel (${format} graphs) + beam search give what the plain-TS toy decoder gives (greedy, beam 3 with n-best, attention)`, async (t) => {
  const weights = toyWeights();
  const model = await ShowAttendTellStepModel.load(tmpModel(t, weights, format), { vocabSize: SMALL_DIMS.vocab, threads: 1 });
  t.after(() => model.release());
  assert.equal(model.format, format);
  const reference = new ToyReferenceModel(weights);
  const features = toyFeatures(5);
  for (const opts of [
    { beamSize: 1, maxLength: 12 },
    { beamSize: 3, maxLength: 12, nBest: 3, returnAttention: true },
    { beamSize: 4, maxLength: 12, lengthPenalty: 0.7 },
  ]) {
    const ours = await beamSearch(model, features, 5, opts);
    const expected = await beamSearch(reference, features, 5, opts);
    assertSameHypotheses(ours, expected);
    // Images must end at different steps, so the row → image map of the step inputs changes mid-search.
    assert.ok(new Set(ours.map((l) => l[0].tokens.length)).size > 1, `lengths ${ours.map((l) => l[0].tokens.length)}`);
  }
});

test('ShowAttendTellStepModel: a batch of images decodes exactly as each image alone; attention rows sum to 1', async (t) => {
  const model = await ShowAttendTellStepModel.load(tmpModel(t), { threads: 1 });
  t.after(() => model.release());
  const features = toyFeatures(4, SMALL_DIMS, 99);
  const opts = { beamSize: 3, maxLength: 12, returnAttention: true };
  const vocabulary = { words: toyVocabulary(SMALL_DIMS.vocab) };
  const batched = await beamSearch(model, features, 4, opts, vocabulary);
  for (let i = 0; i < 4; i++) {
    const [alone] = await beamSearch(model, features.slice(i * ROW, (i + 1) * ROW), 1, opts, vocabulary);
    assertSameHypotheses([batched[i]], [alone], 1e-5);
    assert.deepEqual(batched[i][0].words, alone[0].words);
  }
  for (const row of batched[0][0].alphas!) {
    assert.equal(row.length, 49);
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  }
  assert.equal(model.vocabSize, SMALL_DIMS.vocab, 'learned from the graph');
});

test('ShowAttendTellStepModel.select reorders and repeats rows; init checks the feature size', async (t) => {
  const model = await ShowAttendTellStepModel.load(tmpModel(t), { threads: 1 });
  t.after(() => model.release());
  const state = await model.init(toyFeatures(2), 2);
  const picked = model.select(state, [1, 1, 0]);
  assert.equal(picked.rows, 3);
  assert.deepEqual(Array.from(picked.image, Number), [1, 1, 0]);
  const out = await model.step([1, 1, 1], picked);
  const V = SMALL_DIMS.vocab;
  assert.deepEqual(out.logProbs.subarray(0, V), out.logProbs.subarray(V, 2 * V));
  assert.notDeepEqual(out.logProbs.subarray(0, V), out.logProbs.subarray(2 * V, 3 * V));
  await assert.rejects(model.init(new Float32Array(ROW), 2), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => model.select(state, [2]), RangeError);
});

test('model directory: missing dir or files → MODEL_NOT_FOUND, bad graphs or vocab → MODEL_CORRUPT', async (t) => {
  const dir = tmpModel(t);
  await assert.rejects(readModelDir(join(dir, 'nope')), (err: { code: string; message: string }) => {
    assert.equal(err.code, 'MODEL_NOT_FOUND');
    assert.match(err.message, /does not exist/);
    return true;
  });

  const contents = await readModelDir(dir);
  assert.equal(contents.vocabulary.size, SMALL_DIMS.vocab);
  assert.equal(contents.card.name, 'toy');

  // vocab.json of another size than the graph's log_probs
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(toyVocabulary(SMALL_DIMS.vocab + 1)));
  await assert.rejects(ShowAttendTellStepModel.load(dir, { vocabSize: SMALL_DIMS.vocab + 1 }), { code: 'MODEL_CORRUPT' });
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(['a', 'b']));
  await assert.rejects(readModelDir(dir), (err: { code: string; message: string }) => err.code === 'MODEL_CORRUPT' && /vocab\.json/.test(err.message));
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(toyVocabulary(SMALL_DIMS.vocab)));
  const card = readFileSync(join(dir, 'model-card.json'));
  writeFileSync(join(dir, 'model-card.json'), '{ not json');
  await assert.rejects(readModelDir(dir), { code: 'MODEL_CORRUPT' });
  // A card naming an architecture the registry does not know.
  writeFileSync(join(dir, 'model-card.json'), JSON.stringify({ architecture: { type: 'no-such-decoder' } }));
  await assert.rejects(readModelDir(dir), (err: { code: string; message: string }) => err.code === 'MODEL_CORRUPT' && /unknown decoder architecture "no-such-decoder" \(known: show-attend-tell, transformer\)/.test(err.message));
  writeFileSync(join(dir, 'model-card.json'), card);

  // A step graph with the wrong output names.
  const wrong = encodeModel({
    name: 'wrong',
    nodes: [node('Identity', ['tokens'], ['ids'])],
    initializers: [],
    inputs: [valueInfo('tokens', DataType.INT64, ['N'])],
    outputs: [valueInfo('ids', DataType.INT64, ['N'])],
  });
  writeFileSync(join(dir, 'decoder_step.onnx'), wrong);
  await assert.rejects(ShowAttendTellStepModel.load(dir), (err: { code: string; message: string }) => {
    assert.equal(err.code, 'MODEL_CORRUPT');
    assert.match(err.message, /decoder_step\.onnx lacks input 'h'.*output 'log_probs'/);
    return true;
  });
  writeFileSync(join(dir, 'decoder_step.onnx'), 'not onnx at all');
  await assert.rejects(ShowAttendTellStepModel.load(dir), { code: 'MODEL_CORRUPT' });
  unlinkSync(join(dir, 'decoder_step.onnx'));
  await assert.rejects(readModelDir(dir), (err: { code: string; message: string }) => err.code === 'MODEL_NOT_FOUND' && /missing decoder_step\.onnx/.test(err.message));
});
