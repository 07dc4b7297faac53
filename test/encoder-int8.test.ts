import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { isaClass } from '../src/backend/cpu.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { defaultInt8CardPath, ensureInt8Encoder, readInt8Card, resolveEncoderPrecision, type EncoderInt8Card } from '../src/encoder/int8.js';
import { defaultCacheDir } from '../src/encoder/cache.js';
import { loadImage, writeCaffeTensor } from '../src/image/index.js';
import { IMAGE_FLOATS } from '../src/image/tensor.js';
import { decodeModel, DataType, encodeModel, floatTensor, node, valueInfo } from '../src/onnx/proto.js';
import { activationParams, activationTensors, quantizeStatic, RangeObserver, withOutputs } from '../src/onnx/quantize-static.js';
import { gaussian } from './fixtures/decoder/toy-decoder.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-int8-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('RangeObserver: exact min/max at 100, outliers clipped at a percentile; activationParams keep 0 exact', () => {
  const o = new RangeObserver();
  const values = Float32Array.from({ length: 100_000 }, (_, i) => (i % 1000) / 1000);
  o.observe(values);
  o.observe(Float32Array.from([1000, -0.5]));
  assert.deepEqual(o.range(100), { min: -0.5, max: 1000 });
  const clipped = o.range(99.99);
  assert.ok(clipped.max > 0.99 && clipped.max < 1.012, `max ${clipped.max}`);
  assert.equal(clipped.min, -0.5, 'the clip is a magnitude: -0.5 is inside it');
  const relu = activationParams({ min: 0, max: 2.55 });
  assert.ok(Math.abs(relu.scale - 0.01) < 1e-12);
  assert.equal(relu.zeroPoint, 0, 'a ReLU output uses all 256 levels above 0');
  const signed = activationParams({ min: -1, max: 1.55 });
  assert.ok(Math.abs(signed.scale - 0.01) < 1e-9);
  assert.equal(signed.zeroPoint, 100);
  assert.throws(() => new RangeObserver().range(), /no values/);
});

/** Conv(3→8, 3x3) → Relu → Conv(8→6, 1x1) → out; a small image-like graph with the converter's naming. */
function tinyConvNet(): Uint8Array {
  const g = gaussian(5);
  const w1 = Float32Array.from({ length: 8 * 3 * 3 * 3 }, () => g() * 0.3);
  const b1 = Float32Array.from({ length: 8 }, () => g() * 0.1);
  const w2 = Float32Array.from({ length: 6 * 8 }, () => g() * 0.3);
  const b2 = Float32Array.from({ length: 6 }, () => g() * 0.1);
  return encodeModel({
    name: 'tiny',
    nodes: [
      node('Conv', ['image', 'c1.weight', 'c1.bias'], ['c1'], { pads: [1, 1, 1, 1] }, 'c1'),
      node('Relu', ['c1'], ['r1'], {}, 'r1'),
      node('Conv', ['r1', 'c2.weight', 'c2.bias'], ['out'], {}, 'c2'),
    ],
    initializers: [floatTensor('c1.weight', [8, 3, 3, 3], w1), floatTensor('c1.bias', [8], b1), floatTensor('c2.weight', [6, 8, 1, 1], w2), floatTensor('c2.bias', [6], b2)],
    inputs: [valueInfo('image', DataType.FLOAT, ['B', 3, 16, 16])],
    outputs: [valueInfo('out', DataType.FLOAT, ['B', 6, 16, 16])],
  });
}

