import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildCalibrationPairs,
  drawIndex,
  mulberry32,
  reliability,
  retrievalRecall,
  similarityMatrix,
} from '../src/eval/match-metrics.js';
import { parseCrowdFlower, parseTokenFileById } from '../src/eval/match-crowdflower.js';
import { captionLogProbs } from '../src/decoder/likelihood.js';
import { beamSearch } from '../src/decoder/search.js';
import type { DecoderState, StepModel, StepOutput } from '../src/decoder/step-model.js';
import { registerEvalMatch } from '../src/cli/commands/eval-match.js';
import { defaultMatcherDir } from '../src/pipeline/captioner.js';
import { DATA_DIR, FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { runCommand } from './helpers/cli.js';

// ------------------------------------------------------------------------------------------------------------
// Pure parts

test('mulberry32: the documented outputs (the Python mirror in the comment gives the same)', () => {
  const next = mulberry32(42);
  assert.deepEqual([next(), next(), next(), next(), next()], [2581720956, 1925393290, 3661312704, 2876485805, 750819978]);
  const other = mulberry32(0xdeadbeef);
  assert.deepEqual([other(), other(), other()], [4043151706, 1147597007, 3315858022]);
  assert.equal(drawIndex(0, 10), 0);
  assert.equal(drawIndex(4294967295, 10), 9);
  assert.equal(drawIndex(2 ** 31, 5000), 2500);
});

/** Unit vectors at these angles (radians) in 2-D. */
const at = (...angles: number[]) => Float32Array.from(angles.flatMap((a) => [Math.cos(a), Math.sin(a)]));

test('retrievalRecall on a hand-made embedding set: ranks, recall@K, median, ties against the query', () => {
  // 3 images at 0, 1, 2 rad; texts (2 per image) placed so the ranks are known:
  // text 0 (image 0) at 0.1: nearest image 0 → rank 1;  text 1 (image 0) at 0.9: image 1 nearer → rank 2
  // text 2 (image 1) at 1.0: rank 1;                    text 3 (image 1) at 2.1: image 2 nearer → rank 2
  // text 4 (image 2) at 0.2: images 0 and 1 nearer → rank 3;  text 5 (image 2) at 2.0 → rank 1
  const images = at(0, 1, 2);
  const texts = at(0.1, 0.9, 1.0, 2.1, 0.2, 2.0);
  const textImage = [0, 0, 1, 1, 2, 2];
  const { sims, images: n, texts: m } = similarityMatrix(images, texts, 2);
  assert.equal(n, 3);
  assert.equal(m, 6);
  const r = retrievalRecall(sims, n, m, textImage);
  // text → image ranks [1, 2, 1, 2, 3, 1]
  assert.ok(Math.abs(r.textToImage.r1 - 50) < 1e-9);
  assert.ok(Math.abs(r.textToImage.r5 - 100) < 1e-9);
  assert.equal(r.textToImage.medianRank, 1); // median of [1,1,1,2,2,3] = 1.5 → floor
  assert.ok(Math.abs(r.textToImage.meanRank - 10 / 6) < 1e-9);
  // image → text: image 0's best own text is text 0 (cos 0.1) → rank 1; image 1's best is text 2 (at 1.0) → 1;
  // image 2 (at 2): own best text 5 (at 2.0) → 1
  assert.deepEqual([r.imageToText.r1, r.imageToText.medianRank], [100, 1]);
  // Image 2 moved to 0.1, exactly where text 0 (image 0's) lies:
  const tie = at(0, 1, 0.1);
  const t2 = retrievalRecall(similarityMatrix(tie, texts, 2).sims, 3, 6, textImage);
  // image 2's best own text (at 0.2) now ranks below text 0 (cosine 1) → rank 2; images 0 and 1 keep rank 1.
  assert.equal(t2.imageToText.r1, (100 * 2) / 3);
  // A constant scorer ranks every match last, never first.
  const flat = retrievalRecall(new Float32Array(18).fill(0.5), 3, 6, textImage);
  assert.equal(flat.textToImage.r1, 0);
  assert.equal(flat.textToImage.medianRank, 3);
  assert.equal(flat.imageToText.medianRank, 5); // 4 other texts tie with the best own one
  assert.equal(flat.rsum, flat.textToImage.r1 + flat.textToImage.r5 + flat.textToImage.r10 + flat.imageToText.r1 + flat.imageToText.r5 + flat.imageToText.r10);
});

test('buildCalibrationPairs: deterministic, the documented construction, equal to an independent Python mirror', () => {
  const textImage = Array.from({ length: 24 }, (_, j) => Math.floor(j / 4)); // 6 images × 4 texts
  const cosine = (i: number, j: number) => ((i * 7 + j * 3) % 5) / 5; // many ties
  const a = buildCalibrationPairs(textImage, 6, cosine, { seed: 42, hardNegatives: true });
  const b = buildCalibrationPairs(textImage, 6, cosine, { seed: 42, hardNegatives: true });
  assert.deepEqual(a, b);
  assert.equal(a.length, 48);
  // Computed by a Python mirror written from buildCalibrationPairs' doc comment alone (r random, h hard), seed 42.
  const expected = [
    [0, 14, 'r'], [0, 10, 'r'], [0, 8, 'h'], [0, 13, 'h'], [1, 20, 'r'], [1, 16, 'r'], [1, 9, 'h'], [1, 14, 'h'],
    [2, 4, 'r'], [2, 12, 'r'], [2, 0, 'h'], [2, 5, 'h'], [3, 6, 'r'], [3, 20, 'r'], [3, 1, 'h'], [3, 11, 'h'],
    [4, 11, 'r'], [4, 5, 'r'], [4, 2, 'h'], [4, 7, 'h'], [5, 17, 'r'], [5, 7, 'r'], [5, 3, 'h'], [5, 8, 'h'],
  ];
  assert.deepEqual(
    a.filter((p) => p.label === 0).map((p) => [p.image, p.text, p.kind[0]]),
    expected,
  );
  for (let i = 0; i < 6; i++) {
    const mine = a.filter((p) => p.image === i);
    assert.deepEqual(mine.filter((p) => p.label === 1).map((p) => p.text), [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]);
    const negatives = mine.filter((p) => p.label === 0);
    assert.equal(negatives.length, 4);
    assert.equal(new Set(negatives.map((p) => p.text)).size, 4, 'no text twice');
    assert.ok(negatives.every((p) => textImage[p.text] !== i), 'negatives are other images’ texts');
    // Hard negatives: nothing left out (other image, not random) beats them.
    const hard = negatives.filter((p) => p.kind === 'hard');
    const taken = new Set(negatives.map((p) => p.text));
    const worstHard = Math.min(...hard.map((p) => cosine(i, p.text)));
    for (let j = 0; j < 24; j++) if (textImage[j] !== i && !taken.has(j)) assert.ok(cosine(i, j) <= worstHard);
  }
  // 5 captions per image: 3 random + 2 hard; another seed changes only the random picks' draws.
  const five = Array.from({ length: 50 }, (_, j) => Math.floor(j / 5));
  const p5 = buildCalibrationPairs(five, 10, (i, j) => Math.sin(i + j * j), { hardNegatives: true });
  assert.deepEqual(
    ['own', 'random', 'hard'].map((k) => p5.filter((p) => p.kind === k).length),
    [50, 30, 20],
  );
  const other = buildCalibrationPairs(five, 10, (i, j) => Math.sin(i + j * j), { seed: 7, hardNegatives: true });
  assert.notDeepEqual(other.filter((p) => p.kind === 'random'), p5.filter((p) => p.kind === 'random'));
  // The default (the matcher's calibration): every negative random, 5 of them for 5 captions.
  const plain = buildCalibrationPairs(five, 10, (i, j) => Math.sin(i + j * j));
  assert.deepEqual(['own', 'random', 'hard'].map((k) => plain.filter((p) => p.kind === k).length), [50, 50, 0]);
  // Two images of one caption each: one negative each, random (k = 1 → 0 hard, 1 random), the only other text.
  assert.deepEqual(
    buildCalibrationPairs([0, 1], 2, () => 0).map((p) => [p.image, p.text, p.label, p.kind]),
    [[0, 0, 1, 'own'], [0, 1, 0, 'random'], [1, 1, 1, 'own'], [1, 0, 0, 'random']],
  );
});

test('reliability: bins, observed rates and ECE by hand', () => {
  const r = reliability([0.05, 0.15, 0.15, 0.95, 1.0, 0.55], [0, 1, 0, 1, 1, 0]);
  assert.equal(r.bins.length, 10);
  assert.deepEqual(r.bins.map((b) => b.count), [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
  assert.equal(r.bins[2].meanScore, null);
  assert.ok(Math.abs(r.bins[1].rate! - 0.5) < 1e-12);
  assert.ok(Math.abs(r.bins[9].meanScore! - 0.975) < 1e-12);
  const ece = (1 / 6) * 0.05 + (2 / 6) * Math.abs(0.15 - 0.5) + (1 / 6) * 0.55 + (2 / 6) * 0.025;
  assert.ok(Math.abs(r.ece - ece) < 1e-12, `${r.ece} vs ${ece}`);
  assert.throws(() => reliability([1.5], [1]), /outside \[0, 1\]/);
});

test('parseCrowdFlower and the token file by id', () => {
  const rows = parseCrowdFlower('a.jpg\tb.jpg#2\t0.666666666666667\t2\t1\n\nc.jpg\tc.jpg#0\t1\t3\t0\n', 'cf.txt');
  assert.deepEqual(rows.map((r) => [r.line, r.image, r.captionImage, r.captionId, r.yes, r.no]), [
    [1, 'a.jpg', 'b.jpg', 'b.jpg#2', 2, 1],
    [3, 'c.jpg', 'c.jpg', 'c.jpg#0', 3, 0],
  ]);
  assert.throws(() => parseCrowdFlower('a.jpg\tb.jpg#2\t2\t1\t0', 'cf.txt'), /cf.txt: line 1: % yes/);
  assert.throws(() => parseCrowdFlower('a.jpg\tb.jpg#2\t0.5', 'cf.txt'), /5 tab-separated fields/);
  const byId = parseTokenFileById('b.jpg#0\tA dog .\nb.jpg#1\tTwo cats\n');
  assert.equal(byId.get('b.jpg#1'), 'Two cats');
});

// ------------------------------------------------------------------------------------------------------------
// Teacher-forced likelihood on a toy decoder

interface ToyState extends DecoderState {
  image: number[];
  /** Sum of the tokens fed so far, per row (so the history matters). */
  history: number[];
}

/** A tiny decoder: log-softmax of a fixed function of (image, fed token, history); V = 7, token ids 4..6 are words. */
class ToyModel implements StepModel<ToyState> {
  readonly vocabSize = 7;
  readonly regions = 1;
  calls: number[] = [];
  async init(_features: Float32Array, count: number): Promise<ToyState> {
    return { rows: count, image: Array.from({ length: count }, (_, i) => i), history: new Array(count).fill(0) };
  }
  async step(tokens: ArrayLike<number>, state: ToyState): Promise<StepOutput<ToyState>> {
    this.calls.push(state.rows);
    const V = this.vocabSize;
    const logProbs = new Float32Array(state.rows * V);
    const history = state.history.map((h, r) => h * 1.3 + Number(tokens[r]) + 1);
    for (let r = 0; r < state.rows; r++) {
      const logits = Array.from({ length: V }, (_, v) => Math.sin(state.image[r] * 2.1 + history[r] * 0.37 + v * 1.7) * 2);
      logits[0] = -30; // <pad>
      logits[1] = -30; // <start>
      logits[3] = -30; // <unk>
      const max = Math.max(...logits);
      const z = Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0)) + max;
      logits.forEach((l, v) => (logProbs[r * V + v] = l - z));
    }
    return { logProbs, alpha: new Float32Array(state.rows).fill(1), state: { rows: state.rows, image: state.image, history } };
  }
  select(state: ToyState, rows: ArrayLike<number>): ToyState {
    const idx = Array.from(rows);
    return { rows: idx.length, image: idx.map((i) => state.image[i]), history: idx.map((i) => state.history[i]) };
  }
}

test('captionLogProbs: batched rows of mixed lengths equal each row run alone; rows that ended are dropped', async () => {
  const model = new ToyModel();
  const rows = [
    { image: 0, tokens: [4, 5, 6, 4, 4, 5, 6] },
    { image: 1, tokens: [] },
    { image: 2, tokens: [6] },
    { image: 0, tokens: [5, 5] },
    { image: 1, tokens: [4, 6, 5] },
  ];
  const batched = await captionLogProbs(model, new Float32Array(3), 3, rows);
  assert.ok(model.calls.length <= 8, 'one step call per time step');
  assert.ok(model.calls[model.calls.length - 1] < rows.length, `finished rows dropped: ${model.calls}`);
  for (const [r, row] of rows.entries()) {
    const alone = new ToyModel();
    // direct: feed <start>, then the words, summing the targets
    let state = alone.select(await alone.init(new Float32Array(3), 3), [row.image]);
    let fed = 1;
    let sum = 0;
    for (const target of [...row.tokens, 2]) {
      const out = await alone.step([fed], state);
      sum += out.logProbs[target];
      state = out.state;
      fed = target;
    }
    assert.ok(Math.abs(batched[r].logProb - sum) < 1e-5, `row ${r}: ${batched[r].logProb} vs ${sum}`);
    assert.equal(batched[r].predicted, row.tokens.length + 1);
    assert.ok(Math.abs(batched[r].meanLogProb - sum / (row.tokens.length + 1)) < 1e-5);
  }
  await assert.rejects(captionLogProbs(model, new Float32Array(3), 3, [{ image: 3, tokens: [4] }]), /refers to image 3/);
  await assert.rejects(captionLogProbs(model, new Float32Array(3), 3, [{ image: 0, tokens: [9] }]), /outside the vocabulary/);
});

test('captionLogProbs of the beam search’s own hypotheses equals their logProb (toy decoder)', async () => {
  const model = new ToyModel();
  const hyps = await beamSearch(model, new Float32Array(3), 3, { beamSize: 3, nBest: 3, maxLength: 6, rules: [] });
  const rows = hyps.flatMap((list, image) => list.map((h) => ({ image, tokens: h.tokens, logProb: h.logProb })));
  assert.ok(rows.length >= 6);
  const got = await captionLogProbs(model, new Float32Array(3), 3, rows);
  rows.forEach((row, k) => assert.ok(Math.abs(got[k].logProb - row.logProb) < 1e-4, `${got[k].logProb} vs ${row.logProb}`));
});

// ------------------------------------------------------------------------------------------------------------
// The real models

const DECODER_DIR = join(import.meta.dirname, '..', 'models', 'flickr8k-sat');
const HAVE_DECODER = existsSync(join(DECODER_DIR, 'decoder_step.onnx'));

test('real decoder: the teacher-forced log-probability of each beam-search caption equals the Captioner’s logProb', { skip: !(HAVE_FLICKR8K && HAVE_DECODER) && 'no ../shared or no decoder' }, async () => {
  const { ImageEncoder } = await import('../src/encoder/index.js');
  const { loadImage, writeCaffeTensor, IMAGE_FLOATS } = await import('../src/image/index.js');
  const { Captioner } = await import('../src/pipeline/captioner.js');
  const { loadDecoder, readModelDir } = await import('../src/decoder/model-dir.js');
  const names = ['1000268201_693b08cb0e.jpg', '1001773457_577c3a7d70.jpg', '101654506_8eb26cfb60.jpg'];
  const encoder = await ImageEncoder.load({ outputs: ['features'] });
  // both fp32: the likelihood is the fp32 decoder's (an int8 caption's logProb differs by the rounding)
  const captioner = await Captioner.load({ modelDir: DECODER_DIR, encoder, int8Decoder: false });
  const model = await readModelDir(DECODER_DIR);
  const decoder = await loadDecoder(model);
  try {
    const batch = new Float32Array(names.length * IMAGE_FLOATS);
    for (const [i, name] of names.entries()) writeCaffeTensor((await loadImage(join(FLICKR8K_IMAGES, name))).pixels, batch, i);
    const { features } = await encoder.encode(batch, names.length);
    const captions = await captioner.captionFeatures(features!, names.length, { beamSize: 3, nBest: 3 });
    const rows = captions.flatMap((list, image) => list.map((c) => ({ image, tokens: c.tokens.map((w) => model.vocabulary.idOf(w)), logProb: c.logProb })));
    assert.equal(rows.length, 9);
    const got = await captionLogProbs(decoder, features!, names.length, rows);
    rows.forEach((row, k) => assert.ok(Math.abs(got[k].logProb - row.logProb) < 1e-4, `caption ${k}: ${got[k].logProb} vs ${row.logProb}`));
    // and it is not trivially equal: a different caption of the same image scores differently
    const swapped = await captionLogProbs(decoder, features!, names.length, [{ image: 1, tokens: rows[0].tokens }]);
    assert.ok(Math.abs(swapped[0].logProb - rows[0].logProb) > 1e-3);
  } finally {
    await decoder.release();
    await captioner.release();
    await encoder.release();
  }
});

// ------------------------------------------------------------------------------------------------------------
// End to end

const HAVE_MATCHER = existsSync(join(defaultMatcherDir(), 'image.onnx'));

test('eval-match end to end on 3 test images of the real dataset: JSON, files, sane numbers', { skip: !(HAVE_FLICKR8K && HAVE_MATCHER && HAVE_DECODER) && 'no ../shared or no matcher' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-eval-match-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out');
  const run = await runCommand(registerEvalMatch, ['eval-match', '--data-dir', DATA_DIR, '--split', 'test', '--limit', '3', '--json', '--no-progress', '--out', out]);
  assert.equal(run.code, 0, run.stderr.join('\n'));
  const record = JSON.parse(run.stdout[run.stdout.length - 1]);
  assert.equal(record.format, 'pixel-info-eval-match');
  assert.equal(record.retrieval.images, 3);
  assert.equal(record.retrieval.texts, 15);
  assert.equal(record.retrieval.textToImage.r5, 100, 'with 3 images every text finds its image in the top 3');
  for (const v of [record.retrieval.textToImage.r1, record.retrieval.imageToText.r1, record.retrieval.imageToText.r10]) assert.ok(v >= 0 && v <= 100);
  const a = record.agreement;
  assert.equal(a.rows, 47830);
  assert.ok(a.selected > 60 && a.selected < 400, `${a.selected} rows of 3 images`);
  assert.equal(a.used, a.selected);
  assert.deepEqual(a.skipped, { missingImage: 0, missingCaption: 0 });
  assert.equal(a.images, 3);
  for (const tauResult of [a.matcher, a.likelihood, a.outsideTrain.matcher]) assert.ok(tauResult.tauB100 >= -100 && tauResult.tauB100 <= 100);
  assert.equal(a.outsideTrain.rows, a.used, 'the judged images and captions are all test images');
  assert.ok(a.meanLogProb < 0);
  assert.equal(a.published.values['CLIP-S'], 34.4);
  assert.equal(record.calibration.pairs, 30);
  assert.deepEqual([record.calibration.positives, record.calibration.randomNegatives, record.calibration.hardNegatives], [15, 15, 0]);
  assert.equal(record.calibration.bins.reduce((s: number, b: { count: number }) => s + b.count, 0), 30);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).retrieval, record.retrieval);
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(report, /## Retrieval/);
  assert.match(report, /Hessel/);
  assert.match(report, /Expected calibration error/);
});

test('eval-match: a missing matcher folder is a usage error (exit 2) naming it', { skip: !HAVE_FLICKR8K && 'no ../shared' }, async () => {
  const run = await runCommand(registerEvalMatch, ['eval-match', '--data-dir', DATA_DIR, '--limit', '1', '--no-progress', '--no-likelihood', '--matcher', '/nonexistent/matcher']);
  assert.equal(run.code, 2, run.stderr.join('\n'));
  assert.match(run.stderr.join('\n'), /eval-match: MODEL_NOT_FOUND: .*nonexistent/);
});
