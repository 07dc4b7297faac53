import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beamSearch, type Hypothesis } from '../src/decoder/search.js';
import { checkSameVocabulary, EnsembleStepModel } from '../src/decoder/ensemble.js';
import { loadDecoder, readModelDir } from '../src/decoder/model-dir.js';
import type { LoadedDecoder } from '../src/decoder/registry.js';
import type { DecoderState, StepModel, StepOutput } from '../src/decoder/step-model.js';
import { Vocabulary } from '../src/text/vocabulary.js';
import { resolveModelSpec, PACKAGE_MODELS } from '../src/pipeline/models.js';
import { modelIdOf } from '../src/library/model-id.js';
import { PixelInfoError } from '../src/errors.js';
import { ToyReferenceModel, SMALL_DIMS, toyFeatures, toyVocabulary, toyWeights, writeToyModelDir } from './fixtures/decoder/toy-decoder.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// A table decoder (as in decoder-search.test.ts): next-word probabilities from the words so far.
const VOCAB = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'b', 'c', 'x'];
const ID = Object.fromEntries(VOCAB.map((w, i) => [w, i]));
const V = VOCAB.length;
const R = 2;
type Next = Record<string, number>;
interface TableState extends DecoderState {
  prefix: string[][];
}

class TableModel implements LoadedDecoder {
  readonly vocabSize = V;
  readonly regions = R;
  readonly featureDim = 1;
  released = false;
  constructor(
    private readonly table: Record<string, Next>,
    private readonly attendTo = 0,
  ) {}
  async init(_features: Float32Array, count: number): Promise<TableState> {
    return { rows: count, prefix: Array.from({ length: count }, () => []) };
  }
  async step(tokens: ArrayLike<number> | BigInt64Array, state: TableState): Promise<StepOutput<TableState>> {
    const logProbs = new Float32Array(state.rows * V);
    const alpha = new Float32Array(state.rows * R);
    const prefix: string[][] = [];
    for (let r = 0; r < state.rows; r++) {
      const token = Number(tokens[r]);
      const words = token === ID['<start>'] ? [] : [...state.prefix[r], VOCAB[token]];
      const next = this.table[words.join(' ')] ?? { '<end>': 1 };
      for (let v = 0; v < V; v++) logProbs[r * V + v] = Math.log(next[VOCAB[v]] ?? 1e-6);
      alpha[r * R + this.attendTo] = 1;
      prefix.push(words);
    }
    return { logProbs, alpha, state: { rows: state.rows, prefix } };
  }
  select(state: TableState, rows: ArrayLike<number>): TableState {
    const idx = Array.from(rows);
    return { rows: idx.length, prefix: idx.map((i) => state.prefix[i]) };
  }
  async release(): Promise<void> {
    this.released = true;
  }
}

const words = (h: Hypothesis) => h.tokens.map((id) => VOCAB[id]).join(' ');
const greedy = { beamSize: 1, rules: [] as never[] };

// A prefers "a", B prefers "b"; both give "c" 0.4. The mixture gives c 0.4 > a 0.3 = b 0.3.
const A = { '': { a: 0.6, c: 0.4 }, a: { '<end>': 1 }, c: { '<end>': 1 } };
const B = { '': { b: 0.6, c: 0.4 }, b: { '<end>': 1 }, c: { '<end>': 1 } };

test('an ensemble picks what the mixture of its members prefers, not what either member does', async () => {
  const [[a]] = await beamSearch(new TableModel(A), new Float32Array(1), 1, greedy);
  const [[b]] = await beamSearch(new TableModel(B), new Float32Array(1), 1, greedy);
  assert.equal(words(a), 'a');
  assert.equal(words(b), 'b');
  for (const combine of ['mean-prob', 'mean-logprob'] as const) {
    const ensemble = new EnsembleStepModel([new TableModel(A), new TableModel(B)], { combine });
    const [[h]] = await beamSearch(ensemble, new Float32Array(1), 1, greedy);
    assert.equal(words(h), 'c', combine);
  }
  // Weights move the choice back towards a member.
  const leaning = new EnsembleStepModel([new TableModel(A), new TableModel(B)], { weights: [3, 1] });
  const [[w]] = await beamSearch(leaning, new Float32Array(1), 1, greedy);
  assert.equal(words(w), 'a'); // 0.75·0.6 = 0.45 > c 0.4
});

