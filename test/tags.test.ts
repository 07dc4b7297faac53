/**
 * ImageNet-guided tags: the class → word map (src/encoder/imagenet-tags.json, scripts/build-imagenet-tags.py), tags
 * from logits (summed per word, thresholded), guided beam search (favoured words, renormalised, once per tag, the
 * model's own logProb kept) and the captioner's second, guided search for captions that miss their tags.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { imagenetTagClasses, namesTag, tagForms, tagNames, tagTokenIds, tagsFromLogits, DEFAULT_TAG_THRESHOLD } from '../src/encoder/tags.js';
import { beamSearch } from '../src/decoder/search.js';
import { DEFAULT_GENERATION, resolveGeneration } from '../src/decoder/generation.js';
import type { DecoderState, StepModel, StepOutput } from '../src/decoder/step-model.js';
import type { LoadedDecoder } from '../src/decoder/registry.js';
import { decodeFeatures } from '../src/pipeline/core.js';
import { Vocabulary } from '../src/text/vocabulary.js';

const classes = imagenetTagClasses();
const byLabel = (label: string) => classes.findIndex((c) => c.label === label);

test('the map: 1000 classes in wnid order; the spot checks of the issue; every tag is a word of the shipped vocabulary', () => {
  assert.equal(classes.length, 1000);
  const wnids = classes.map((c) => c.wnid);
  assert.ok(wnids.every((w) => /^n\d{8}$/.test(w)));
  assert.deepEqual([...wnids].sort(), wnids, 'Keras orders the classes by wnid');
  assert.equal(new Set(wnids).size, 1000);
  const tagOf = (label: string) => classes[byLabel(label)]?.tag;
  assert.equal(tagOf('Egyptian cat'), 'cat');
  assert.equal(tagOf('tabby'), 'cat');
  assert.equal(tagOf('espresso'), 'coffee');
  assert.equal(tagOf('golden retriever'), 'dog');
  assert.equal(tagOf('Chihuahua'), 'dog');
  assert.equal(tagOf('moped'), 'motorcycle'); // WordNet: moped → minibike → motorcycle (no link to scooter)
  assert.equal(tagOf('motor scooter'), 'scooter');
  assert.equal(tagOf('mountain bike'), 'bicycle');
  assert.equal(tagOf('soccer ball'), 'ball');
  assert.equal(tagOf('kite'), 'bird', 'the bird of prey, not the toy');
  assert.equal(tagOf('crane'), 'bird'); // the first "crane" (134) is the bird...
  assert.equal(classes[517].tag, 'crane'); // ...the second the machine
  assert.equal(tagOf('lion'), null, 'big cats are not "cat"');
  assert.deepEqual(classes[byLabel('golden retriever')].path, ['golden retriever', 'retriever', 'sporting dog', 'hunting dog', 'dog']);
  assert.equal(classes[byLabel('Egyptian cat')].wnid, 'n02124075');

  const vocab = new Set(JSON.parse(readFileSync(new URL('../models/flickr8k-sat/vocab.json', import.meta.url), 'utf8')) as string[]);
  for (const c of classes) {
    if (c.tag === null) continue;
    assert.ok(vocab.has(c.tag), `${c.label} → ${c.tag}`);
    for (const form of tagForms(c.tag)) assert.ok(vocab.has(form), form);
    assert.ok(tagNames(c.tag).includes(c.tag));
  }
  assert.deepEqual(tagForms('dog'), ['dog', 'dogs']);
  assert.ok(namesTag(['a', 'puppy', 'runs'], 'dog'));
  assert.ok(namesTag(['a', 'man', 'rides', 'a', 'bike'], 'bicycle'));
  assert.ok(!namesTag(['a', 'white', 'dog'], 'cat'));
});

/** Logits (one image) with the given probabilities on the given classes and the rest spread thin. */
function logitsFor(probabilities: Record<number, number>): Float32Array {
  const rest = 1 - Object.values(probabilities).reduce((a, b) => a + b, 0);
  const others = 1000 - Object.keys(probabilities).length;
  const out = new Float32Array(1000).fill(Math.log(rest / others));
  for (const [index, p] of Object.entries(probabilities)) out[Number(index)] = Math.log(p);
  return out;
}

