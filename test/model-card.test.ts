/**
 * The model card schema (src/decoder/model-card.ts): the shipped card and the trainer's sections parse with
 * their real keys, unknown keys pass through, wrong types are MODEL_CORRUPT naming the field; and the Info tab's
 * rows (web/src/model-card.ts) read those keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelCardSchema, parseModelCard } from '../src/decoder/model-card.js';
import { defaultModelDir } from '../src/pipeline/captioner.js';
import { modelCardSections } from '../web/src/model-card.js';

const shipped = JSON.parse(readFileSync(join(defaultModelDir(), 'model-card.json'), 'utf8')) as Record<string, unknown>;

test('the shipped card parses, every section typed, nothing dropped', () => {
  const card = parseModelCard(shipped);
  assert.deepEqual(card, shipped, 'parsing keeps every key and value');
  assert.equal(card.format, 'pixel-info-model-card');
  assert.equal(typeof card.metrics?.val?.cider, 'number');
  assert.equal(typeof card.metrics?.val?.vocab_used, 'number');
  assert.equal(card.architecture?.encoder?.name, 'resnet50-imagenet');
  assert.equal(card.data?.captions?.source?.file, 'dataset_flickr8k.json');
});

test('sections are optional, unknown keys pass through, nulls where the trainer writes None', () => {
  assert.deepEqual(parseModelCard({ name: 'fake' }), { name: 'fake' });
  const exported = {
    format: 'pixel-info-model-card',
    version: 1,
    architecture: { encoder: null, config: { vocab_size: 10, feature_norm: 'none' }, future: { x: 1 } },
    vocab: { size: 10, specials: null },
    maxLength: null,
    training: { selected: { stage: null, epoch: null }, args: null, torch: null, date: null, history: [{ stage: 'xe', epoch: 1, train_loss: null }] },
    metrics: { val: { cider: 0.5 }, val_decoding: 'beam 1', test: null },
    extra: [1, 2],
  };
  assert.deepEqual(parseModelCard(exported), exported);
});

test('wrong types are MODEL_CORRUPT, naming each field', () => {
  assert.throws(() => parseModelCard({ metrics: { val: { cider: '0.5' } }, format: 'other' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'MODEL_CORRUPT');
    assert.match(err.message, /metrics\.val\.cider: Expected number, received string/);
    assert.match(err.message, /format: Invalid literal value/);
    return true;
  });
  assert.equal(modelCardSchema.safeParse({ decoding: { beamSize: 0 } }).success, false, 'the decoding section is checked as generation.ts does');
  assert.equal(modelCardSchema.safeParse({ metrics: { test: { 'BLEU-4': 'high' } } }).success, false);
});

test("the Info tab's rows come from the card's real keys", () => {
  const card = parseModelCard(shipped);
  const rows = new Map(modelCardSections(card).flatMap((s) => s.rows.map(([label, value]) => [`${s.title}/${label}`, value])));
  const val = card.metrics!.val!;
  assert.equal(rows.get('Metrics (validation, beam 1)/CIDEr-D'), val.cider!.toFixed(3));
  assert.equal(rows.get('Metrics (validation, beam 1)/BLEU-4'), val.bleu4!.toFixed(3));
  assert.equal(rows.get('Metrics (validation, beam 1)/Distinct words used'), val.vocab_used);
  assert.equal(rows.get('Metrics (test, COCO toolkit definitions)/ROUGE-L'), card.metrics!.test!['ROUGE-L']!.toFixed(3));
  assert.equal(rows.get('Training data/Captions'), 'dataset_flickr8k.json');
  assert.equal(rows.get('Decoding (defaults)/Beam size'), card.decoding!.beamSize);
  assert.ok(![...rows.values()].some((v) => typeof v === 'string' && /undefined|null|NaN/.test(v)), 'no placeholder text');
});