test('combined log-probabilities: the mixture, or the renormalised weighted mean of log-probabilities', async () => {
  const mix = new EnsembleStepModel([new TableModel(A, 0), new TableModel(B, 1)], { weights: [1, 3] });
  const out = await mix.step([ID['<start>']], await mix.init(new Float32Array(1), 1));
  const p = (w: string, pa: number, pb: number) => assert.ok(Math.abs(out.logProbs[ID[w]] - Math.log(0.25 * pa + 0.75 * pb)) < 1e-6, w);
  p('a', 0.6, 1e-6);
  p('b', 1e-6, 0.6);
  p('c', 0.4, 0.4);
  // attention: the weighted mean of the members' (A attends region 0, B region 1)
  assert.deepEqual(Array.from(out.alpha), [0.25, 0.75]);

  const poe = new EnsembleStepModel([new TableModel(A), new TableModel(B)], { combine: 'mean-logprob' });
  const o2 = await poe.step([ID['<start>']], await poe.init(new Float32Array(1), 1));
  let total = 0;
  for (let v = 0; v < V; v++) total += Math.exp(o2.logProbs[v]);
  assert.ok(Math.abs(total - 1) < 1e-5, `renormalised: Σp = ${total}`);
  // c: both 0.4; a: sqrt(0.6·1e-6): so p(c)/p(a) = 0.4 / sqrt(0.6e-6)
  assert.ok(Math.abs(o2.logProbs[ID.c] - o2.logProbs[ID.a] - (Math.log(0.4) - 0.5 * Math.log(0.6e-6))) < 1e-4);
});

test('bad ensembles are refused, naming the member and the reason', async () => {
  class Other extends TableModel {
    override readonly vocabSize = V + 1;
  }
  assert.throws(() => new EnsembleStepModel([new TableModel(A), new Other(B)], { names: ['one', 'two'] }), (e: PixelInfoError) => e.code === 'INVALID_ARGUMENT' && /vocabSize.*one has 8, two has 9/.test(e.message));
  assert.throws(() => new EnsembleStepModel([new TableModel(A), new TableModel(B)], { weights: [1] }), /2 non-negative numbers/);
  assert.throws(() => new EnsembleStepModel([new TableModel(A), new TableModel(B)], { weights: [0, 0] }), /not all 0/);
  assert.throws(() => new EnsembleStepModel([], {}), /at least one/);
  const v1 = Vocabulary.fromJSON(toyVocabulary(40));
  const other = toyVocabulary(40);
  [other[10], other[11]] = [other[11], other[10]];
  assert.throws(() => checkSameVocabulary([v1, Vocabulary.fromJSON(other)], ['x', 'y']), /word 10 is "runs" in x but "running" in y/);
  const members = [new TableModel(A), new TableModel(B)];
  await new EnsembleStepModel(members).release();
  assert.ok(members.every((m) => m.released));
});

/** ToyReferenceModel as a LoadedDecoder. */
function reference(seed: number): LoadedDecoder {
  const ref = new ToyReferenceModel(toyWeights(SMALL_DIMS, seed)) as StepModel<DecoderState>;
  return Object.assign(ref, { featureDim: SMALL_DIMS.featureDim, release: async () => {} }) as LoadedDecoder;
}

