import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beamSearch, type Hypothesis } from '../src/decoder/search.js';
import { DEFAULT_GENERATION, RULE_NAMES, resolveGeneration, type RuleName } from '../src/decoder/generation.js';
import { isDanglingEnding } from '../src/decoder/rules.js';
import type { DecoderState, StepModel, StepOutput } from '../src/decoder/step-model.js';
import { ToyReferenceModel, toyFeatures, toyVocabulary, toyWeights } from './fixtures/decoder/toy-decoder.js';

// Ids 0-3 are <pad> <start> <end> <unk>, as in every vocab.json.
const VOCAB = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'b', 'c', 'x', 'y', 'z'];
const ID = Object.fromEntries(VOCAB.map((w, i) => [w, i]));
const V = VOCAB.length;
const REGIONS = 4;
/** Probability of any token a table does not mention. */
const OTHER = 1e-6;

type Next = Record<string, number>;
/** Next-token distribution of one image given the words so far. */
type Policy = (prefix: string[]) => Next;

interface TableState extends DecoderState {
  image: number[];
  prefix: string[][];
}

/**
 * A decoder in plain TS whose next-token probabilities come from a function of (image, words so far), so the
 * best sequences are known by hand. Features carry one float per image: the policy index. Attention is one-hot
 * on region (position mod 4), so tests can tell which step a weight row came from.
 */
class TableModel implements StepModel<TableState> {
  readonly vocabSize = V;
  readonly regions = REGIONS;
  readonly calls: Array<{ rows: number; images: number[] }> = [];
  constructor(private readonly policies: Policy[]) {}

  async init(features: Float32Array, count: number): Promise<TableState> {
    return { rows: count, image: Array.from(features.subarray(0, count)), prefix: Array.from({ length: count }, () => []) };
  }

  async step(tokens: ArrayLike<number> | BigInt64Array, state: TableState): Promise<StepOutput<TableState>> {
    this.calls.push({ rows: state.rows, images: [...state.image] });
    const logProbs = new Float32Array(state.rows * V);
    const alpha = new Float32Array(state.rows * REGIONS);
    const prefix: string[][] = [];
    for (let r = 0; r < state.rows; r++) {
      const token = Number(tokens[r]);
      const words = token === ID['<start>'] ? [] : [...state.prefix[r], VOCAB[token]];
      const next = this.policies[state.image[r]](words);
      for (let v = 0; v < V; v++) logProbs[r * V + v] = Math.log(next[VOCAB[v]] ?? OTHER);
      alpha[r * REGIONS + (words.length % REGIONS)] = 1;
      prefix.push(words);
    }
    return { logProbs, alpha, state: { ...state, prefix } };
  }

  select(state: TableState, rows: ArrayLike<number>): TableState {
    const idx = Array.from(rows);
    return { rows: idx.length, image: idx.map((i) => state.image[i]), prefix: idx.map((i) => state.prefix[i]) };
  }
}

function table(entries: Record<string, Next>): Policy {
  return (prefix) => entries[prefix.join(' ')] ?? { '<end>': 0.9 };
}

/** Every rule but the named ones. */
const without = (...names: RuleName[]): RuleName[] => RULE_NAMES.filter((n) => !names.includes(n));

const imageIds = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
const words = (h: Hypothesis) => h.tokens.map((id) => VOCAB[id]).join(' ');

/** Greedy takes "a" (0.6) and ends with 0.6·0.4 = 0.24; "b c" has 0.4·0.9 = 0.36. */
const GARDEN_PATH = table({
  '': { a: 0.6, b: 0.4 },
  a: { x: 0.4, y: 0.3, z: 0.3 },
  'a x': { '<end>': 1 },
  'a y': { '<end>': 1 },
  'a z': { '<end>': 1 },
  b: { c: 0.9, x: 0.1 },
  'b c': { '<end>': 1 },
});

