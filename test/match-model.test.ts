/** The matcher loader, tokenisation, embeddings and calibration, on a tiny toy matcher written to a tmp dir. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrate, loadMatcher, parseMatcherCard, scorePairs, tokenizeTexts } from '../src/match/index.js';
import { ErrorCodes, PixelInfoError } from '../src/errors.js';
import { Vocabulary } from '../src/text/vocabulary.js';
import { referenceImageEmbedding, referenceTextEmbedding, writeToyMatcherDir, type ToyMatcherOptions } from './fixtures/match/toy-matcher.js';

function toy(t: { after: (fn: () => void) => void }, options: ToyMatcherOptions = {}, card: Record<string, unknown> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'px-match-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return writeToyMatcherDir(join(root, 'matcher'), options, card);
}

async function rejectsWith(promise: Promise<unknown>, code: string, ...inMessage: string[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PixelInfoError, `not a PixelInfoError: ${err}`);
    assert.equal(err.code, code, err.message);
    for (const s of inMessage) assert.ok(err.message.includes(s), `"${err.message}" should name ${s}`);
    return true;
  });
}

function rowNorms(data: Float32Array, dim: number): number[] {
  return Array.from({ length: data.length / dim }, (_, i) => Math.hypot(...data.subarray(i * dim, (i + 1) * dim)));
}

test('loadMatcher: a missing directory or file is MODEL_NOT_FOUND naming the file', async (t) => {
  const m = toy(t);
  await rejectsWith(loadMatcher(join(m.dir, 'nope')), ErrorCodes.MODEL_NOT_FOUND, join(m.dir, 'nope', 'model-card.json'));
  for (const file of ['text.onnx', 'image.onnx', 'vocab.json']) {
    const again = toy(t);
    unlinkSync(join(again.dir, file));
    await rejectsWith(loadMatcher(again.dir), ErrorCodes.MODEL_NOT_FOUND, join(again.dir, file));
  }
});

test('loadMatcher: a corrupt graph, card or vocabulary is MODEL_CORRUPT naming the file', async (t) => {
  const m = toy(t);
  writeFileSync(join(m.dir, 'image.onnx'), 'not a protobuf at all');
  await rejectsWith(loadMatcher(m.dir), ErrorCodes.MODEL_CORRUPT, join(m.dir, 'image.onnx'));

  const card = toy(t);
  writeFileSync(join(card.dir, 'model-card.json'), '{"format": "pixel-info-matcher",');
  await rejectsWith(loadMatcher(card.dir), ErrorCodes.MODEL_CORRUPT, join(card.dir, 'model-card.json'), 'not valid JSON');

  const badField = toy(t, {}, { maxTokens: 'many', calibration: { a: 1 } });
  await rejectsWith(loadMatcher(badField.dir), ErrorCodes.MODEL_CORRUPT, 'model-card.json', 'maxTokens', 'calibration.b');

  const uncalibrated = toy(t, {}, { calibration: null });
  await rejectsWith(loadMatcher(uncalibrated.dir), ErrorCodes.MODEL_CORRUPT, 'model-card.json', 'calibration: null', '--features');

  const wrongFormat = toy(t, {}, { format: 'pixel-info-model-card' });
  await rejectsWith(loadMatcher(wrongFormat.dir), ErrorCodes.MODEL_CORRUPT, 'format');

  const vocab = toy(t);
  writeFileSync(join(vocab.dir, 'vocab.json'), JSON.stringify(['a', 'b']));
  await rejectsWith(loadMatcher(vocab.dir), ErrorCodes.MODEL_CORRUPT, join(vocab.dir, 'vocab.json'));
});

test('loadMatcher: graphs with other input/output names, or a card that disagrees with them, are MODEL_CORRUPT', async (t) => {
  const renamed = toy(t, { outputName: 'emb' });
  await rejectsWith(loadMatcher(renamed.dir), ErrorCodes.MODEL_CORRUPT, 'image.onnx', "output 'embedding'", 'emb');

  const dimMismatch = toy(t, {}, { embeddingDim: 16 });
  await rejectsWith(loadMatcher(dimMismatch.dir), ErrorCodes.MODEL_CORRUPT, 'image.onnx', '8 columns', 'embeddingDim is 16');

  const narrow = toy(t, { tokenWidth: 4, maxTokens: 6 });
  await rejectsWith(loadMatcher(narrow.dir), ErrorCodes.MODEL_CORRUPT, 'text.onnx', 'maxTokens is 6');
});

test('tokenisation: PTB as the training captions (lower case, punctuation dropped), unknown → <unk>, cut to maxTokens, empty → one <unk>', () => {
  const vocab = Vocabulary.fromJSON(['<pad>', '<start>', '<end>', '<unk>', 'a', 'dog', 'runs', "'s", 'ball']);
  const { count, width, tokens, lengths } = tokenizeTexts(['A dog runs!', "The dog's ball.", '', '  ?! ', 'a a a a a a a a'], vocab, 4);
  assert.equal(count, 5);
  assert.equal(width, 4);
  const rows = Array.from({ length: count }, (_, i) => Array.from(tokens.subarray(i * width, (i + 1) * width), Number));
  assert.deepEqual(rows, [
    [4, 5, 6, 0],
    [3, 5, 7, 8], // the → <unk>; dog 's split as PTB does
    [3, 0, 0, 0],
    [3, 0, 0, 0], // only punctuation: no token left
    [4, 4, 4, 4], // cut at maxTokens
  ]);
  assert.deepEqual(Array.from(lengths, Number), [3, 4, 1, 1, 4]);
  // A wider (fixed) graph width only adds padding.
  const wide = tokenizeTexts(['a dog'], vocab, 4, 7);
  assert.deepEqual(Array.from(wide.tokens, Number), [4, 5, 0, 0, 0, 0, 0]);
  assert.throws(() => tokenizeTexts([42 as unknown as string], vocab, 4), (e: PixelInfoError) => e.code === ErrorCodes.INVALID_ARGUMENT);
});

test('embeddings: unit length, equal to the reference computation, batch-independent; cut and empty sentences embed', async (t) => {
  const m = toy(t, { maxTokens: 3 });
  const matcher = await loadMatcher(m.dir, { threads: 1, textBatchSize: 2 });
  t.after(() => matcher.release());
  assert.equal(matcher.dim, 8);
  assert.equal(matcher.name, 'toy-matcher');
  const texts = ['A dog runs on the grass.', 'a dog runs', '', 'xyzzy plugh', 'Two people, playing.'];
  const embedded = await matcher.embedTexts(texts);
  assert.equal(embedded.length, texts.length * 8);
  for (const n of rowNorms(embedded, 8)) assert.ok(Math.abs(n - 1) < 1e-5, `norm ${n}`);
  const row = (i: number) => Array.from(embedded.subarray(i * 8, (i + 1) * 8));
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => Array.from(a).forEach((x, k) => assert.ok(Math.abs(x - b[k]) < 1e-5, `${what}[${k}]: ${x} vs ${b[k]}`));
  close(row(0), row(1), 'cut to 3 tokens = the first 3 words');
  const id = (w: string) => m.words.indexOf(w);
  close(row(0), referenceTextEmbedding(m, [id('a'), id('dog'), id('runs')]), 'reference');
  close(row(2), referenceTextEmbedding(m, [3]), 'empty = <unk>');
  close(row(3), referenceTextEmbedding(m, [3, 3]), 'unknown words');
  // The same sentence alone (another batch, other padding) embeds the same.
  close((await matcher.embedTexts([texts[4]])), row(4), 'alone vs in a batch');
  assert.equal((await matcher.embedTexts([])).length, 0);

  const features = Float32Array.from({ length: 3 * 49 * 2048 }, (_, i) => Math.sin(i * 0.37) + (i % 7) * 0.1);
  const images = await matcher.embedImages(features, 3);
  for (const n of rowNorms(images, 8)) assert.ok(Math.abs(n - 1) < 1e-5, `norm ${n}`);
  close(images.subarray(8, 16), referenceImageEmbedding(m, features.subarray(49 * 2048, 2 * 49 * 2048)), 'image 1');
  await rejectsWith(matcher.embedImages(features.subarray(0, 100), 1), ErrorCodes.INVALID_ARGUMENT, '49 × 2048');
});

test('calibration: logit = a·cosine + b, score = sigmoid(logit); scorePairs pairs texts with their image rows', async (t) => {
  const cal = { a: 10, b: -3 };
  assert.deepEqual(calibrate(0.3, cal), { score: 0.5, logit: 0 });
  const { score, logit } = calibrate(0.5, cal);
  assert.ok(Math.abs(logit - 2) < 1e-12);
  assert.ok(Math.abs(score - 1 / (1 + Math.exp(-2))) < 1e-12);
  assert.ok(Math.abs(calibrate(-1, cal).score - 1 / (1 + Math.exp(13))) < 1e-15);
  assert.equal(calibrate(1, { a: 2000, b: 0 }).score, 1); // no overflow to NaN
  assert.equal(calibrate(-1, { a: 2000, b: 0 }).score, 0);

  const dim = 2;
  const images = Float32Array.from([1, 0, 0, 1]);
  const texts = Float32Array.from([1, 0, 0.6, 0.8, 0.6, 0.8]);
  const scores = scorePairs({ dim, calibration: cal }, images, ['x', 'y', 'z'], texts, [0, 0, 1]);
  assert.deepEqual(scores.map((s) => s.text), ['x', 'y', 'z']);
  const expected = [1, 0.6, 0.8];
  scores.forEach((s, i) => {
    assert.ok(Math.abs(s.cosine - expected[i]) < 1e-6, `cosine ${i}`);
    assert.ok(Math.abs(s.logit - (10 * expected[i] - 3)) < 1e-5, `logit ${i}`);
    assert.ok(s.score > 0 && s.score < 1 && Math.abs(s.score - 1 / (1 + Math.exp(-s.logit))) < 1e-12, `score ${i}`);
  });
  assert.throws(() => scorePairs({ dim, calibration: cal }, images, ['x'], texts, [2]), (e: PixelInfoError) => e.code === ErrorCodes.INVALID_ARGUMENT);

  // The loaded matcher uses its card's calibration.
  const m = toy(t, { calibration: { a: 4, b: 1 } });
  const matcher = await loadMatcher(m.dir, { threads: 1 });
  t.after(() => matcher.release());
  assert.deepEqual(matcher.calibration, { a: 4, b: 1 });
  assert.equal(matcher.calibrate(0.5).logit, 3);
});

test('parseMatcherCard: passes unknown keys through, requires the fields the runtime reads', () => {
  const card = parseMatcherCard({ format: 'pixel-info-matcher', version: 1, embeddingDim: 4, maxTokens: 20, calibration: { a: 1, b: 0, extra: true }, future: 1 });
  assert.equal((card as Record<string, unknown>).future, 1);
  assert.throws(() => parseMatcherCard({ format: 'pixel-info-matcher', version: 1, maxTokens: 20, calibration: { a: 1, b: 0 } }, 'x/model-card.json'), (e: PixelInfoError) =>
    e.code === ErrorCodes.MODEL_CORRUPT && e.message.includes('x/model-card.json') && e.message.includes('embeddingDim'),
  );
});
