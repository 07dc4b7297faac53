/**
 * On-device captioning benchmark (not a test): `pixel-info/web` in headless Chromium (onnxruntime-web,
 * WebAssembly SIMD + threads on a cross-origin isolated page) against Node's Captioner (onnxruntime-node), on the
 * same machine, same images, same settings, in one run:
 *
 *   - first load in the browser: bytes (model files + runtime; also what went over the wire) and seconds, with an
 *     empty Cache API, from `pixel-info serve`'s /models/ on loopback; then a second load from the Cache API
 *   - latency: one image at a time (p50, p95) after a warm-up, browser vs Node, and the ratio
 *   - throughput: images/s captioning all images in one call (batches of --batch)
 *
 *   npm run bench:browser [-- --images 16 --runs 2 --batch 4 --beam 3]
 *
 * Images: the first --images of the Flickr8k test split. The last line printed is JSON.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { buildServer } from '../src/server/app.js';
import { Captioner, defaultModelDir } from '../src/pipeline/captioner.js';
import { ONNX_BACKEND } from '../src/backend/onnx.js';
import { FLICKR8K, FLICKR8K_IMAGES, HAVE_FLICKR8K } from '../test/helpers/dataset.js';
import { browserLibraryBundle, CHROMIUM, CHROMIUM_ARGS } from '../test/helpers/browser-captioner.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const IMAGES = Number(args.get('images') ?? 16);
const RUNS = Number(args.get('runs') ?? 2);
const BATCH = Number(args.get('batch') ?? 4);
const BEAM = Number(args.get('beam') ?? 3);
if (!HAVE_FLICKR8K) throw new Error(`no Flickr8k under ${FLICKR8K}`);

const files = readFileSync(join(FLICKR8K, 'Flickr_8k.testImages.txt'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).slice(0, IMAGES);
const paths = files.map((f) => join(FLICKR8K_IMAGES, f));

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

// --- Node ---
const node = await Captioner.load({ batchSize: BATCH });
await node.caption(paths[0], { beamSize: BEAM }); // warm-up
const nodeLatency: number[] = [];
for (let run = 0; run < RUNS; run++) {
  for (const path of paths) {
    const t = performance.now();
    await node.caption(path, { beamSize: BEAM });
    nodeLatency.push(performance.now() - t);
  }
}
let t = performance.now();
await node.caption(paths, { beamSize: BEAM });
const nodeImagesPerS = paths.length / ((performance.now() - t) / 1000);

// --- the browser, against pixel-info serve's model files ---
const dir = mkdtempSync(join(tmpdir(), 'px-bench-browser-'));
const server = await buildServer({ loadEngine: async () => node, library: join(dir, 'library.sqlite'), logger: false, deviceModel: { modelDir: defaultModelDir() } });
const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  const page = await (await browser.newContext()).newPage();
  const bundle = Buffer.from(await browserLibraryBundle());
  await page.route('**/__bench__/**', (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/__bench__/pixel-info-web.js') return route.fulfill({ body: bundle, contentType: 'text/javascript' });
    return route.fulfill({ body: readFileSync(join(FLICKR8K_IMAGES, path.slice('/__bench__/img/'.length))), contentType: 'image/jpeg' });
  });
  await page.goto(url);
  await fetch(`${url}/models/manifest.json`); // the server prepares its files (fp16 encoder) before the clock starts
  const browserResult = await page.evaluate(
    async ({ files, runs, batch, beam }) => {
      const { Captioner } = await import('/__bench__/pixel-info-web.js' as string);
      const blobs: Blob[] = await Promise.all(files.map(async (f: string) => (await fetch(`/__bench__/img/${f}`)).blob()));
      await caches.delete('pixel-info-bench');
      performance.clearResourceTimings();
      performance.setResourceTimingBufferSize(1000);
      let t0 = performance.now();
      const first = await Captioner.load({ cacheName: 'pixel-info-bench', batchSize: batch });
      const firstLoadMs = performance.now() - t0;
      const wire = performance
        .getEntriesByType('resource')
        .filter((e) => /\/(models|ort)\//.test(e.name))
        .reduce((sum, e) => sum + (e as PerformanceResourceTiming).transferSize, 0);
      await first.release();
      t0 = performance.now();
      const captioner = await Captioner.load({ cacheName: 'pixel-info-bench', batchSize: batch });
      const cachedLoadMs = performance.now() - t0;
      await captioner.caption(blobs[0], { beamSize: beam }); // warm-up
      const latency: number[] = [];
      const captions: string[] = [];
      for (let run = 0; run < runs; run++) {
        for (const blob of blobs) {
          const t = performance.now();
          const r = await captioner.caption(blob, { beamSize: beam });
          latency.push(performance.now() - t);
          if (run === 0) captions.push(r.captions[0].text);
        }
      }
      t0 = performance.now();
      await captioner.caption(blobs, { beamSize: beam });
      const imagesPerS = blobs.length / ((performance.now() - t0) / 1000);
      await caches.delete('pixel-info-bench');
      return { stats: first.loadStats, firstLoadMs, wire, cachedLoadMs, latency, imagesPerS, captions, isolated: crossOriginIsolated };
    },
    { files, runs: RUNS, batch: BATCH, beam: BEAM },
  );
  const nodeCaptions = (await node.caption(paths, { beamSize: BEAM })).map((r) => ('captions' in r ? r.captions[0].text : ''));
  const same = browserResult.captions.filter((c: string, i: number) => c === nodeCaptions[i]).length;
  const summary = {
    machine: { cores: availableParallelism(), load1: round(loadavg()[0], 2) },
    images: paths.length,
    beam: BEAM,
    node: { backend: ONNX_BACKEND, latencyP50Ms: round(percentile(nodeLatency, 50)), latencyP95Ms: round(percentile(nodeLatency, 95)), imagesPerS: round(nodeImagesPerS, 2) },
    browser: {
      device: browserResult.stats.device,
      threads: browserResult.stats.threads,
      crossOriginIsolated: browserResult.isolated,
      latencyP50Ms: round(percentile(browserResult.latency, 50)),
      latencyP95Ms: round(percentile(browserResult.latency, 95)),
      imagesPerS: round(browserResult.imagesPerS, 2),
      firstLoadBytes: browserResult.stats.bytes,
      firstLoadWireBytes: browserResult.wire,
      firstLoadS: round(browserResult.firstLoadMs / 1000, 2),
      cachedLoadS: round(browserResult.cachedLoadMs / 1000, 2),
    },
    latencyRatio: round(percentile(browserResult.latency, 50) / percentile(nodeLatency, 50), 2),
    identicalCaptions: `${same}/${paths.length}`,
  };
  const b = summary.browser;
  console.log(`Node (${summary.node.backend}):        latency p50 ${summary.node.latencyP50Ms} ms, p95 ${summary.node.latencyP95Ms} ms; ${summary.node.imagesPerS} images/s`);
  console.log(`Browser (${b.device}, ${b.threads} threads): latency p50 ${b.latencyP50Ms} ms, p95 ${b.latencyP95Ms} ms; ${b.imagesPerS} images/s → ${summary.latencyRatio}x Node's latency`);
  console.log(`First load: ${(b.firstLoadBytes / 1e6).toFixed(1)} MB (${(b.firstLoadWireBytes / 1e6).toFixed(1)} MB over the wire) in ${b.firstLoadS} s; from the Cache API: ${b.cachedLoadS} s`);
  console.log(`Captions identical to Node's: ${summary.identicalCaptions}`);
  console.log(JSON.stringify(summary));
} finally {
  await browser.close();
  await server.app.close();
  rmSync(dir, { recursive: true, force: true });
}