test('greedy takes the locally best word; beam search finds the more probable caption greedy misses', async () => {
  const model = new TableModel([GARDEN_PATH]);
  const [[greedy]] = await beamSearch(model, imageIds(1), 1, { beamSize: 1 });
  assert.equal(words(greedy), 'a x');
  assert.ok(Math.abs(greedy.logProb - Math.log(0.24)) < 1e-6);
  const [[beam]] = await beamSearch(model, imageIds(1), 1, { beamSize: 2 });
  assert.equal(words(beam), 'b c');
  assert.ok(Math.abs(beam.logProb - Math.log(0.36)) < 1e-6);
  assert.equal(beam.score, beam.logProb, 'lengthPenalty 0: score is the raw log-probability');
});

test('greedy decoding stops at the first <end> argmax and costs one row per step', async () => {
  const model = new TableModel([table({ '': { a: 0.9 }, a: { b: 0.6, '<end>': 0.3 }, 'a b': { '<end>': 0.8 } })]);
  const [[h]] = await beamSearch(model, imageIds(1), 1, { beamSize: 1 });
  assert.equal(words(h), 'a b');
  assert.deepEqual(model.calls.map((c) => c.rows), [1, 1, 1]);
});

test('an image whose beams finish early leaves the batch; the others go on to their own end', async () => {
  const short = table({ '': { a: 0.9 }, a: { '<end>': 0.99 } });
  const long = table({ '': { x: 0.9 }, x: { y: 0.9 }, 'x y': { z: 0.9 }, 'x y z': { c: 0.9 }, 'x y z c': { '<end>': 0.99 } });
  const model = new TableModel([short, long]);
  const [[a], [b]] = await beamSearch(model, imageIds(2), 2, { beamSize: 2 });
  assert.equal(words(a), 'a');
  assert.equal(words(b), 'x y z c');
  // Step 0: one row per image; then K=2 rows per live image; image 0 is done after step 1.
  assert.deepEqual(model.calls.map((c) => c.rows), [2, 4, 2, 2, 2]);
  assert.ok(model.calls.slice(2).every((c) => c.images.every((img) => img === 1)));
});

test('length penalty: 0 prefers the short caption with the higher total, 1 the long one with the higher mean', async () => {
  const policy = table({
    '': { a: 0.55, b: 0.45 },
    a: { '<end>': 0.9 },
    b: { c: 0.9 },
    'b c': { x: 0.9 },
    'b c x': { '<end>': 0.9 },
  });
  const [[raw]] = await beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 2, lengthPenalty: 0 });
  assert.equal(words(raw), 'a');
  const [[normalised]] = await beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 2, lengthPenalty: 1 });
  assert.equal(words(normalised), 'b c x');
  const logProb = Math.log(0.45 * 0.9 * 0.9 * 0.9);
  assert.ok(Math.abs(normalised.logProb - logProb) < 1e-6);
  assert.ok(Math.abs(normalised.score - logProb / 4) < 1e-6, 'score = logProb / (3 words + <end>)^1');
});

test('n-best: distinct hypotheses ordered by score, the first being the 1-best; nBest > beamSize is refused', async () => {
  const policy = table({
    '': { a: 0.5, b: 0.3, c: 0.2 },
    a: { '<end>': 0.5, x: 0.4 },
    'a x': { '<end>': 0.9 },
    b: { '<end>': 0.9 },
    c: { '<end>': 0.95 },
  });
  const [list] = await beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 3, nBest: 3 });
  // 0.27, 0.25, 0.18. "c" (0.19) ended ranked 4th of its step's continuations (after b·end, a·end, a·x), outside
  // the beam, so it is not kept: the fairseq / Hugging Face rule.
  assert.deepEqual(list.map(words), ['b', 'a', 'a x']);
  for (let i = 1; i < list.length; i++) assert.ok(list[i - 1].score >= list[i].score);
  const [[best]] = await beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 3 });
  assert.equal(words(best), words(list[0]));
  await assert.rejects(beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 2, nBest: 3 }), { code: 'INVALID_ARGUMENT' });
});

