import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeModel } from '../src/onnx/proto.js';
import { quantizeGemmWeights } from '../src/onnx/quantize.js';
import { Captioner } from '../src/pipeline/captioner.js';
import { int8Available, resolveInt8Decoder } from '../src/decoder/precision.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const MODEL = join(process.cwd(), 'models', 'flickr8k-sat');
const HAVE_MODEL = existsSync(join(MODEL, 'decoder_step.onnx'));

test('int8 decoder: every dense layer of the step graph becomes DynamicQuantizeMatMul with 7-bit weights', { skip: !HAVE_MODEL && 'no shipped model' }, () => {
  const { bytes, report } = quantizeGemmWeights(readFileSync(join(MODEL, 'decoder_step.onnx')));
  assert.deepEqual(report.layers.map((l) => `${l.rows}x${l.cols}`).sort(), ['2560x2048', '512x2048', '512x2048', '512x2543', '512x512'].sort());
  assert.ok(report.bytesAfter < 0.6 * report.bytesBefore, `${report.bytesAfter} vs ${report.bytesBefore}`);
  const graph = decodeModel(bytes).graph!;
  assert.equal(graph.node!.filter((n) => n.opType === 'Gemm').length, 0);
  assert.equal(graph.node!.filter((n) => n.opType === 'DynamicQuantizeMatMul').length, 5);
  for (const t of graph.initializer!.filter((i) => i.name!.endsWith('.w_int8'))) {
    const q = new Int8Array(Uint8Array.from(t.rawData as Uint8Array).buffer);
    assert.ok(q.every((v) => v >= -63 && v <= 63), `${t.name} leaves 7 bits`);
  }
});

test("int8 decoder: the init graph's attention projection (MatMul of a Transpose) and h0/c0 Gemms become DynamicQuantizeMatMul", { skip: !HAVE_MODEL && 'no shipped model' }, () => {
  const { bytes, report } = quantizeGemmWeights(readFileSync(join(MODEL, 'decoder_init.onnx')));
  assert.deepEqual(report.layers.map((l) => `${l.rows}x${l.cols}`).sort(), ['2048x512', '2048x512', '2048x512']);
  const graph = decodeModel(bytes).graph!;
  for (const op of ['Gemm', 'MatMul', 'Transpose']) assert.equal(graph.node!.filter((n) => n.opType === op).length, 0, `no ${op} left`);
  assert.equal(graph.node!.filter((n) => n.opType === 'DynamicQuantizeMatMul').length, 3);
  assert.ok(!graph.initializer!.some((t) => t.name === 'm.encoder_att.weight_fp16'), 'the fp16 weight and its Cast are dropped');
  assert.ok(graph.node!.some((n) => n.opType === 'LayerNormalization'), 'everything else is kept');
});

test('int8 decoder: captions of real images mostly identical to fp32', { skip: (!HAVE_MODEL && 'no shipped model') || (!HAVE_FLICKR8K && 'no ../shared'), timeout: 300_000 }, async () => {
  const files = readdirSync(FLICKR8K_IMAGES).sort().slice(0, 16).map((n) => join(FLICKR8K_IMAGES, n));
  const fp32 = await Captioner.load({ threads: 2, int8Decoder: false });
  const int8 = await Captioner.load({ threads: 2, encoder: undefined, int8Decoder: true });
  assert.equal(fp32.int8Decoder, false);
  assert.equal(int8.int8Decoder, true);
  const a = await fp32.caption(files);
  const b = await int8.caption(files);
  await fp32.release();
  await int8.release();
  let same = 0;
  a.forEach((x, i) => {
    const y = b[i];
    assert.ok('captions' in x && 'captions' in y);
    if ('captions' in x && 'captions' in y && x.captions[0].text === y.captions[0].text) same++;
  });
  // On the whole val split 909 of 1000 captions are identical and CIDEr moves by -0.0017 (the card's quantization gate).
  assert.ok(same >= 12, `only ${same}/16 identical`);
});

test('int8 default: on where the model card records a passed gate (Node runtime), off otherwise; explicit choices win', () => {
  const passed = { quantization: { int8Decoder: { passed: true } } };
  const failed = { quantization: { int8Decoder: { passed: false } } };
  assert.equal(int8Available(), true, 'the tests run on onnxruntime-node');
  assert.equal(resolveInt8Decoder(undefined, passed), true);
  assert.equal(resolveInt8Decoder('auto', passed), true);
  assert.equal(resolveInt8Decoder('auto', failed), false);
  assert.equal(resolveInt8Decoder('auto', {}), false, 'no gate measured: fp32');
  assert.equal(resolveInt8Decoder(true, {}), true);
  assert.equal(resolveInt8Decoder(false, passed), false);
  if (HAVE_MODEL) {
    const card = JSON.parse(readFileSync(join(MODEL, 'model-card.json'), 'utf8'));
    const gate = card.quantization.int8Decoder;
    assert.equal(gate.passed, gate.ciderDrop <= gate.maxCiderDrop, 'the shipped gate is consistent');
    assert.equal(gate.split, 'val', 'selected on val');
  }
});

test('int8 decoder with the card\'s calibrated ranges: fixed-scale layers (MatMulIntegerToFloat), and an image gets the same caption alone or in any batch', { skip: (!HAVE_MODEL && 'no shipped model') || (!HAVE_FLICKR8K && 'no ../shared'), timeout: 300_000 }, async () => {
  const card = JSON.parse(readFileSync(join(MODEL, 'model-card.json'), 'utf8'));
  const ranges = card.quantization.int8DecoderCalibration.ranges;
  const { bytes, report } = quantizeGemmWeights(readFileSync(join(MODEL, 'decoder_step.onnx')), { activationRanges: ranges.step });
  assert.ok(report.layers.every((l) => l.static), 'every step layer has a calibrated input');
  const graph = decodeModel(bytes).graph!;
  assert.equal(graph.node!.filter((n) => n.opType === 'MatMulIntegerToFloat').length, 5);
  assert.equal(graph.node!.filter((n) => n.opType === 'QuantizeLinear').length, 3, "one per distinct input: h (three layers), [word; context], h_out");
  assert.equal(graph.node!.filter((n) => n.opType === 'DynamicQuantizeMatMul').length, 0);

  const files = readdirSync(FLICKR8K_IMAGES).sort().slice(20, 28).map((n) => join(FLICKR8K_IMAGES, n));
  const captioner = await Captioner.load({ threads: 2, batchSize: 8, int8Decoder: true, matcher: false });
  try {
    const together = await captioner.caption(files);
    const text = (o: (typeof together)[number]) => ('captions' in o ? `${o.captions[0].text} ${o.captions[0].logProb.toFixed(5)}` : 'failed');
    for (const [i, file] of files.entries()) {
      const alone = await captioner.caption([file]);
      assert.equal(text(alone[0]), text(together[i]), `image ${i}: alone vs in a batch of ${files.length}`);
    }
    const reversed = await captioner.caption([...files].reverse());
    assert.deepEqual(reversed.map(text).reverse(), together.map(text), 'another order, the same captions');
  } finally {
    await captioner.release();
  }
});
