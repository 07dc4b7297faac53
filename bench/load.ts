/**
 * Load benchmark of the HTTP server (not a test). Starts the server in this process on 127.0.0.1 (loopback only),
 * measures the ceilings first — the encoder alone on batches of --max-batch, and the whole in-process pipeline
 * (Captioner.caption on the same batches) — then POSTs a real Flickr8k JPEG with autocannon at 1, 4 and 16
 * concurrent connections, reporting req/s, latency p50/p99, errors, RSS before/during/after each level, and the
 * fraction of the encoder-bound throughput reached at 16 clients.
 *
 *   npm run bench:load [-- --seconds 15 --connections 1,4,16 --max-batch 8 --threads 2 --image path.jpg --int8-decoder true|false|auto]
 *
 * The last line printed is JSON, with `int8Decoder` (the precision the decoder ran at) and `cpu` {model, cores, features, isa}.
 */
import { timeLoop } from './timing.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { cpuInfo, cpuLine, cpuSummary } from '../src/backend/cpu.js';
import type { Int8Choice } from '../src/decoder/precision.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { loadImage, writeCaffeTensor } from '../src/image/index.js';
import { Captioner } from '../src/pipeline/captioner.js';
import { startServer } from '../src/server/index.js';

/** autocannon ships no types; the part used here. */
const autocannon = createRequire(import.meta.url)('autocannon') as (options: Record<string, unknown>) => Promise<AutocannonResult>;

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const SECONDS = Math.min(30, Number(args.get('seconds') ?? 15));
const CEILING_SECONDS = Number(args.get('ceiling-seconds') ?? 8);
const CONNECTIONS = (args.get('connections') ?? '1,4,16').split(',').map(Number);
const MAX_BATCH = Number(args.get('max-batch') ?? 8);
/** --int8-decoder true | false | auto (default auto: int8 when the model card's gate passed; src/decoder/precision.ts). */
const INT8_CHOICE = parseInt8Choice(args.get('int8-decoder') ?? 'auto');
const THREADS = Number(args.get('threads') ?? cpus().length);
const DATA_DIR = resolve(process.env.PIXEL_INFO_DATA_DIR ?? '../shared/datasets');
const IMAGE = args.get('image') ?? join(DATA_DIR, 'flickr8k', 'images', '1000268201_693b08cb0e.jpg');

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  latency: { p50: number; p99: number; average: number; max: number };
  requests: { average: number; sent: number };
}

function parseInt8Choice(value: string): Int8Choice {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (value === 'auto') return 'auto';
  throw new Error(`--int8-decoder: expected true, false or auto, got ${value}`);
}

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;


/** Images/s of the encoder alone on batches of MAX_BATCH copies of the image (already preprocessed). */
async function encoderCeiling(): Promise<number> {
  const encoder = await ImageEncoder.load({ threads: THREADS, outputs: ['features'] });
  const image = await loadImage(IMAGE);
  const batch = new Float32Array(MAX_BATCH * ImageEncoder.imageFloats);
  for (let i = 0; i < MAX_BATCH; i++) writeCaffeTensor(image.pixels, batch, i);
  const t = await timeLoop(() => encoder.encode(batch, MAX_BATCH), CEILING_SECONDS);
  await encoder.release();
  return (t.calls * MAX_BATCH) / t.seconds;
}

/**
 * Images/s of the whole pipeline in process (decode, encoder, beam search with the model card's settings) on batches
 * of MAX_BATCH, and the decoder precision it resolved to (the server, loading the same model with the same choice, gets the same).
 */
async function pipelineCeiling(bytes: Buffer): Promise<{ imagesPerSecond: number; int8Decoder: boolean }> {
  const captioner = await Captioner.load({ threads: THREADS, batchSize: MAX_BATCH, int8Decoder: INT8_CHOICE });
  const inputs = Array.from({ length: MAX_BATCH }, () => bytes);
  const t = await timeLoop(() => captioner.caption(inputs), CEILING_SECONDS);
  const int8Decoder = captioner.int8Decoder;
  await captioner.release();
  return { imagesPerSecond: (t.calls * MAX_BATCH) / t.seconds, int8Decoder };
}