/** Loves the cycle a b c a b c ... and ends only at maxLength. */
const CYCLE: Policy = (prefix) => {
  const next = ['a', 'b', 'c'][prefix.length % 3];
  return { [next]: 0.9, x: 0.05, y: 0.04, '<end>': 0.001 };
};

test('no-repeat n-gram: no trigram occurs twice unless the guard is off', async () => {
  const [[free]] = await beamSearch(new TableModel([CYCLE]), imageIds(1), 1, { beamSize: 2, maxLength: 8, noRepeatNgram: 0 });
  assert.equal(words(free), 'a b c a b c a b');
  // Greedy shows exactly where the guard bites: after "a b c a b", "c" would repeat "a b c".
  const [[greedy]] = await beamSearch(new TableModel([CYCLE]), imageIds(1), 1, { beamSize: 1, maxLength: 8, noRepeatNgram: 3 });
  assert.equal(words(greedy), 'a b c a b x a b');
  const [[guarded]] = await beamSearch(new TableModel([CYCLE]), imageIds(1), 1, { beamSize: 2, maxLength: 8, noRepeatNgram: 3 });
  assert.equal(guarded.tokens.length, 8);
  const trigrams = guarded.tokens.slice(2).map((_, i) => guarded.tokens.slice(i, i + 3).join(','));
  assert.equal(new Set(trigrams).size, trigrams.length, `repeated trigram in "${words(guarded)}"`);
  assert.ok(guarded.logProb < free.logProb);
});

test('the same word twice in a row and <unk> are blocked by default, allowed on request', async () => {
  const stutter: Policy = (prefix): Next => (prefix.length < 3 ? { a: 0.7, '<unk>': 0.2, b: 0.1 } : { '<end>': 0.9 });
  const [[blocked]] = await beamSearch(new TableModel([stutter]), imageIds(1), 1, { beamSize: 1 });
  assert.equal(words(blocked), 'a b a');
  const [[unk]] = await beamSearch(new TableModel([stutter]), imageIds(1), 1, { beamSize: 1, rules: without('no-unk') });
  assert.equal(words(unk), 'a <unk> a');
  const [[free]] = await beamSearch(new TableModel([stutter]), imageIds(1), 1, { beamSize: 1, rules: without('no-repeated-token'), noRepeatNgram: 0 });
  assert.equal(words(free), 'a a a');
});

test('maxLength caps the words and closes every beam with its <end> probability; no empty caption', async () => {
  // <end> is impossible (log 0) until 4 words are written, and the first word cannot be <end> either.
  const endless: Policy = (prefix): Next =>
    prefix.length === 0 ? { '<end>': 0.9, a: 0.1 } : prefix.length < 4 ? { b: 0.5, c: 0.4, '<end>': 0 } : { '<end>': 0.5, b: 0.3 };
  const [[h]] = await beamSearch(new TableModel([endless]), imageIds(1), 1, { beamSize: 3, maxLength: 4, noRepeatNgram: 0 });
  assert.equal(words(h), 'a b c b');
  assert.ok(Math.abs(h.logProb - Math.log(0.1 * 0.5 * 0.4 * 0.5 * 0.5)) < 1e-6);
  const [[short]] = await beamSearch(new TableModel([endless]), imageIds(1), 1, { beamSize: 3, maxLength: 2, noRepeatNgram: 0 });
  assert.equal(short, undefined, 'no beam can end at 2 words: no hypothesis rather than a made-up one');
});

