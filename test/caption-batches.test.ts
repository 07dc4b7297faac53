/**
 * Captioner.captionBatches: batch by batch in input order, the next batch's images loading while one is captioned;
 * the same outcomes as caption(array), a failure slot for a broken input, and stopping early is fine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Captioner, isCaptionFailure } from '../src/pipeline/captioner.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const HAVE_MODEL = existsSync(join(process.cwd(), 'models', 'flickr8k-sat', 'decoder_step.onnx'));

test('captionBatches: batches in order, outcomes equal caption(array), a broken input fails alone, an early stop is clean', { skip: (!HAVE_FLICKR8K && 'no ../shared') || (!HAVE_MODEL && 'no shipped model'), timeout: 300_000 }, async (t) => {
  const captioner = await Captioner.load({ threads: 2, batchSize: 2, matcher: false });
  t.after(() => captioner.release());
  const files = readdirSync(FLICKR8K_IMAGES).sort().slice(0, 3).map((n) => join(FLICKR8K_IMAGES, n));
  const inputs = [files[0], Buffer.from('not an image'), files[1], files[2], files[0]];

  const batches = [];
  for await (const batch of captioner.captionBatches(inputs)) batches.push(batch);
  assert.deepEqual(batches.map((b) => b.length), [2, 2, 1]);
  const flat = batches.flat();
  assert.ok(isCaptionFailure(flat[1]));
  assert.equal(flat[1].source, '<buffer 1>');
  assert.equal(isCaptionFailure(flat[1]) && flat[1].error.code, 'NOT_AN_IMAGE');
  const texts = flat.map((o) => (isCaptionFailure(o) ? null : o.captions[0].text));
  const whole = (await captioner.caption(inputs)).map((o) => (isCaptionFailure(o) ? null : o.captions[0].text));
  assert.deepEqual(texts, whole);
  assert.equal(texts[0], texts[4], 'the same image, the same caption, in another batch');

  let seen = 0;
  for await (const batch of captioner.captionBatches(inputs)) {
    seen += batch.length;
    break; // the prefetched batch is left behind without an unhandled rejection
  }
  assert.equal(seen, 2);
});
