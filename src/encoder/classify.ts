/** ImageNet top-k for a list of images: the encoder's own check, usable from the library and the CLI. */
import { dirname } from 'node:path';
import { ImageEncoder } from './index.js';
import { imagenetLabels } from './labels.js';
import { loadImage, writeCaffeTensor, type ImageLimits } from '../image/index.js';
import { asPixelInfoError } from '../errors.js';

export interface ClassPrediction {
  label: string;
  index: number;
  probability: number;
}

export type ClassifyResult = { file: string; top: ClassPrediction[] } | { file: string; error: { code: string; message: string } };

export function softmaxTopK(logits: Float32Array, k: number, labels: readonly string[] = imagenetLabels()): ClassPrediction[] {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  const exp = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) sum += exp[i] = Math.exp(logits[i] - max);
  return Array.from(exp.keys())
    .sort((a, b) => exp[b] - exp[a])
    .slice(0, k)
    .map((index) => ({ label: labels[index], index, probability: exp[index] / sum }));
}

export async function classifyImages(
  encoder: ImageEncoder,
  files: string[],
  opts: { topK?: number; batchSize?: number; limits?: ImageLimits } = {},
): Promise<ClassifyResult[]> {
  const topK = opts.topK ?? 5;
  const batchSize = opts.batchSize ?? 8;
  const { classes } = encoder.geometry;
  const labels = imagenetLabels(dirname(dirname(encoder.modelPath)));
  const results: ClassifyResult[] = [];
  for (let start = 0; start < files.length; start += batchSize) {
    const chunk = files.slice(start, start + batchSize);
    const loaded = await Promise.allSettled(chunk.map((f) => loadImage(f, opts.limits)));
    const good = loaded.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, pixels: r.value.pixels }] : []));
    const batch = new Float32Array(good.length * ImageEncoder.imageFloats);
    good.forEach((g, j) => writeCaffeTensor(g.pixels, batch, j));
    const out = good.length ? await encoder.encode(batch, good.length) : { logits: new Float32Array(0) };
    const byIndex = new Map(good.map((g, j) => [g.i, out.logits!.subarray(j * classes, (j + 1) * classes)]));
    loaded.forEach((r, i) => {
      const file = chunk[i];
      if (r.status === 'rejected') results.push({ file, error: asPixelInfoError(r.reason, file).toJSON() });
      else results.push({ file, top: softmaxTopK(byIndex.get(i)!, topK, labels) });
    });
  }
  return results;
}