test('attention: one 4-weight row per word, taken from the step that predicted that word', async () => {
  const [[h]] = await beamSearch(new TableModel([GARDEN_PATH]), imageIds(1), 1, { beamSize: 2, returnAttention: true }, { words: VOCAB });
  assert.deepEqual(h.words, ['b', 'c']);
  assert.equal(h.alphas!.length, 2);
  // Word i is predicted from a prefix of i words: one-hot on region i.
  h.alphas!.forEach((row, i) => assert.deepEqual(Array.from(row), [0, 1, 2, 3].map((r) => (r === i ? 1 : 0))));
  const [[plain]] = await beamSearch(new TableModel([GARDEN_PATH]), imageIds(1), 1, { beamSize: 2 });
  assert.equal(plain.alphas, undefined);
});

test('a batch of images gives exactly the results of one image at a time (table and random toy models)', async () => {
  const policies = [GARDEN_PATH, CYCLE, table({ '': { z: 0.5, y: 0.5 }, z: { '<end>': 0.7 }, y: { a: 0.9 } }), GARDEN_PATH];
  const batched = await beamSearch(new TableModel(policies), imageIds(4), 4, { beamSize: 3, nBest: 2, maxLength: 6 });
  for (let i = 0; i < policies.length; i++) {
    const [alone] = await beamSearch(new TableModel([policies[i]]), imageIds(1), 1, { beamSize: 3, nBest: 2, maxLength: 6 });
    assert.deepEqual(batched[i], alone, `image ${i}`);
  }

  const w = toyWeights();
  const features = toyFeatures(4);
  const rowFloats = 49 * 2048;
  const opts = { beamSize: 3, maxLength: 10 };
  const vocabulary = { words: toyVocabulary(w.dims.vocab) };
  const all = await beamSearch(new ToyReferenceModel(w), features, 4, opts, vocabulary);
  for (let i = 0; i < 4; i++) {
    const [alone] = await beamSearch(new ToyReferenceModel(w), features.slice(i * rowFloats, (i + 1) * rowFloats), 1, opts, vocabulary);
    assert.deepEqual(all[i], alone, `toy image ${i}`);
  }
});

test('greedy search equals a hand-written argmax loop over the random toy model', async () => {
  const w = toyWeights();
  const model = new ToyReferenceModel(w);
  const features = toyFeatures(3);
  const found = await beamSearch(model, features, 3, { beamSize: 1, maxLength: 15, rules: ['no-specials', 'no-empty'] });
  for (let img = 0; img < 3; img++) {
    let state = await model.init(features.slice(img * 49 * 2048, (img + 1) * 49 * 2048), 1);
    let token = 1;
    const tokens: number[] = [];
    let logProb = 0;
    for (let t = 0; t <= 15; t++) {
      const out = await model.step([token], state);
      const lp = Array.from(out.logProbs);
      // pad and start are never words; <end> cannot come first; at 15 words only <end> remains
      const allowed = lp.map((v, id) => (id === 0 || id === 1 || (t === 0 && id === 2) || (t === 15 && id !== 2) ? -Infinity : v));
      token = allowed.indexOf(Math.max(...allowed));
      logProb += lp[token];
      if (token === 2) break;
      tokens.push(token);
      state = out.state;
    }
    assert.deepEqual(found[img][0].tokens, tokens, `image ${img}`);
    assert.ok(Math.abs(found[img][0].logProb - logProb) < 1e-9);
  }
});

test('invalid options are INVALID_ARGUMENT', async () => {
  const model = new TableModel([GARDEN_PATH]);
  for (const bad of [{ beamSize: 0 }, { beamSize: 2.5 }, { maxLength: 0 }, { lengthPenalty: -1 }, { lengthPenalty: NaN }, { noRepeatNgram: -1 }]) {
    await assert.rejects(beamSearch(model, imageIds(1), 1, bad), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad));
  }
});

/** "a dog runs in" is likelier than "a dog runs", and "in" is a preposition: the caption would dangle. */
const DANGLING_POLICY: Policy = (prefix) =>
  (<Record<string, Next>>{
    '': { a: 0.9, b: 0.1 },
    a: { b: 0.9, c: 0.1 },
    'a b': { c: 0.6, x: 0.4 },
    'a b c': { y: 0.7, '<end>': 0.3 },
    'a b c y': { '<end>': 0.95, z: 0.05 },
    'a b x': { '<end>': 0.99 },
  })[prefix.join(' ')] ?? { '<end>': 0.9 };

