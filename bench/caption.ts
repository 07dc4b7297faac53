/**
 * Caption latency benchmark (not a test): one image, end to end (read + decode + resize + caffe tensor →
 * ResNet50 encoder → beam search over the ONNX decoder), the real model, repeated after a warm-up.
 * Reports p50/p95 of the total and of each stage (the Captioner's own per-stage timings).
 *
 *   npm run bench:caption [-- --image FILE --runs 50 --warmup 5 --seconds 60 --threads 2 --beam 3 --int8-decoder true|false|auto
 *                          --batch 1]      (--batch N: N copies in one call; total = the call, stages = per image)
 *
 * The image defaults to the first Flickr8k image under $PIXEL_INFO_DATA_DIR or ../shared/datasets, else a
 * synthetic 500x375 JPEG. The last line printed is JSON:
 * {"p50Ms","p95Ms","preprocessP50Ms","encoderP50Ms","decoderP50Ms","decoderToEncoderRatio","beam","runs",
 * "int8Decoder" (the precision the decoder ran at), "cpu": {model, cores, features, isa}, ...}.
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { cpuInfo, cpuLine, cpuSummary } from '../src/backend/cpu.js';
import type { Int8Choice } from '../src/decoder/precision.js';
import { Captioner } from '../src/pipeline/captioner.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const RUNS = Number(args.get('runs') ?? 50);
const WARMUP = Number(args.get('warmup') ?? 5);
/** Measurement stops after this many seconds even if fewer than RUNS were done (at least 5 are). */
const SECONDS = Number(args.get('seconds') ?? 60);
const THREADS = Number(args.get('threads') ?? 2);
/** Unset: the model card's beam size, else the library default (src/decoder/generation.ts). */
const BEAM = args.has('beam') ? Number(args.get('beam')) : undefined;
/** Images per call (copies of the image, one batch): the stage times are then per image (the batch's share). */
const BATCH = Number(args.get('batch') ?? 1);
/** --int8-decoder true | false | auto (default auto: int8 when the model card's gate passed; src/decoder/precision.ts). */
const INT8_CHOICE = parseInt8Choice(args.get('int8-decoder') ?? 'auto');
const DEFAULT_IMAGE = resolve(process.env.PIXEL_INFO_DATA_DIR ?? '../shared/datasets', 'flickr8k', 'images', '1000268201_693b08cb0e.jpg');

function parseInt8Choice(value: string): Int8Choice {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (value === 'auto') return 'auto';
  throw new Error(`--int8-decoder: expected true, false or auto, got ${value}`);
}

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function benchImage(): Promise<{ input: string | Buffer; label: string }> {
  const path = args.get('image') ?? DEFAULT_IMAGE;
  if (existsSync(path)) return { input: path, label: path };
  const noise = Buffer.alloc(500 * 375 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24; // deterministic texture
  const jpeg = await sharp(noise, { raw: { width: 500, height: 375, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  return { input: jpeg, label: 'synthetic 500x375 JPEG' };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

const { input, label } = await benchImage();
const loadBefore = loadavg();
const CPU = cpuInfo();
console.log(cpuLine(CPU));
console.log(`caption benchmark: ${label}, beam ${BEAM ?? 'of the model card'}, ${THREADS} threads, ${WARMUP} warm-up + up to ${RUNS} runs (≤ ${SECONDS} s); load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`);

const tLoad = performance.now();
const captioner = await Captioner.load({ threads: THREADS, batchSize: BATCH, int8Decoder: INT8_CHOICE });
/** One call: the first image's result (with BATCH > 1, its timings are the batch's per-image share). */
const captionOnce = async () => {
  if (BATCH === 1) return captioner.caption(input, options);
  const outcomes = await captioner.caption(Array.from({ length: BATCH }, () => input), options);
  const first = outcomes[0];
  if (!('captions' in first)) throw new Error(`caption failed: ${first.error.message}`);
  return first;
};
const INT8 = captioner.int8Decoder;
const loadMs = performance.now() - tLoad;
const options = captioner.generationConfig({ beamSize: BEAM });

let text = '';
for (let i = 0; i < WARMUP; i++) text = (await captionOnce()).captions[0].text;

const total: number[] = [];
const stages = { preprocess: [] as number[], encoder: [] as number[], decoder: [] as number[] };
const t0 = performance.now();
while (total.length < RUNS && (total.length < 5 || performance.now() - t0 < SECONDS * 1000)) {
  const start = performance.now();
  const result = await captionOnce();
  total.push(performance.now() - start);
  stages.preprocess.push(result.timings.preprocessMs);
  stages.encoder.push(result.timings.encoderMs);
  stages.decoder.push(result.timings.decoderMs);
}
await captioner.release();
const loadAfter = loadavg();

const encoderP50Ms = round(percentile(stages.encoder, 50));
const decoderP50Ms = round(percentile(stages.decoder, 50));
const summary = {
  p50Ms: round(percentile(total, 50)),
  p95Ms: round(percentile(total, 95)),
  preprocessP50Ms: round(percentile(stages.preprocess, 50)),
  encoderP50Ms,
  decoderP50Ms,
  preprocessP95Ms: round(percentile(stages.preprocess, 95)),
  encoderP95Ms: round(percentile(stages.encoder, 95)),
  decoderP95Ms: round(percentile(stages.decoder, 95)),
  decoderToEncoderRatio: Math.round((decoderP50Ms / encoderP50Ms) * 1000) / 1000,
  minMs: round(Math.min(...total)),
  beam: options.beamSize,
  batch: BATCH,
  runs: total.length,
  threads: THREADS,
  int8Decoder: INT8,
  modelLoadMs: round(loadMs),
  caption: text,
  loadAverage: { before: loadBefore.map(round), after: loadAfter.map(round) },
  cpu: cpuSummary(CPU),
};
console.log(
  `total p50 ${summary.p50Ms} ms, p95 ${summary.p95Ms} ms (min ${summary.minMs}) over ${summary.runs} runs; ` +
    `p50 preprocessing ${summary.preprocessP50Ms} ms, encoder ${summary.encoderP50Ms} ms, decoding ${summary.decoderP50Ms} ms (${summary.decoderToEncoderRatio}× the encoder, ${INT8 ? 'int8' : 'fp32'} decoder); "${text}"`,
);
console.log(JSON.stringify(summary));
