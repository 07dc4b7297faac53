import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPECIALS, Vocabulary } from '../src/text/vocabulary.js';
import { PixelInfoError } from '../src/errors.js';

const corpus = [
  ['a', 'dog', 'runs'],
  ['a', 'dog', 'jumps'],
  ['a', 'cat', 'runs'],
  ['the', 'cat', 'sits', '<unk>'],
  ['zebra', 'a', 'cat'],
];

test('build: specials first, then words with count ≥ minCount by count desc, ties by code point', () => {
  const vocab = Vocabulary.build(corpus, 2);
  // a:4, cat:3, dog:2, runs:2; jumps/the/sits/zebra once; '<unk>' in the text is not a word
  assert.deepEqual(vocab.words, ['<pad>', '<start>', '<end>', '<unk>', 'a', 'cat', 'dog', 'runs']);
  assert.equal(vocab.size, 8);
  assert.deepEqual(Vocabulary.build(corpus, 1).words.slice(4), ['a', 'cat', 'dog', 'runs', 'jumps', 'sits', 'the', 'zebra']);
  // Upper case sorts before lower case in code-point order, as in Python's sorted().
  assert.deepEqual(Vocabulary.build([['b', 'B', 'a']], 1).words.slice(4), ['B', 'a', 'b']);
  assert.equal(Vocabulary.build(corpus).size, 4, 'default minCount 5 keeps only the specials here');
  assert.throws(() => Vocabulary.build(corpus, 0), (e: unknown) => e instanceof PixelInfoError && e.code === 'INVALID_ARGUMENT');
});

test('idOf, encode and decode', () => {
  const vocab = Vocabulary.build(corpus, 2);
  assert.deepEqual(SPECIALS, { pad: 0, start: 1, end: 2, unk: 3 });
  assert.equal(vocab.idOf('dog'), 6);
  assert.equal(vocab.idOf('zebra'), SPECIALS.unk);
  assert.equal(vocab.idOf('<pad>'), SPECIALS.pad);
  assert.deepEqual(vocab.encode(['a', 'zebra', 'runs']), [4, 3, 7]);
  assert.deepEqual(vocab.encode(['a', 'zebra', 'runs'], 2), [4, 3]);
  assert.deepEqual(vocab.encode([], 3), []);
  assert.deepEqual(vocab.decode([1, 4, 6, 3, 7, 2, 5, 5]), ['a', 'dog', 'runs'], 'skips <start>/<unk>, stops at <end>');
  assert.deepEqual(vocab.decode([4, 0, 5]), ['a', 'cat']);
  assert.throws(() => vocab.decode([4, 99]), (e: unknown) => e instanceof PixelInfoError && /outside the vocabulary/.test(e.message));
});

test('fromJSON round-trips and rejects broken lists', () => {
  const vocab = Vocabulary.build(corpus, 2);
  const back = Vocabulary.fromJSON(JSON.parse(JSON.stringify(vocab)));
  assert.deepEqual(back.words, vocab.words);
  assert.equal(back.idOf('runs'), 7);
  const bad: unknown[] = [
    ['<pad>', '<start>', '<unk>', '<end>', 'a'],
    ['<pad>', '<start>', '<end>', '<unk>', 'a', 'a'],
    ['<pad>', '<start>', '<end>', '<unk>', ''],
    ['<pad>', '<start>', '<end>'],
    { words: [] },
    ['<pad>', '<start>', '<end>', '<unk>', 7],
  ];
  for (const words of bad) {
    assert.throws(() => Vocabulary.fromJSON(words as string[]), (e: unknown) => e instanceof PixelInfoError && e.code === 'MODEL_CORRUPT', JSON.stringify(words));
  }
});