test('tagsFromLogits: class probabilities summed per word, thresholded, most probable first, classes listed', () => {
  const breeds = classes.flatMap((c, i) => (c.tag === 'dog' ? [i] : [])).slice(0, 10);
  const cat = byLabel('Egyptian cat');
  const image1 = logitsFor({ ...Object.fromEntries(breeds.map((i) => [i, 0.05])), [cat]: 0.35 }); // dog 0.5 in ten 0.05s
  const image2 = logitsFor({ [byLabel('espresso')]: 0.2, [byLabel('cup')]: 0.2 });
  const logits = new Float32Array(2000);
  logits.set(image1, 0);
  logits.set(image2, 1000);
  const [tags1, tags2] = tagsFromLogits(logits, 2);
  assert.deepEqual(
    tags1.map((t) => t.word),
    ['dog', 'cat'],
  );
  // 0.5 in the ten breeds, and the thin rest of the other 110 dog classes
  assert.ok(tags1[0].probability > 0.5 && tags1[0].probability < 0.53, String(tags1[0].probability));
  assert.equal(tags1[0].classes.length, 5, 'at most 5 classes');
  assert.ok(tags1[0].classes.every((c) => classes[c.index].tag === 'dog' && Math.abs(c.probability - 0.05) < 1e-3));
  assert.deepEqual(tags1[1].classes.map((c) => c.label), ['Egyptian cat']);
  assert.deepEqual(tags2, [], 'coffee 0.2 and cup 0.2: each below 0.3');
  assert.deepEqual(tagsFromLogits(image2, 1, 0.19)[0].map((t) => t.word).sort(), ['coffee', 'cup']);
  assert.equal(DEFAULT_TAG_THRESHOLD, DEFAULT_GENERATION.tagThreshold);
  assert.throws(() => tagsFromLogits(image2, 1, 0), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => tagsFromLogits(image2, 2), { code: 'INTERNAL' });
  const ids = tagTokenIds([tags1], (w) => ({ dog: 10, dogs: 11, puppy: 12, cat: 20 })[w]);
  assert.deepEqual(ids, [
    [
      { boost: [10, 11], names: [10, 11, 12] },
      { boost: [20], names: [20] },
    ],
  ]);
});

test('GenerationConfig: tagThreshold and tagBonus from call > card > defaults, checked', () => {
  assert.equal(resolveGeneration().tagBonus, DEFAULT_GENERATION.tagBonus);
  assert.equal(resolveGeneration({}, { tagBonus: 1.5 }).tagBonus, 1.5);
  assert.equal(resolveGeneration({ tagBonus: 0 }, { tagBonus: 1.5 }).tagBonus, 0);
  assert.throws(() => resolveGeneration({ tagBonus: -1 }), { code: 'INVALID_ARGUMENT', message: /tagBonus/ });
  assert.throws(() => resolveGeneration({ tagThreshold: 0 }), { code: 'INVALID_ARGUMENT', message: /tagThreshold/ });
  assert.throws(() => resolveGeneration({}, { tagThreshold: 2 }), { code: 'MODEL_CORRUPT', message: /tagThreshold/ });
});

// --- a toy decoder whose next-word distribution is a table of the words so far -----------------------------------

const VOCAB = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'white', 'dog', 'cat', 'on', 'grass', 'cats'];
const ID = Object.fromEntries(VOCAB.map((w, i) => [w, i]));
type Table = Record<string, Record<string, number>>;

interface ToyState extends DecoderState {
  prefix: string[][];
  image: number[];
}

class ToyModel implements StepModel<ToyState> {
  readonly vocabSize = VOCAB.length;
  readonly regions = 1;
  constructor(private readonly tables: Table[]) {}
  async init(features: Float32Array, count: number): Promise<ToyState> {
    return { rows: count, image: Array.from(features.subarray(0, count)), prefix: Array.from({ length: count }, () => []) };
  }
  async step(tokens: ArrayLike<number> | BigInt64Array, state: ToyState): Promise<StepOutput<ToyState>> {
    const V = VOCAB.length;
    const logProbs = new Float32Array(state.rows * V).fill(Math.log(1e-6));
    const prefix = state.prefix.map((p, r) => (Number(tokens[r]) === ID['<start>'] ? [] : [...p, VOCAB[Number(tokens[r])]]));
    prefix.forEach((words, r) => {
      const next = this.tables[state.image[r]][words.join(' ')] ?? { '<end>': 0.9 };
      for (const [w, p] of Object.entries(next)) logProbs[r * V + ID[w]] = Math.log(p);
    });
    return { logProbs, alpha: new Float32Array(state.rows).fill(1), state: { ...state, prefix } };
  }
  select(state: ToyState, rows: ArrayLike<number>): ToyState {
    const idx = Array.from(rows);
    return { rows: idx.length, image: idx.map((i) => state.image[i]), prefix: idx.map((i) => state.prefix[i]) };
  }
}

/** "a white dog" is the model's favourite; "a cat" is close behind; "a cat on a cat" would repeat the tag. */
const CAT_PHOTO: Table = {
  '': { a: 0.9 },
  a: { white: 0.6, cat: 0.3, dog: 0.05 },
  'a white': { dog: 0.8, cat: 0.15 },
  'a white dog': { '<end>': 0.9 },
  'a white cat': { '<end>': 0.9 },
  'a cat': { '<end>': 0.5, on: 0.45 },
  'a cat on': { grass: 0.5, a: 0.45 },
  'a cat on a': { cat: 0.6, dog: 0.3 },
};
const words = (tokens: number[]) => tokens.map((t) => VOCAB[t]).join(' ');
const catGuide = { groups: [[{ boost: [ID.cat, ID.cats], names: [ID.cat, ID.cats] }]] };
const plainRules = { rules: ['no-specials', 'no-unk', 'no-empty'] as const };

