/**
 * The matcher in the Captioner: caption confidence, rerank: 'match', returnEmbedding, match(), embedTexts and
 * the loading rules; with the shipped decoder and a toy matcher, and (when present) the real matcher.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Captioner, defaultMatcherDir, isCaptionFailure, type CaptionResult } from '../src/pipeline/captioner.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { ErrorCodes, PixelInfoError } from '../src/errors.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { writeToyMatcherDir } from './fixtures/match/toy-matcher.js';

const NEEDS_DATA = { skip: HAVE_FLICKR8K ? false : 'needs ../shared/datasets/flickr8k' };
const GIRL = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');
const DOGS = join(FLICKR8K_IMAGES, '1001773457_577c3a7d70.jpg');
const PAINT = join(FLICKR8K_IMAGES, '1002674143_1b742ab4b8.jpg');
const BENCH = join(FLICKR8K_IMAGES, '1003163366_44323f5815.jpg');

let sharedEncoder: Promise<ImageEncoder> | undefined;
const encoder = () => (sharedEncoder ??= ImageEncoder.load({ outputs: ['features'], threads: 1 }));
test.after(async () => (await sharedEncoder)?.release());

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-match-pipe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function isError(code: string, ...inMessage: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof PixelInfoError, String(err));
    assert.equal(err.code, code, err.message);
    for (const s of inMessage) assert.ok(err.message.includes(s), `"${err.message}" should name ${s}`);
    return true;
  };
}

test('Captioner.load: an explicit matcher directory that is missing or corrupt is an error; matcher: false loads none', async (t) => {
  const dir = tmp(t);
  await assert.rejects(Captioner.load({ matcherDir: join(dir, 'absent'), encoder: await encoder() }), isError(ErrorCodes.MODEL_NOT_FOUND, join(dir, 'absent')));
  const broken = writeToyMatcherDir(join(dir, 'broken')).dir;
  writeFileSync(join(broken, 'text.onnx'), 'garbage');
  await assert.rejects(Captioner.load({ matcherDir: broken, encoder: await encoder() }), isError(ErrorCodes.MODEL_CORRUPT, join(broken, 'text.onnx')));
  const wrongGeometry = writeToyMatcherDir(join(dir, 'geometry'), { regions: 4, featureDim: 16 }).dir;
  await assert.rejects(Captioner.load({ matcherDir: wrongGeometry, encoder: await encoder() }), isError(ErrorCodes.MODEL_CORRUPT, '4 × 16', '49 × 2048'));

  const none = await Captioner.load({ matcherDir: join(dir, 'absent'), matcher: false, encoder: await encoder() });
  t.after(() => none.release());
  assert.equal(none.matcherInfo, undefined);
  await assert.rejects(none.match(GIRL, ['a girl']), isError(ErrorCodes.MODEL_NOT_FOUND, 'matcher: false'));
  await assert.rejects(none.embedTexts(['a girl']), isError(ErrorCodes.MODEL_NOT_FOUND));
  await assert.rejects(none.caption(GIRL, { rerank: 'match' }), isError(ErrorCodes.INVALID_ARGUMENT, "rerank: 'match'"));
  await assert.rejects(none.caption(GIRL, { returnEmbedding: true }), isError(ErrorCodes.INVALID_ARGUMENT, 'returnEmbedding'));
});

test('the default matcher directory: $PIXEL_INFO_MATCHER_DIR, else models/flickr8k-match; a missing default means no matcher', async (t) => {
  const saved = process.env.PIXEL_INFO_MATCHER_DIR;
  t.after(() => (saved === undefined ? delete process.env.PIXEL_INFO_MATCHER_DIR : (process.env.PIXEL_INFO_MATCHER_DIR = saved)));
  delete process.env.PIXEL_INFO_MATCHER_DIR;
  assert.match(defaultMatcherDir(), /models[\\/]flickr8k-match$/);
  const byDefault = await Captioner.load({ encoder: await encoder() });
  t.after(() => byDefault.release());
  assert.equal(byDefault.matcherInfo?.dir, existsSync(defaultMatcherDir()) ? defaultMatcherDir() : undefined, 'the default directory is used when it exists, and only then');
  const dir = tmp(t);
  process.env.PIXEL_INFO_MATCHER_DIR = join(dir, 'absent');
  assert.equal(defaultMatcherDir(), join(dir, 'absent'));
  // Set on purpose and missing: an error naming where it came from.
  await assert.rejects(Captioner.load({ encoder: await encoder() }), isError(ErrorCodes.MODEL_NOT_FOUND, join(dir, 'absent'), 'PIXEL_INFO_MATCHER_DIR'));
  process.env.PIXEL_INFO_MATCHER_DIR = writeToyMatcherDir(join(dir, 'toy')).dir;
  const withEnv = await Captioner.load({ encoder: await encoder() });
  t.after(() => withEnv.release());
  assert.deepEqual(withEnv.matcherInfo, { name: 'toy-matcher', dim: 8, dir: join(dir, 'toy'), calibration: { a: 10, b: -3 } });
});

test('captions get the matcher confidence, the same as match() gives; rerank and returnEmbedding', NEEDS_DATA, async (t) => {
  const toy = writeToyMatcherDir(join(tmp(t), 'toy'), { dim: 16, calibration: { a: 3, b: 0 } });
  const captioner = await Captioner.load({ matcherDir: toy.dir, encoder: await encoder(), threads: 1, batchSize: 3 });
  t.after(() => captioner.release());
  const images = [GIRL, DOGS, join(FLICKR8K_IMAGES, 'no-such.jpg'), PAINT, BENCH];
  const options = { beamSize: 5, nBest: 5 };
  const outcomes = await captioner.caption(images, options);
  assert.ok(isCaptionFailure(outcomes[2]));
  const results = outcomes.filter((o): o is CaptionResult => !isCaptionFailure(o));
  assert.equal(results.length, 4);
  for (const r of results) {
    assert.equal(r.embedding, undefined);
    assert.equal(typeof r.timings.matcherMs, 'number');
    for (const c of r.captions) assert.ok(typeof c.confidence === 'number' && c.confidence > 0 && c.confidence < 1, `confidence ${c.confidence}`);
    // Batched scoring (all images, all captions at once) = one image and its sentences alone.
    const alone = await captioner.match(r.source, r.captions.map((c) => c.text));
    alone.forEach((m, i) => assert.ok(Math.abs(m.score - r.captions[i].confidence!) < 1e-5, `${r.source} caption ${i}: ${m.score} vs ${r.captions[i].confidence}`));
  }

  const reranked = await captioner.caption(images, { ...options, rerank: 'match', returnEmbedding: true });
  let changed = 0;
  results.forEach((r, n) => {
    const re = reranked[n < 2 ? n : n + 1] as CaptionResult;
    assert.equal(re.source, r.source);
    assert.deepEqual(re.captions.map((c) => c.text).sort(), r.captions.map((c) => c.text).sort(), 'the same n-best list');
    for (let i = 1; i < re.captions.length; i++) assert.ok(re.captions[i - 1].confidence! >= re.captions[i].confidence!, 'highest confidence first');
    if (re.captions[0].text !== r.captions[0].text) changed++;
    assert.equal(re.embedding!.length, 16);
    assert.ok(Math.abs(Math.hypot(...re.embedding!) - 1) < 1e-5);
  });
  assert.ok(changed > 0, 'with a random matcher, re-ranking changes some best caption');

  // embedTexts rows are unit length; their dot product with the image embedding is match()'s cosine.
  const girl = reranked[0] as CaptionResult;
  const sentences = ['a girl climbs the stairs', 'two dogs on the road', ''];
  const [vectors, scores] = await Promise.all([captioner.embedTexts(sentences), captioner.match(GIRL, sentences)]);
  vectors.forEach((v, i) => {
    assert.equal(v.length, 16);
    const dot = v.reduce((sum, x, k) => sum + x * girl.embedding![k], 0);
    assert.ok(Math.abs(dot - scores[i].cosine) < 1e-5, `text ${i}: ${dot} vs ${scores[i].cosine}`);
    assert.ok(Math.abs(scores[i].logit - 3 * scores[i].cosine) < 1e-6);
  });
  assert.deepEqual(await captioner.match(GIRL, []), []);

  // One image (not an array) too.
  const single = await captioner.caption(DOGS, { beamSize: 2, nBest: 2 });
  assert.ok(single.captions.every((c) => typeof c.confidence === 'number'));
});

test('Captioner.match: a bad image is a typed error naming it; bad texts are INVALID_ARGUMENT', NEEDS_DATA, async (t) => {
  const dir = tmp(t);
  const captioner = await Captioner.load({ matcherDir: writeToyMatcherDir(join(dir, 'toy')).dir, encoder: await encoder(), threads: 1 });
  t.after(() => captioner.release());
  await assert.rejects(captioner.match(join(dir, 'absent.jpg'), ['a dog']), isError(ErrorCodes.FILE_NOT_FOUND, 'absent.jpg'));
  await assert.rejects(captioner.match(Buffer.from('not an image at all'), ['a dog']), isError(ErrorCodes.NOT_AN_IMAGE));
  await assert.rejects(captioner.match(GIRL, 'a dog' as unknown as string[]), isError(ErrorCodes.INVALID_ARGUMENT));
  const scores = await captioner.match(GIRL, ['A girl.', 'a girl']);
  assert.equal(scores[0].score, scores[1].score, 'tokenised as captions: case and punctuation do not count');
});

const REAL = defaultMatcherDir();
const HAVE_REAL = HAVE_FLICKR8K && existsSync(join(REAL, 'model-card.json'));

test('the real matcher: an image\'s own descriptions score higher than other images\'; captions carry confidence', { skip: HAVE_REAL ? false : `needs ${REAL} and Flickr8k` }, async (t) => {
  const captioner = await Captioner.load({ matcherDir: REAL, encoder: await encoder() });
  t.after(() => captioner.release());
  const own: Record<string, string[]> = {
    [GIRL]: ['A little girl climbing into a wooden playhouse .', 'A child in a pink dress is climbing up a set of stairs in an entry way .'],
    [DOGS]: ['A black dog and a spotted dog are fighting', 'Two dogs on pavement moving toward each other .'],
    [BENCH]: ['A man lays on a bench while his dog sits by him .', 'A shirtless man lies on a park bench with his dog .'],
  };
  const images = Object.keys(own);
  for (const [i, image] of images.entries()) {
    const wrong = own[images[(i + 1) % images.length]];
    const scores = await captioner.match(image, [...own[image], ...wrong]);
    for (const s of scores) assert.ok(s.score >= 0 && s.score <= 1 && Number.isFinite(s.logit));
    const worstOwn = Math.min(scores[0].score, scores[1].score);
    const bestWrong = Math.max(scores[2].score, scores[3].score);
    assert.ok(worstOwn > bestWrong, `${image}: own ${scores.slice(0, 2).map((s) => s.score.toFixed(3))} vs wrong ${scores.slice(2).map((s) => s.score.toFixed(3))}`);
  }
  const result = await captioner.caption(GIRL);
  assert.ok(result.captions.every((c) => typeof c.confidence === 'number' && c.confidence >= 0 && c.confidence <= 1));
});