test('no-dangling-ending: a caption never ends on a word of the dangling lists; the lists come from the config', async () => {
  const model = () => new TableModel([DANGLING_POLICY]);
  const vocabulary = { words: VOCAB };
  // Without the rule the best caption ends on "y".
  const [[free]] = await beamSearch(model(), imageIds(1), 1, { beamSize: 3, rules: without('no-dangling-ending') }, vocabulary);
  assert.equal(words(free), 'a b c y');
  // "y" declared dangling (as a card for another language would): the best caption that does not end on it.
  const danglingWords = { preposition: ['y'] };
  const [[ruled]] = await beamSearch(model(), imageIds(1), 1, { beamSize: 3, danglingWords }, vocabulary);
  assert.equal(words(ruled), 'a b x');
  assert.ok(!isDanglingEnding(ruled.tokens.map((id) => VOCAB[id]), danglingWords));
  // Greedy too, and with several dangling words: it writes on past them.
  const [[greedy]] = await beamSearch(model(), imageIds(1), 1, { beamSize: 1, danglingWords: { x: ['c', 'y'] } }, vocabulary);
  assert.equal(words(greedy), 'a b c y z');
});

test('at maxLength a beam that would dangle is not closed unless no beam of the image may end', async () => {
  // At the cut (2 words) the live beams are "a c" and "a x"; "c" is dangling.
  const policy = table({ '': { a: 0.9, b: 0.1 }, a: { c: 0.5, x: 0.3, '<end>': 0.01 }, b: { y: 0.5 } });
  const [[h]] = await beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 2, maxLength: 2, noRepeatNgram: 0, danglingWords: { d: ['c'] } }, { words: VOCAB });
  assert.equal(words(h), 'a x', 'the dangling "a c" is dropped at the cut, "a x" closes');
  const [[forced]] = await beamSearch(new TableModel([policy]), imageIds(1), 1, { beamSize: 1, maxLength: 2, noRepeatNgram: 0, danglingWords: { d: ['c'] } }, { words: VOCAB });
  assert.equal(words(forced), 'a c', 'greedy has one beam: a caption that dangles beats no caption');
});

test('GenerationConfig: call options > model card decoding > library defaults; every field validated', () => {
  assert.deepEqual(resolveGeneration(), { ...DEFAULT_GENERATION, rules: [...DEFAULT_GENERATION.rules] });
  const card = { beamSize: 5, lengthPenalty: 0.5, danglingWords: { article: ['der', 'die', 'das'] }, somethingNew: true };
  const fromCard = resolveGeneration({}, card);
  assert.equal(fromCard.beamSize, 5);
  assert.equal(fromCard.lengthPenalty, 0.5);
  assert.deepEqual(fromCard.danglingWords, { article: ['der', 'die', 'das'] });
  assert.equal(fromCard.maxLength, DEFAULT_GENERATION.maxLength);
  const call = resolveGeneration({ beamSize: 2, nBest: 2, returnAttention: true }, card);
  assert.equal(call.beamSize, 2);
  assert.equal(call.nBest, 2);
  assert.equal(call.returnAttention, true);
  assert.equal(call.lengthPenalty, 0.5);
  assert.throws(() => resolveGeneration({ nBest: 6 }, card), { code: 'INVALID_ARGUMENT', message: /nBest/ });
  assert.throws(() => resolveGeneration({ rules: ['no-such-rule' as RuleName] }), { code: 'INVALID_ARGUMENT', message: /rules/ });
  assert.throws(() => resolveGeneration({}, { beamSize: 'three' }), { code: 'MODEL_CORRUPT', message: /beamSize/ });
});