async function main() {
  const bytes = readFileSync(IMAGE);
  const rssStart = process.memoryUsage().rss;
  const cpu = cpuInfo();
  console.log(cpuLine(cpu));
  console.log(`image ${IMAGE} (${bytes.length} bytes), max-batch ${MAX_BATCH}, threads ${THREADS}, ${SECONDS} s per level, cores ${cpus().length}`);

  const encoderImagesPerSecond = await encoderCeiling();
  console.log(`encoder alone, batch ${MAX_BATCH}: ${round(encoderImagesPerSecond)} images/s`);
  const { imagesPerSecond: pipelineImagesPerSecond, int8Decoder } = await pipelineCeiling(bytes);
  console.log(`pipeline in process (decode + encoder + beam search, ${int8Decoder ? 'int8' : 'fp32'} decoder), batch ${MAX_BATCH}: ${round(pipelineImagesPerSecond)} images/s`);

  const dir = mkdtempSync(join(tmpdir(), 'px-load-'));
  const { server, url } = await startServer({
    port: 0,
    host: '127.0.0.1',
    library: join(dir, 'library.sqlite'),
    maxBatch: MAX_BATCH,
    maxWaitMs: 10,
    maxQueue: 64,
    threads: THREADS,
    int8Decoder: INT8_CHOICE,
    logger: false,
  });
  await server.engineReady;
  // Warm-up: the first requests pay for lazy initialisation (library row, thumbnail, JIT).
  for (let i = 0; i < 3; i++) await fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: bytes });

  const levels = [];
  for (const connections of CONNECTIONS) {
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const samples: number[] = [];
    const sampler = setInterval(() => {
      const rss = process.memoryUsage().rss;
      samples.push(rss);
      rssPeak = Math.max(rssPeak, rss);
    }, 500);
    const batchesBefore = await batchStats(server.metrics.registry);
    const result = await autocannon({
      url: `${url}/v1/captions`,
      method: 'POST',
      headers: { 'content-type': 'image/jpeg' },
      body: bytes,
      connections,
      duration: SECONDS,
      timeout: 60,
    });
    clearInterval(sampler);
    const batchesAfter = await batchStats(server.metrics.registry);
    const rssAfter = process.memoryUsage().rss;
    const ok = result['2xx'];
    const level = {
      connections,
      requestsPerSecond: round(ok / result.duration),
      latencyP50Ms: result.latency.p50,
      latencyP99Ms: result.latency.p99,
      ok,
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
      meanBatchSize: round((batchesAfter.sum - batchesBefore.sum) / Math.max(1, batchesAfter.count - batchesBefore.count)),
      rssMb: { before: mb(rssBefore), peak: mb(rssPeak), median: mb(samples.sort((a, b) => a - b)[samples.length >> 1] ?? rssBefore), after: mb(rssAfter) },
    };
    levels.push(level);
    console.log(
      `${String(connections).padStart(2)} connections: ${level.requestsPerSecond} req/s, p50 ${level.latencyP50Ms} ms, p99 ${level.latencyP99Ms} ms, ` +
        `${ok} ok, ${level.errors} errors, ${level.timeouts} timeouts, ${level.non2xx} non-2xx, mean batch ${level.meanBatchSize}, ` +
        `RSS ${level.rssMb.before} → peak ${level.rssMb.peak} → ${level.rssMb.after} MB`,
    );
  }
  await server.app.close();
  rmSync(dir, { recursive: true, force: true });

  const at16 = levels.find((l) => l.connections === 16) ?? levels[levels.length - 1];
  const summary = {
    image: IMAGE,
    maxBatch: MAX_BATCH,
    threads: THREADS,
    secondsPerLevel: SECONDS,
    encoderImagesPerSecond: round(encoderImagesPerSecond),
    pipelineImagesPerSecond: round(pipelineImagesPerSecond),
    levels,
    fractionOfEncoderBound: round(at16.requestsPerSecond / encoderImagesPerSecond, 3),
    fractionOfPipelineBound: round(at16.requestsPerSecond / pipelineImagesPerSecond, 3),
    rssMb: { start: mb(rssStart), end: mb(process.memoryUsage().rss) },
    int8Decoder,
    cpu: cpuSummary(cpu),
  };
  console.log(
    `at ${at16.connections} clients: ${at16.requestsPerSecond} req/s = ${round(100 * summary.fractionOfEncoderBound, 1)}% of the encoder-bound ` +
      `${summary.encoderImagesPerSecond} images/s, ${round(100 * summary.fractionOfPipelineBound, 1)}% of the in-process pipeline's ${summary.pipelineImagesPerSecond} images/s`,
  );
  console.log(JSON.stringify(summary));
}

/** Count and sum of the server's batch-size histogram. */
async function batchStats(registry: { getSingleMetric: (name: string) => unknown }): Promise<{ count: number; sum: number }> {
  const metric = registry.getSingleMetric('pixel_info_encoder_batch_size') as { get: () => Promise<{ values: Array<{ metricName?: string; value: number }> }> };
  const { values } = await metric.get();
  const find = (suffix: string) => values.find((v) => v.metricName === `pixel_info_encoder_batch_size_${suffix}`)?.value ?? 0;
  return { count: find('count'), sum: find('sum') };
}

await main();
