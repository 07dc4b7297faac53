/**
 * Encoder benchmark (not a test): images/s of our ONNX ResNet50 at batch 1 and 8, of the same
 * weights in PyTorch (CPU) and in TF.js (wasm), with the same thread count, plus the machine's
 * fp32 matrix-multiply rate measured in the same run, and the fraction of that roofline reached.
 *
 *   npm run bench:encoder [-- --seconds 15 --threads 2]
 *
 * The last line printed is JSON: {"imagesPerSecond", "pytorchImagesPerSecond", "ratioVsPytorch", "rooflineFraction", ...,
 * "cpu": {model, cores, features, isa}}
 */
import { timeLoop } from './timing.js';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { defaultInt8CardPath } from '../src/encoder/int8.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { cpuInfo, cpuLine, cpuSummary } from '../src/backend/cpu.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { sourceModelJson } from '../src/encoder/cache.js';
import { convertResNet50 } from '../src/encoder/convert.js';
import { readKerasModel } from '../src/encoder/keras-model.js';
import { DataType, encodeModel, node, valueInfo } from '../src/onnx/proto.js';
import { loadTfjsReference, nchwToNhwc } from '../test/helpers/tfjs-reference.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const SECONDS = Number(args.get('seconds') ?? 12);
const THREADS = Number(args.get('threads') ?? 2);
const PYTHON = process.env.PIXEL_INFO_PYTHON ?? '/usr/bin/python3';


/** fp32 GEMM rate through onnxruntime's own kernels (MLAS): the best of a few sizes is the machine's practical ceiling. */
async function matmulGflops(): Promise<number> {
  let best = 0;
  for (const n of [1024, 2048]) best = Math.max(best, await matmulGflopsAt(n));
  return best;
}

async function matmulGflopsAt(n: number): Promise<number> {
  const bytes = encodeModel({
    name: 'gemm',
    nodes: [node('MatMul', ['a', 'b'], ['c'])],
    initializers: [],
    inputs: [valueInfo('a', DataType.FLOAT, [n, n]), valueInfo('b', DataType.FLOAT, [n, n])],
    outputs: [valueInfo('c', DataType.FLOAT, [n, n])],
  });
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: THREADS });
  const a = new ort.Tensor('float32', Float32Array.from({ length: n * n }, () => Math.random()), [n, n]);
  const b = new ort.Tensor('float32', Float32Array.from({ length: n * n }, () => Math.random()), [n, n]);
  const t = await timeLoop(() => session.run({ a, b }), Math.min(SECONDS, 6));
  return (2 * n ** 3 * t.calls) / t.seconds / 1e9;
}

function randomBatch(count: number): Float32Array {
  return Float32Array.from({ length: count * ImageEncoder.imageFloats }, () => Math.random() * 200 - 100);
}

async function ours(level: 'basic' | 'extended' | 'all', batch: number, precision: 'fp32' | 'int8' = 'fp32'): Promise<number> {
  const enc = await ImageEncoder.load({ threads: THREADS, graphOptimizationLevel: level, outputs: ['features', 'pooled'], precision });
  const x = randomBatch(batch);
  const t = await timeLoop(() => enc.encode(x, batch), SECONDS);
  await enc.release();
  return (batch * t.calls) / t.seconds;
}

