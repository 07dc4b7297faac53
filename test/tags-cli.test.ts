/**
 * `pixel-info caption` and tags, with the shipped model on a Flickr8k photo of two dogs: --json/--jsonl records carry
 * "tags"; text and CSV show them with --tags; --tag-threshold and --tag-bonus are checked as usage errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { registerCaption } from '../src/cli/commands/caption.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { runCommand } from './helpers/cli.js';

const NEEDS_DATA = { skip: !HAVE_FLICKR8K && 'no ../shared' };
const DOGS = '1001773457_577c3a7d70.jpg'; // a black dog and a spotted dog
const caption = (args: string[]) => runCommand(registerCaption, ['caption', ...args, '--no-progress', '--no-matcher', '--threads', '1']);

test('caption: tags in --json, in text and CSV with --tags; bad --tag-* values are usage errors', NEEDS_DATA, async () => {
  const file = join(FLICKR8K_IMAGES, DOGS);
  const json = await caption([file, '--json']);
  assert.equal(json.code, 0, json.stderr.join('\n'));
  const [record] = JSON.parse(json.stdout.join('\n'));
  assert.deepEqual(Object.keys(record), ['file', 'captions', 'tags']);
  assert.equal(record.tags[0].word, 'dog');
  assert.ok(record.tags[0].probability >= 0.3 && record.tags[0].probability <= 1);
  assert.ok(record.tags[0].classes.length >= 1 && typeof record.tags[0].classes[0].label === 'string');

  const text = await caption([file, '--tags']);
  assert.match(text.stdout[0], /: .+ {2}\[tags: dog [01]\.\d\d\]$/);
  const plain = await caption([file]);
  assert.ok(!plain.stdout[0].includes('[tags'), 'text without --tags is as before');
  const csv = await caption([file, '--csv', '--tags']);
  assert.equal(csv.stdout[0], 'file,caption,score,tags');
  assert.match(csv.stdout[1], /,dog [01]\.\d\d$/);
  const high = await caption([file, '--json', '--tag-threshold', '1']);
  assert.deepEqual(JSON.parse(high.stdout.join('\n'))[0].tags, []);

  await assert.rejects(caption([file, '--tag-bonus', '-1']), /expected a number from 0 to 20/);
  await assert.rejects(caption([file, '--tag-threshold', '0']), /above 0/);
});

test('the classifier head alone gives the encoder\'s logits; captionFeatures without logits captions as caption() does', NEEDS_DATA, async (t) => {
  const { ImageEncoder } = await import('../src/encoder/index.js');
  const { Captioner } = await import('../src/pipeline/captioner.js');
  const { loadImage, writeCaffeTensor } = await import('../src/image/index.js');
  const files = [DOGS, '1000268201_693b08cb0e.jpg'].map((f) => join(FLICKR8K_IMAGES, f));
  const encoder = await ImageEncoder.load({ threads: 1, outputs: ['features', 'logits'], precision: 'fp32' });
  t.after(() => encoder.release());
  const batch = new Float32Array(files.length * ImageEncoder.imageFloats);
  for (const [i, f] of files.entries()) writeCaffeTensor((await loadImage(f)).pixels, batch, i);
  const out = await encoder.encode(batch, files.length);
  const head = await encoder.classifierHead();
  const logits = head.logitsFromFeatures(out.features!, files.length);
  let max = 0;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, Math.abs(logits[i] - out.logits![i]));
  assert.ok(max < 1e-4, `max |Δlogit| ${max}`);

  const captioner = await Captioner.load({ encoder, threads: 1, matcher: false });
  t.after(() => captioner.release());
  const fromImages = await captioner.caption(files);
  const fromFeatures = await captioner.captionFeatures(out.features!, files.length);
  assert.deepEqual(
    fromFeatures.map((c) => c[0].text),
    fromImages.map((r) => ('captions' in r ? r.captions[0].text : r.error.code)),
  );
});