test('guided search: the tag word wins at a bonus, logProb stays the model\'s own, a named tag is not favoured again', async () => {
  const model = new ToyModel([CAT_PHOTO]);
  const options = { ...plainRules, rules: [...plainRules.rules], beamSize: 3, nBest: 3 };
  const [plain] = await beamSearch(model, Float32Array.of(0), 1, options);
  assert.equal(words(plain[0].tokens), 'a white dog');
  const [unguided] = await beamSearch(model, Float32Array.of(0), 1, { ...options, tagBonus: 0 }, {}, catGuide);
  assert.deepEqual(unguided, plain, 'bonus 0: the plain search, bit for bit');

  const [guided] = await beamSearch(model, Float32Array.of(0), 1, { ...options, tagBonus: 2 }, {}, catGuide);
  assert.match(words(guided[0].tokens), /cat/);
  assert.ok(!/cat.*cat/.test(words(guided[0].tokens)), words(guided[0].tokens));
  const p = (prefix: string[], word: string) => Math.max(1e-6, (CAT_PHOTO[prefix.join(' ')] ?? { '<end>': 0.9 })[word] ?? 1e-6);
  for (const bonus of [2, 8]) {
    const [hyps] = await beamSearch(model, Float32Array.of(0), 1, { ...options, tagBonus: bonus }, {}, catGuide);
    assert.equal(words(hyps[0].tokens), 'a cat');
    for (const h of hyps) {
      // logProb is the model's own; score (lengthPenalty 0) sums the guided log-probabilities, where the cat words
      // are favoured only until the caption has named a cat: "a cat on a cat" gets no bonus for its second cat
      const ws = [...h.tokens.map((t) => VOCAB[t]), '<end>'];
      let logProb = 0;
      let guidedSum = 0;
      let named = false;
      ws.forEach((w, i) => {
        const lp = Math.log(p(ws.slice(0, i), w));
        logProb += lp;
        const shift = named ? 0 : Math.log1p(Math.expm1(bonus) * (p(ws.slice(0, i), 'cat') + p(ws.slice(0, i), 'cats')));
        guidedSum += lp - shift + (!named && (w === 'cat' || w === 'cats') ? bonus : 0);
        named ||= w === 'cat' || w === 'cats';
      });
      assert.ok(Math.abs(h.logProb - logProb) < 1e-4, `${words(h.tokens)}: logProb ${h.logProb} vs ${logProb}`);
      assert.ok(Math.abs(h.score - guidedSum) < 1e-4, `${words(h.tokens)}: score ${h.score} vs ${guidedSum}`);
      assert.ok(h.score <= 0);
    }
  }
  await assert.rejects(beamSearch(model, Float32Array.of(0, 0), 2, { ...options, tagBonus: 2 }, {}, catGuide), RangeError);
});

test('decodeFeatures: a caption that names its tag is kept; one that does not is searched again, guided', async () => {
  const DOG_PHOTO: Table = { '': { a: 0.9 }, a: { white: 0.6, dog: 0.3 }, 'a white': { dog: 0.9 } };
  const model = new ToyModel([CAT_PHOTO, DOG_PHOTO]);
  const decoder = model as unknown as LoadedDecoder;
  const vocabulary = Vocabulary.fromJSON(VOCAB);
  const tag = (word: string) => ({ word, probability: 0.9, classes: [{ index: 0, label: word, probability: 0.9 }] });
  const search = resolveGeneration({ ...plainRules, rules: [...plainRules.rules], beamSize: 3, tagBonus: 2 });
  const features = Float32Array.of(0, 1);
  const guided = await decodeFeatures({ decoder, vocabulary }, features, 2, search, [[tag('cat')], [tag('dog')]]);
  assert.match(guided[0][0].text, /cat/, 'the cat photo: "a white dog" named no cat, so it was searched again');
  assert.equal(guided[1][0].text, 'a white dog', 'the dog photo already named its tag');
  const off = await decodeFeatures({ decoder, vocabulary }, features, 2, { ...search, tagBonus: 0 }, [[tag('cat')], [tag('dog')]]);
  assert.deepEqual(off.map((c) => c[0].text), ['a white dog', 'a white dog']);
  const none = await decodeFeatures({ decoder, vocabulary }, features, 2, search);
  assert.deepEqual(none.map((c) => c[0].text), ['a white dog', 'a white dog'], 'no tags, no guidance');
});