test('quantizeStatic: QDQ around every quantised Conv, 7-bit per-channel weights, int32 bias; onnxruntime runs it close to fp32', async () => {
  const fp32 = tinyConvNet();
  assert.deepEqual(activationTensors(fp32), ['image', 'r1', 'out'], 'conv inputs, and a conv output not followed by Relu');
  assert.deepEqual(activationTensors(fp32, ['c1']), ['r1', 'out']);
  const g = gaussian(9);
  const x = Float32Array.from({ length: 4 * 3 * 16 * 16 }, () => g());
  const input = new ort.Tensor('float32', x, [4, 3, 16, 16]);

  const tensors = activationTensors(fp32);
  const cal = await ort.InferenceSession.create(withOutputs(fp32, tensors));
  const seen = await cal.run({ image: input }, tensors);
  const ranges = Object.fromEntries(tensors.map((t) => {
    const o = new RangeObserver();
    o.observe(seen[t].data as Float32Array);
    return [t, o.range(100)];
  }));
  const { bytes, report } = quantizeStatic(fp32, { ranges });
  assert.equal(report.convs, 2);
  assert.equal(report.activations, 3);
  const graph = decodeModel(bytes).graph!;
  assert.equal(graph.node!.filter((n) => n.opType === 'QuantizeLinear').length, 3);
  const weights = graph.initializer!.filter((t) => t.name!.endsWith('.w_q'));
  assert.equal(weights.length, 2);
  for (const w of weights) {
    assert.equal(w.dataType, DataType.INT8);
    const q = new Int8Array(Uint8Array.from(w.rawData as Uint8Array).buffer);
    assert.ok(q.every((v) => v >= -63 && v <= 63), `${w.name}: 7 bits`);
    assert.ok(q.some((v) => Math.abs(v) === 63), `${w.name}: each channel's largest weight uses the full range`);
  }
  assert.ok(graph.initializer!.filter((t) => t.name!.endsWith('.b_q')).every((t) => t.dataType === DataType.INT32));
  assert.ok(!graph.initializer!.some((t) => t.name === 'c1.weight'), 'the float weights are gone');

  const [a, b] = [await (await ort.InferenceSession.create(fp32)).run({ image: input }), await (await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' })).run({ image: input })];
  const fa = a.out.data as Float32Array;
  const fb = b.out.data as Float32Array;
  let err = 0;
  let ref = 0;
  for (let i = 0; i < fa.length; i++) {
    err += (fa[i] - fb[i]) ** 2;
    ref += fa[i] ** 2;
  }
  assert.ok(Math.sqrt(err / ref) < 0.03, `relative error ${Math.sqrt(err / ref)}`);

  const partial = quantizeStatic(fp32, { ranges, exclude: ['c1'] });
  assert.equal(partial.report.convs, 1);
  assert.ok(decodeModel(partial.bytes).graph!.initializer!.some((t) => t.name === 'c1.weight'), 'the excluded Conv keeps its float weights');
  assert.throws(() => quantizeStatic(fp32, { ranges: {} }), /no calibrated range for tensor image/);
});

test('encoder precision: auto is int8 only where the card has a passed gate for this machine type; explicit choices win', async (t) => {
  const dir = tmp(t);
  const card = (passed: boolean | undefined): string => {
    const path = join(dir, `card-${String(passed)}.json`);
    const value: EncoderInt8Card = {
      format: 'pixel-info-encoder-int8', version: 1, encoder: { source: 'x', modelSha256: 'y' },
      calibration: { dataset: 'flickr8k', split: 'train', images: 1, percentile: 100, date: '' }, exclude: [], weightBits: 7, ranges: {}, gates: {},
    };
    if (passed !== undefined) value.gates[isaClass()] = { passed } as never;
    writeFileSync(path, JSON.stringify(value));
    return path;
  };
  assert.equal(await resolveEncoderPrecision('auto', card(true)), 'int8');
  assert.equal(await resolveEncoderPrecision('auto', card(false)), 'fp32');
  assert.equal(await resolveEncoderPrecision(undefined, card(undefined)), 'fp32', 'no gate for this machine type');
  assert.equal(await resolveEncoderPrecision('auto', join(dir, 'missing.json')), 'fp32');
  assert.equal(await resolveEncoderPrecision('int8', card(false)), 'int8');
  assert.equal(await resolveEncoderPrecision('fp32', card(true)), 'fp32');
  writeFileSync(join(dir, 'bad.json'), '{"format": "something else"}');
  await assert.rejects(readInt8Card(join(dir, 'bad.json')), { code: 'MODEL_CORRUPT' });
});

const HAVE_CARD = existsSync(defaultInt8CardPath());

test('the shipped int8 card builds an int8 encoder next to the cached fp32 one; its features stay close to fp32', { skip: (!HAVE_CARD && 'no int8 card') || (!HAVE_FLICKR8K && 'no ../shared'), timeout: 300_000 }, async (t) => {
  const card = await readInt8Card();
  assert.ok(Object.keys(card.ranges).length > 50);
  for (const gate of Object.values(card.gates)) {
    assert.equal(gate!.passed, gate!.top1Agreement >= gate!.limits.minTop1Agreement && gate!.cider !== null && gate!.cider.drop <= gate!.limits.maxCiderDrop && gate!.images >= gate!.limits.images);
  }
  const built = await ensureInt8Encoder(defaultCacheDir());
  const again = await ensureInt8Encoder(defaultCacheDir());
  assert.equal(again.sha256, built.sha256, 'reused from the cache');

  const files = readdirSync(FLICKR8K_IMAGES).sort().slice(0, 4).map((n) => join(FLICKR8K_IMAGES, n));
  const batch = new Float32Array(files.length * IMAGE_FLOATS);
  for (let i = 0; i < files.length; i++) writeCaffeTensor((await loadImage(files[i])).pixels, batch, i);
  const fp32 = await ImageEncoder.load({ precision: 'fp32', outputs: ['features'] });
  const int8 = await ImageEncoder.load({ precision: 'int8', outputs: ['features'] });
  t.after(() => Promise.all([fp32.release(), int8.release()]));
  assert.equal(int8.precision, 'int8');
  assert.equal(int8.modelSha256, built.sha256);
  assert.notEqual(int8.modelSha256, fp32.modelSha256, 'feature stores tell the two apart');
  const [a, b] = [(await fp32.encode(batch, files.length)).features!, (await int8.encode(batch, files.length)).features!];
  const F = a.length / files.length;
  for (let k = 0; k < files.length; k++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = k * F; j < (k + 1) * F; j++) {
      dot += a[j] * b[j];
      na += a[j] ** 2;
      nb += b[j] ** 2;
    }
    assert.ok(dot / Math.sqrt(na * nb) > 0.97, `image ${k}: cosine ${dot / Math.sqrt(na * nb)}`);
  }

  // a card measured on another fp32 model is refused, naming what to run
  const dir = tmp(t);
  const other = join(dir, 'other.json');
  writeFileSync(other, JSON.stringify({ ...JSON.parse(readFileSync(defaultInt8CardPath(), 'utf8')), encoder: { source: 'x', modelSha256: '0'.repeat(64) } }));
  await assert.rejects(ensureInt8Encoder(defaultCacheDir(), other), (err: { code: string; message: string }) => err.code === 'MODEL_CORRUPT' && /--calibrate-int8/.test(err.message));
});