test('an ensemble of two ONNX decoders searches exactly like the same ensemble of their plain-TS references (beam 3, 4 images)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'px-ensemble-'));
  try {
    const members: LoadedDecoder[] = [];
    for (const seed of [7, 8]) members.push(await loadDecoder(await readModelDir(writeToyModelDir(join(dir, `m${seed}`), toyWeights(SMALL_DIMS, seed))), { threads: 1 }));
    const onnx = new EnsembleStepModel(members);
    const ref = new EnsembleStepModel([reference(7), reference(8)]);
    const features = toyFeatures(4);
    const vocabulary = { words: toyVocabulary(SMALL_DIMS.vocab) };
    const options = { beamSize: 3, nBest: 3, maxLength: 8 };
    const got = await beamSearch(onnx, features, 4, options, vocabulary);
    const want = await beamSearch(ref, features, 4, options, vocabulary);
    assert.deepEqual(got.map((hs) => hs.map((h) => h.tokens)), want.map((hs) => hs.map((h) => h.tokens)));
    for (let i = 0; i < 4; i++) for (let k = 0; k < got[i].length; k++) assert.ok(Math.abs(got[i][k].logProb - want[i][k].logProb) < 1e-4);
    assert.ok(got.every((hs) => hs.length >= 1));
    // Independently of the ensemble's row bookkeeping: each hypothesis' log-probability is the sum over its words
    // (and <end>) of log mean_k p_k(word | image, words so far), teacher-forcing each member alone on that image.
    const refs = [reference(7), reference(8)];
    for (let i = 0; i < 4; i++) {
      const one = features.subarray(i * SMALL_DIMS.regions * SMALL_DIMS.featureDim, (i + 1) * SMALL_DIMS.regions * SMALL_DIMS.featureDim);
      for (const h of got[i]) {
        const states = await Promise.all(refs.map((m) => m.init(one, 1)));
        let token = 1; // <start>
        let total = 0;
        for (const next of [...h.tokens, 2]) {
          const outs = await Promise.all(refs.map((m, k) => m.step([token], states[k])));
          total += Math.log((Math.exp(outs[0].logProbs[next]) + Math.exp(outs[1].logProbs[next])) / 2);
          outs.forEach((o, k) => (states[k] = o.state));
          token = next;
        }
        assert.ok(Math.abs(total - h.logProb) < 1e-4, `image ${i} "${h.tokens.join(' ')}": ${h.logProb} vs teacher-forced ${total}`);
      }
    }
    // and it differs from each member alone on at least one image (otherwise the test would not see the combination)
    const alone = await beamSearch(members[0], features, 4, options, vocabulary);
    assert.notDeepEqual(alone.map((hs) => hs[0].tokens), got.map((hs) => hs[0].tokens));
    await onnx.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('model specs: names of shipped models, directories, comma-separated ensembles; ensemble ids join the members\'', async () => {
  assert.deepEqual(resolveModelSpec('flickr8k-sat'), [join(PACKAGE_MODELS, 'flickr8k-sat')]);
  const dir = mkdtempSync(join(tmpdir(), 'px-spec-'));
  try {
    const a = writeToyModelDir(join(dir, 'a'), toyWeights(SMALL_DIMS, 7));
    const b = writeToyModelDir(join(dir, 'b,with-comma'), toyWeights(SMALL_DIMS, 8));
    assert.deepEqual(resolveModelSpec(`${a}, flickr8k-sat`), [a, join(PACKAGE_MODELS, 'flickr8k-sat')]);
    assert.deepEqual(resolveModelSpec(b), [b], 'an existing directory is one model even with a comma in its name');
    assert.deepEqual(resolveModelSpec([a, b]), [a, b]);
    assert.throws(() => resolveModelSpec(' , '), /no decoder model/);
    const [idA, idB, idAB] = [await modelIdOf(a), await modelIdOf([b]), await modelIdOf([a, b])];
    assert.equal(idAB, `${idA},${idB}`);
    assert.match(idA, /^toy@[0-9a-f]{12}$/);
    // the CLI: a mismatched member is a one-line error naming it (exit 1), before any image is read
    writeFileSync(join(dir, 'img.jpg'), 'not an image');
    const small = writeToyModelDir(join(dir, 'small'), toyWeights({ ...SMALL_DIMS, vocab: 36 }, 9));
    const r = await promisify(execFile)(process.execPath, ['bin/pixel-info.js', 'caption', join(dir, 'img.jpg'), '--model', `${a},${small}`, '--no-progress', '--no-matcher']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ensemble members must share a vocabulary: .*\/a has 40 words, .*\/small has 36/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