async function pytorch(): Promise<{ batch1: number; batch8: number; torch: string; maxLogitDiff: number }> {
  // Same weights? Run one batch through both and compare logits before timing anything.
  const x = randomBatch(2);
  const enc = await ImageEncoder.load({ threads: THREADS, outputs: ['logits'] });
  const ourLogits = (await enc.encode(x, 2)).logits!;
  await enc.release();
  const file = join(tmpdir(), `px-bench-${process.pid}.f32`);
  writeFileSync(file, x);
  const python = (extra: string[]) => {
    const r = spawnSync(PYTHON, ['bench/pytorch_resnet50.py', '--threads', String(THREADS), ...extra], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`PyTorch baseline failed (${PYTHON}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  };
  const theirs = (python(['--check', file]) as number[][]).flat();
  const maxLogitDiff = theirs.reduce((m, v, i) => Math.max(m, Math.abs(v - ourLogits[i])), 0);
  const r = python(['--batch', '1,8', '--seconds', String(SECONDS)]);
  return { batch1: r.batch1, batch8: r.batch8, torch: r.torch, maxLogitDiff };
}

async function tfjsWasm(batch: number): Promise<number> {
  const reference = await loadTfjsReference();
  const x = nchwToNhwc(randomBatch(batch), batch);
  const t = await timeLoop(() => reference(x, batch), Math.min(SECONDS, 10));
  return (batch * t.calls) / t.seconds;
}

const CPU = cpuInfo();
const results: Record<string, unknown> = { threads: THREADS, seconds: SECONDS };
console.log(`encoder benchmark: ${THREADS} threads, ~${SECONDS}s per measurement`);
console.log(cpuLine(CPU));

// Work per image, counted from the converted graph (convolutions + classifier multiply-adds × 2).
const RESNET50_GFLOP = (2 * convertResNet50(await readKerasModel(sourceModelJson().path)).macsPerImage) / 1e9;
results.gflopPerImage = RESNET50_GFLOP;
const gflops = await matmulGflops();
results.matmulGflops = gflops;
const rooflineImagesPerSecond = gflops / RESNET50_GFLOP;
console.log(`ResNet50: ${RESNET50_GFLOP.toFixed(2)} GFLOP per image`);
console.log(`fp32 matmul (onnxruntime MLAS, best of 1024^3 and 2048^3): ${gflops.toFixed(1)} GFLOP/s → roofline ${rooflineImagesPerSecond.toFixed(1)} img/s`);

for (const level of ['basic', 'extended', 'all'] as const) {
  const b8 = await ours(level, 8);
  results[`ours_${level}_batch8`] = b8;
  console.log(`ours, graph optimisation ${level}: batch 8 ${b8.toFixed(2)} img/s`);
}
const oursBatch1 = await ours('all', 1);
const oursBatch8 = results.ours_all_batch8 as number;
console.log(`ours (all): batch 1 ${oursBatch1.toFixed(2)} img/s, batch 8 ${oursBatch8.toFixed(2)} img/s`);

// The int8 encoder (src/encoder/int8.ts; on by default only where its gate passed for this machine type).
let int8: { batch1: number; batch8: number } | undefined;
if (existsSync(defaultInt8CardPath())) {
  int8 = { batch8: await ours('all', 8, 'int8'), batch1: await ours('all', 1, 'int8') };
  console.log(`ours int8 (static QDQ, 7-bit weights): batch 1 ${int8.batch1.toFixed(2)} img/s, batch 8 ${int8.batch8.toFixed(2)} img/s`);
}

const pt = await pytorch();
console.log(`PyTorch ${pt.torch} (same weights, max |logit diff| vs ours ${pt.maxLogitDiff.toExponential(1)}): batch 1 ${pt.batch1.toFixed(2)}, batch 8 ${pt.batch8.toFixed(2)} img/s`);

const tf1 = await tfjsWasm(1);
const tf8 = await tfjsWasm(8);
console.log(`TF.js wasm: batch 1 ${tf1.toFixed(2)}, batch 8 ${tf8.toFixed(2)} img/s`);

const summary = {
  imagesPerSecond: Number(oursBatch8.toFixed(2)),
  imagesPerSecondBatch1: Number(oursBatch1.toFixed(2)),
  pytorchImagesPerSecond: Number(pt.batch8.toFixed(2)),
  pytorchImagesPerSecondBatch1: Number(pt.batch1.toFixed(2)),
  ratioVsPytorch: Number((oursBatch8 / pt.batch8).toFixed(2)),
  int8ImagesPerSecond: int8 ? Number(int8.batch8.toFixed(2)) : null,
  int8ImagesPerSecondBatch1: int8 ? Number(int8.batch1.toFixed(2)) : null,
  int8RatioVsPytorch: int8 ? Number((int8.batch8 / pt.batch8).toFixed(2)) : null,
  int8RatioVsFp32: int8 ? Number((int8.batch8 / oursBatch8).toFixed(2)) : null,
  tfjsWasmImagesPerSecond: Number(tf8.toFixed(2)),
  tfjsWasmImagesPerSecondBatch1: Number(tf1.toFixed(2)),
  matmulGflops: Number(gflops.toFixed(1)),
  gflopPerImage: Number(RESNET50_GFLOP.toFixed(2)),
  achievedGflops: Number((oursBatch8 * RESNET50_GFLOP).toFixed(1)),
  rooflineFraction: Number((oursBatch8 / rooflineImagesPerSecond).toFixed(3)),
  threads: THREADS,
  cpu: cpuSummary(CPU),
};
console.log(JSON.stringify(summary));
