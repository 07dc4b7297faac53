/**
 * Experiment, not a product path yet: text→image R@1 when each query's top-K images by the matcher are re-ranked by
 * `logit + w · (mean per-token log-probability of the query under the captioning decoder, given the image)`.
 *
 *   node --import tsx bench/match-rerank.ts --features STORE --captions captions.json [--split val] [--queries 1000] [--k 20]
 *
 * Queries: one caption per image (the first), so 1000 for a Flickr8k split. Prints R@1 of the matcher alone, the share
 * of queries whose image is in the top K (the ceiling), and R@1 after re-ranking for several w (choose w on val).
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { FeatureStoreReader } from '../src/data/feature-store.js';
import { loadMatcher, defaultMatcherDir } from '../src/match/index.js';
import { calibrate } from '../src/match/score.js';
import { readModelDir, loadDecoder } from '../src/decoder/model-dir.js';
import { defaultModelDir } from '../src/pipeline/captioner.js';
import { captionLogProbs } from '../src/decoder/likelihood.js';

const { values: args } = parseArgs({
  options: { features: { type: 'string' }, captions: { type: 'string' }, split: { type: 'string', default: 'val' }, queries: { type: 'string', default: '1000' }, k: { type: 'string', default: '20' } },
});
if (!args.features || !args.captions) throw new Error('usage: bench/match-rerank.ts --features STORE --captions captions.json [--split val] [--queries N] [--k K]');
const QUERIES = Number(args.queries), K = Number(args.k), SPLIT = args.split!;
const caps = JSON.parse(readFileSync(args.captions, 'utf8'));
const ims = caps.images.filter((im: any) => im.split === SPLIT).sort((a: any, b: any) => (a.name < b.name ? -1 : 1));
const names: string[] = ims.map((im: any) => im.name);
const texts: { image: number; tokens: string[]; raw: string }[] = [];
ims.forEach((im: any, i: number) => im.captions.forEach((c: any) => texts.push({ image: i, tokens: c.tokens, raw: c.raw })));
const reader = new FeatureStoreReader(args.features);
const F = 49 * 2048;
const feats = new Float32Array(names.length * F);
names.forEach((n, i) => feats.set(reader.read(n, 'spatial'), i * F));
const matcher = await loadMatcher(defaultMatcherDir());
const D = matcher.dim;
const imgE = await matcher.embedImages(feats, names.length);
// one caption per image (every 5th), at most QUERIES
const q = texts.filter((_, j) => j % Math.max(1, Math.floor(texts.length / QUERIES)) === 0).slice(0, QUERIES);
const txtE = await matcher.embedTexts(q.map((t) => t.raw));
const model = await readModelDir(defaultModelDir());
const decoder = await loadDecoder(model);
const rows: { q: number; image: number; logit: number }[] = [];
let baseHits = 0, inTopK = 0;
q.forEach((t, j) => {
  const sims = names.map((_, i) => { let d = 0; for (let k = 0; k < D; k++) d += imgE[i * D + k] * txtE[j * D + k]; return { i, c: d }; });
  sims.sort((a, b) => b.c - a.c);
  if (sims[0].i === t.image) baseHits++;
  if (sims.slice(0, K).some((s) => s.i === t.image)) inTopK++;
  for (const s of sims.slice(0, K)) rows.push({ q: j, image: s.i, logit: calibrate(s.c, matcher.calibration).logit });
});
const started = performance.now();
const lp = new Array<number>(rows.length);
for (let s = 0; s < rows.length; s += 256) {
  const chunk = rows.slice(s, s + 256);
  const imgs = [...new Set(chunk.map((r) => r.image))];
  const at = new Map(imgs.map((i, k) => [i, k]));
  const f = new Float32Array(imgs.length * F);
  imgs.forEach((i, k) => f.set(feats.subarray(i * F, (i + 1) * F), k * F));
  const res = await captionLogProbs(decoder, f, imgs.length, chunk.map((r) => ({ image: at.get(r.image)!, tokens: model.vocabulary.encode(q[r.q].tokens) })));
  res.forEach((x, k) => (lp[s + k] = x.meanLogProb));
}
console.log(`${SPLIT}: ${q.length} queries, top-${K} rows ${rows.length}, likelihood ${((performance.now() - started) / 1000).toFixed(0)} s`);
console.log(`matcher R@1 ${(100 * baseHits / q.length).toFixed(1)}; own image in top-${K}: ${(100 * inTopK / q.length).toFixed(1)}`);
for (const w of [0.5, 1, 2, 3, 5, 8, 1e6]) {
  let hits = 0;
  for (let j = 0; j < q.length; j++) {
    let best = -Infinity, bi = -1;
    rows.forEach((r, k) => { if (r.q === j) { const v = r.logit + w * lp[k]; if (v > best) { best = v; bi = r.image; } } });
    if (bi === q[j].image) hits++;
  }
  console.log(`w=${w}: R@1 ${(100 * hits / q.length).toFixed(1)}`);
}
await decoder.release(); await matcher.release();
