import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageEncoder, ensureEncoderModel } from '../src/encoder/index.js';
import { classifyImages } from '../src/encoder/classify.js';
import { decodeModel } from '../src/onnx/proto.js';
import { loadImage, writeCaffeTensor } from '../src/image/index.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { loadTfjsReference, nchwToNhwc } from './helpers/tfjs-reference.js';

test('converted graph: batch norms folded, dynamic batch, three named outputs', async () => {
  const model = await ensureEncoderModel();
  const graph = decodeModel(model.bytes).graph!;
  const ops = graph.node!.map((n) => n.opType);
  assert.equal(ops.filter((o) => o === 'BatchNormalization').length, 0);
  assert.equal(ops.filter((o) => o === 'Conv').length, 53);
  assert.deepEqual(graph.output!.map((o) => o.name), ['features', 'pooled', 'logits']);
  assert.equal(graph.input![0].type!.tensorType!.shape!.dim![0].dimParam, 'batch');
});

test('model cache: second run reuses, a damaged file is detected and rebuilt', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'px-cache-'));
  const first = await ensureEncoderModel(dir);
  assert.equal(first.action, 'built');
  const second = await ensureEncoderModel(dir);
  assert.equal(second.action, 'reused');
  const bytes = await readFile(first.path);
  bytes[bytes.length >> 1] ^= 0xff; // flip one byte in the middle of the weights
  await writeFile(first.path, bytes);
  const third = await ensureEncoderModel(dir);
  assert.equal(third.action, 'rebuilt');
  assert.match(third.reason ?? '', /damaged/);
  assert.equal(third.manifest.files['resnet50.onnx'].sha256, first.manifest.files['resnet50.onnx'].sha256);
});

test('classify names a dog breed first for the Flickr8k dog image', { skip: !HAVE_FLICKR8K && 'no ../shared' }, async () => {
  const encoder = await ImageEncoder.load({ outputs: ['logits'] });
  const [result] = await classifyImages(encoder, [join(FLICKR8K_IMAGES, '1001773457_577c3a7d70.jpg')]);
  await encoder.release();
  assert.ok('top' in result);
  // ImageNet indices 151-268 are the dog breeds.
  assert.ok(result.top[0].index >= 151 && result.top[0].index <= 268, `top-1 was ${result.top[0].label}`);
  const total = result.top.reduce((s, t) => s + t.probability, 0);
  assert.ok(total > 0.5 && total <= 1.0001);
});

test('parity with TF.js on 20 Flickr8k images: max |logit diff| < 1e-3 of the logit range', { skip: !HAVE_FLICKR8K && 'no ../shared', timeout: 600_000 }, async () => {
  const names = readdirSync(FLICKR8K_IMAGES).sort().filter((_, i) => i % 400 === 7).slice(0, 20);
  assert.equal(names.length, 20);
  const encoder = await ImageEncoder.load({ outputs: ['logits'] });
  const reference = await loadTfjsReference();
  let worst = 0;
  for (let start = 0; start < names.length; start += 4) {
    const chunk = names.slice(start, start + 4);
    const batch = new Float32Array(chunk.length * ImageEncoder.imageFloats);
    for (const [i, name] of chunk.entries()) writeCaffeTensor((await loadImage(join(FLICKR8K_IMAGES, name))).pixels, batch, i);
    const ours = (await encoder.encode(batch, chunk.length)).logits!;
    const theirs = reference(nchwToNhwc(batch, chunk.length), chunk.length);
    for (let n = 0; n < chunk.length; n++) {
      const a = theirs.subarray(n * 1000, (n + 1) * 1000);
      const range = Math.max(...a) - Math.min(...a);
      let maxDiff = 0;
      for (let k = 0; k < 1000; k++) maxDiff = Math.max(maxDiff, Math.abs(a[k] - ours[n * 1000 + k]));
      worst = Math.max(worst, maxDiff / range);
      assert.ok(maxDiff < 1e-3 * range, `${chunk[n]}: max diff ${maxDiff} vs range ${range}`);
    }
  }
  await encoder.release();
  console.log(`# worst |diff| / logit range over 20 images: ${worst.toExponential(2)}`);
});
