/**
 * Pipeline benchmark (not a test): does feeding images keep up with the encoder? On the same real images, in one
 * run: the encoder alone on preprocessed batches (the bound), `pixel-info features` (extractFeatures: read, decode,
 * resize, encode, write a store) and the captioner over a folder (Captioner.captionBatches, as `pixel-info caption`
 * runs it: read, decode, resize, encode, beam search), each as images/s and as a fraction of the bound. The images
 * of the next batch are read and resized while the current one is encoded (sharp on libuv's threads), so what is
 * left between a pipeline and the bound is the work that shares the cores: for captions, the beam search.
 *
 *   npm run bench:pipeline [-- --images 96 --batch 8 --threads 2 --int8-decoder auto --encoder auto]
 *
 * The last line printed is JSON: {"encoderImagesPerSecond", "featuresImagesPerSecond", "featuresToEncoder",
 * "captionImagesPerSecond", "captionToEncoder", "captionSequentialImagesPerSecond" (one caption(batch) after another, no
 * overlap), ...}.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cpuLine, cpuSummary } from '../src/backend/cpu.js';
import { extractFeatures } from '../src/data/extract-features.js';
import { ImageEncoder, type EncoderPrecisionChoice } from '../src/encoder/index.js';
import { loadImage, writeCaffeTensor } from '../src/image/index.js';
import { Captioner } from '../src/pipeline/captioner.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const IMAGES = Number(args.get('images') ?? 96);
const BATCH = Number(args.get('batch') ?? 8);
const THREADS = Number(args.get('threads') ?? 2);
const INT8 = args.get('int8-decoder') ?? 'auto';
const INT8_CHOICE = INT8 === 'true' ? true : INT8 === 'false' ? false : 'auto';
const ENCODER = (args.get('encoder') ?? 'auto') as EncoderPrecisionChoice;
const IMAGE_DIR = resolve(process.env.PIXEL_INFO_DATA_DIR ?? '../shared/datasets', 'flickr8k', 'images');
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const names = readdirSync(IMAGE_DIR).filter((n) => n.endsWith('.jpg')).sort().slice(0, IMAGES);
const files = names.map((n) => join(IMAGE_DIR, n));
console.log(cpuLine());
console.log(`pipeline benchmark: ${files.length} Flickr8k images, batch ${BATCH}, ${THREADS} threads`);

const encoder = await ImageEncoder.load({ threads: THREADS, outputs: ['features', 'pooled'], precision: ENCODER });
// The bound: the encoder alone on the same images, already preprocessed.
const batches: Float32Array[] = [];
for (let i = 0; i < files.length; i += BATCH) {
  const part = files.slice(i, i + BATCH);
  const b = new Float32Array(part.length * ImageEncoder.imageFloats);
  for (let k = 0; k < part.length; k++) writeCaffeTensor((await loadImage(part[k])).pixels, b, k);
  batches.push(b);
}
const counts = batches.map((b) => b.length / ImageEncoder.imageFloats);
await encoder.encode(batches[0], counts[0]); // warm-up
async function encoderPass(): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < batches.length; i++) await encoder.encode(batches[i], counts[i]);
  return files.length / ((performance.now() - t0) / 1000);
}

async function featuresPass(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'px-bench-store-'));
  try {
    const t0 = performance.now();
    await extractFeatures({
      storeDir: dir,
      dataset: 'flickr8k',
      imageDir: IMAGE_DIR,
      imageNames: names,
      encoder,
      batchSize: BATCH,
      encoderInfo: { name: 'resnet50-imagenet', source: encoder.manifest.source, modelSha256: encoder.modelSha256 },
    });
    return files.length / ((performance.now() - t0) / 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const captioner = await Captioner.load({ threads: THREADS, batchSize: BATCH, encoder, int8Decoder: INT8_CHOICE, matcher: false });
async function captionPass(): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  for await (const batch of captioner.captionBatches(files)) n += batch.length;
  return n / ((performance.now() - t0) / 1000);
}
/** The same without the overlap: one caption(batch) call after another, as `pixel-info caption` ran before captionBatches. */
async function captionSequentialPass(): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < files.length; i += BATCH) await captioner.caption(files.slice(i, i + BATCH));
  return files.length / ((performance.now() - t0) / 1000);
}
await captionPass(); // warm-up (JIT, first decoder calls)

// Interleaved rounds, so that a slow moment of the machine hits all three alike; the median of each.
const runs = { encoder: [] as number[], features: [] as number[], caption: [] as number[], captionSequential: [] as number[] };
for (let r = 0; r < 3; r++) {
  runs.encoder.push(await encoderPass());
  runs.features.push(await featuresPass());
  runs.caption.push(await captionPass());
  runs.captionSequential.push(await captionSequentialPass());
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const enc = median(runs.encoder);
const feat = median(runs.features);
const cap = median(runs.caption);
const seq = median(runs.captionSequential);
console.log(`encoder alone ${round(enc)} img/s; features ${round(feat)} img/s (${round((100 * feat) / enc, 1)}%); captions ${round(cap)} img/s (${round((100 * cap) / enc, 1)}%; without the overlap ${round(seq)} img/s, ${round((100 * seq) / enc, 1)}%)`);
const summary = {
  encoderImagesPerSecond: round(enc),
  featuresImagesPerSecond: round(feat),
  featuresToEncoder: round(feat / enc, 3),
  captionImagesPerSecond: round(cap),
  captionToEncoder: round(cap / enc, 3),
  captionSequentialImagesPerSecond: round(seq),
  captionSequentialToEncoder: round(seq / enc, 3),
  runs: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map((x) => round(x))])),
  images: files.length,
  batch: BATCH,
  threads: THREADS,
  encoderPrecision: encoder.precision,
  int8Decoder: captioner.int8Decoder,
  cpu: cpuSummary(),
};
await captioner.release();
await encoder.release();
console.log(JSON.stringify(summary));
