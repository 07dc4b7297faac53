import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Captioner, isCaptionFailure, type CaptionResult } from '../src/pipeline/captioner.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { loadImage, writeCaffeTensor } from '../src/image/index.js';
import { SMALL_DIMS, toyWeights, writeToyModelDir } from './fixtures/decoder/toy-decoder.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const NEEDS_DATA = { skip: !HAVE_FLICKR8K && 'no ../shared' };
const DOG = join(FLICKR8K_IMAGES, '1001773457_577c3a7d70.jpg');
const GIRL = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-captioner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One encoder for the whole file: loading it is the slow part. */
let sharedEncoder: Promise<ImageEncoder> | undefined;
const encoder = () => (sharedEncoder ??= ImageEncoder.load({ outputs: ['features'], threads: 1 }));
test.after(async () => (await sharedEncoder)?.release());

test('Captioner.load: a missing model directory or file is MODEL_NOT_FOUND naming it, before any encoder work', async (t) => {
  const dir = tmp(t);
  await assert.rejects(Captioner.load({ modelDir: join(dir, 'absent') }), (err: { code: string; message: string }) => {
    assert.equal(err.code, 'MODEL_NOT_FOUND');
    assert.ok(err.message.includes(join(dir, 'absent')));
    return true;
  });
  const model = writeToyModelDir(join(dir, 'model'));
  rmSync(join(model, 'vocab.json'));
  await assert.rejects(Captioner.load({ modelDir: model }), (err: { code: string; message: string }) => err.code === 'MODEL_NOT_FOUND' && /missing vocab\.json/.test(err.message));
});

test('caption(array): one slot per input in order, bad inputs as { source, error }, captions from the toy decoder', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const captioner = await Captioner.load({ modelDir: writeToyModelDir(join(dir, 'model'), toyWeights(SMALL_DIMS, 7, 0)), encoder: await encoder(), batchSize: 2 });
  t.after(() => captioner.release());
  assert.equal(captioner.card.name, 'toy');
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'not an image');
  const inputs = [DOG, readFileSync(GIRL), text, join(dir, 'missing.jpg'), readFileSync(DOG).subarray(0, 500)];
  const out = await captioner.caption(inputs, { returnAttention: true, nBest: 2 });
  assert.deepEqual(out.map((o) => o.source), [DOG, '<buffer 1>', text, join(dir, 'missing.jpg'), '<buffer 4>']);
  assert.deepEqual(out.map((o) => (isCaptionFailure(o) ? o.error.code : 'ok')), ['ok', 'ok', 'NOT_AN_IMAGE', 'FILE_NOT_FOUND', 'IMAGE_TRUNCATED']);
  for (const o of out.slice(0, 2) as CaptionResult[]) {
    assert.deepEqual(o.image, { format: 'jpeg', width: 224, height: 224 });
    assert.equal(o.captions.length, 2);
    assert.ok(o.captions[0].score >= o.captions[1].score);
    for (const c of o.captions) {
      assert.ok(c.tokens.length >= 1 && c.tokens.length <= 20);
      assert.equal(c.text, c.tokens.join(' '));
      assert.equal(c.text, c.text.toLowerCase());
      assert.equal(c.attention!.length, c.tokens.length);
      for (const row of c.attention!) {
        assert.equal(row.length, 49);
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4);
      }
    }
    const { preprocessMs, encoderMs, decoderMs, matcherMs = 0, totalMs } = o.timings;
    assert.ok(encoderMs > 0 && decoderMs > 0 && preprocessMs >= 0);
    assert.ok(Math.abs(totalMs - (preprocessMs + encoderMs + decoderMs + matcherMs)) < 0.05, JSON.stringify(o.timings));
  }
  // A buffer and a path of different images give different captions (the features reach the decoder).
  const [a, b] = out as CaptionResult[];
  assert.notEqual(a.captions[0].text, b.captions[0].text);
});

test('caption(one): the result itself, a bad image rejects with its code; bad options reject the call', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const captioner = await Captioner.load({ modelDir: writeToyModelDir(join(dir, 'model'), toyWeights(SMALL_DIMS, 7, 0)), encoder: await encoder() });
  t.after(() => captioner.release());
  const one = await captioner.caption(DOG);
  assert.equal(one.source, DOG);
  assert.equal(one.captions.length, 1);
  assert.equal(one.captions[0].attention, undefined);
  await assert.rejects(captioner.caption(Buffer.from('hello')), { code: 'NOT_AN_IMAGE' });
  await assert.rejects(captioner.caption([DOG], { beamSize: 2, nBest: 3 }), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(captioner.caption([DOG], { lengthPenalty: -1 }), { code: 'INVALID_ARGUMENT' });
});

test('captionFeatures gives what caption gives; the model card\'s decoding settings are defaults that calls override', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const enc = await encoder();
  const modelDir = writeToyModelDir(join(dir, 'model'), toyWeights(SMALL_DIMS, 7, 0), { decoding: { beamSize: 1 } });
  const captioner = await Captioner.load({ modelDir, encoder: enc });
  t.after(() => captioner.release());
  const batch = new Float32Array(2 * ImageEncoder.imageFloats);
  writeCaffeTensor((await loadImage(DOG)).pixels, batch, 0);
  writeCaffeTensor((await loadImage(GIRL)).pixels, batch, 1);
  const { features } = await enc.encode(batch, 2);
  const fromFeatures = await captioner.captionFeatures(features!, 2, { beamSize: 3 });
  const fromImages = (await captioner.caption([DOG, GIRL], { beamSize: 3 })) as CaptionResult[];
  assert.deepEqual(fromFeatures.map((c) => c[0].text), fromImages.map((r) => r.captions[0].text));
  // The card says beam 1, so n-best 2 is refused unless the call sets a wider beam.
  await assert.rejects(captioner.captionFeatures(features!, 2, { nBest: 2 }), { code: 'INVALID_ARGUMENT' });
  assert.equal((await captioner.captionFeatures(features!, 2, { nBest: 2, beamSize: 2 }))[0].length, 2);
});

test('release() leaves a shared encoder usable', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const enc = await encoder();
  const captioner = await Captioner.load({ modelDir: writeToyModelDir(join(dir, 'model')), encoder: enc });
  await captioner.release();
  const out = await enc.encode(new Float32Array(ImageEncoder.imageFloats), 1);
  assert.equal(out.features!.length, 49 * 2048);
});
