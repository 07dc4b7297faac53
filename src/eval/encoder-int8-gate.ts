/**
 * The int8 encoder's quality gate on this machine (src/encoder/int8.ts): on Flickr8k val images, the fp32 and the
 * int8 encoder side by side — ImageNet top-1 agreement and feature cosine on `images` of them, images/s at batch 8
 * in the same run, and val CIDEr of the shipped decoder with each encoder (evaluated from the images). It passes
 * when top-1 agreement ≥ 97% and the CIDEr drop ≤ 0.005; `pixel-info encoder --int8-gate --write-card` records it
 * under this machine's ISA class, which is what turns int8 on by default here.
 */
import { join } from 'node:path';
import { cpuInfo, isaClass, type IsaClass } from '../backend/cpu.js';
import { loadDataset, type DatasetName } from '../data/datasets/index.js';
import { ImageEncoder } from '../encoder/index.js';
import { defaultInt8CardPath, INT8_ENCODER_GATE, readInt8Card, writeInt8Card, type EncoderInt8Gate } from '../encoder/int8.js';
import { loadImage } from '../image/index.js';
import { writeCaffeTensor, IMAGE_FLOATS } from '../image/tensor.js';
import { evaluateModel } from './evaluate.js';

export interface EncoderGateOptions {
  dataset?: DatasetName;
  dataDir?: string;
  /** Images for top-1 agreement and cosine (default 500), the first of the val split by name. */
  images?: number;
  /** Val images for the CIDEr comparison (default: all); 0 skips it (the gate then cannot pass). */
  ciderImages?: number;
  /** Output folder of the two evaluations. */
  out: string;
  cardPath?: string;
  cacheDir?: string;
  threads?: number;
  /** Seconds of timing per encoder (default 9, in rounds of 3 s alternating the two). */
  speedSeconds?: number;
  onStage?: (stage: string) => void;
}

export interface EncoderGateRun {
  isa: IsaClass;
  gate: EncoderInt8Gate;
}

function argmax(values: Float32Array, from: number, n: number): number {
  let best = from;
  for (let i = from + 1; i < from + n; i++) if (values[i] > values[best]) best = i;
  return best - from;
}

export async function runEncoderInt8Gate(options: EncoderGateOptions): Promise<EncoderGateRun> {
  const dataset = await loadDataset(options.dataset ?? 'flickr8k', { dataDir: options.dataDir });
  const val = dataset.images.filter((im) => im.split === 'val');
  const sample = val.slice(0, options.images ?? INT8_ENCODER_GATE.images);
  const cardPath = options.cardPath ?? defaultInt8CardPath();
  await readInt8Card(cardPath); // a missing or broken card fails before anything runs
  const load = (precision: 'fp32' | 'int8') =>
    ImageEncoder.load({ cacheDir: options.cacheDir, threads: options.threads, precision, int8Card: cardPath, outputs: ['features', 'logits'] });
  const fp32 = await load('fp32');
  const int8 = await load('int8');
  let agree = 0;
  let cosSum = 0;
  let cosMin = 1;
  let speedBatch: Float32Array | undefined;
  try {
    options.onStage?.(`top-1 agreement and feature cosine on ${sample.length} val images`);
    for (let i = 0; i < sample.length; i += 8) {
      const part = sample.slice(i, i + 8);
      const batch = new Float32Array(part.length * IMAGE_FLOATS);
      for (let k = 0; k < part.length; k++) writeCaffeTensor((await loadImage(part[k].path)).pixels, batch, k);
      speedBatch ??= part.length === 8 ? batch : undefined;
      const [a, b] = [await fp32.encode(batch, part.length), await int8.encode(batch, part.length)];
      const F = a.features!.length / part.length;
      const C = a.logits!.length / part.length;
      for (let k = 0; k < part.length; k++) {
        let dot = 0;
        let na = 0;
        let nb = 0;
        for (let j = k * F; j < (k + 1) * F; j++) {
          dot += a.features![j] * b.features![j];
          na += a.features![j] ** 2;
          nb += b.features![j] ** 2;
        }
        const cos = na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 1;
        cosSum += cos;
        cosMin = Math.min(cosMin, cos);
        if (argmax(a.logits!, k * C, C) === argmax(b.logits!, k * C, C)) agree++;
      }
    }
    options.onStage?.('speed at batch 8');
    const speed = { fp32: 0, int8: 0 };
    if (speedBatch) {
      const total = options.speedSeconds ?? 9;
      const rounds = Math.max(1, Math.round(total / 3));
      const counts = { fp32: 0, int8: 0 };
      const seconds = { fp32: 0, int8: 0 };
      for (let r = 0; r < rounds; r++) {
        for (const [name, enc] of [['fp32', fp32], ['int8', int8]] as const) {
          await enc.encode(speedBatch, 8);
          const t0 = performance.now();
          while (performance.now() - t0 < (total / rounds) * 1000 / 2) {
            await enc.encode(speedBatch, 8);
            counts[name] += 8;
          }
          seconds[name] += (performance.now() - t0) / 1000;
        }
      }
      speed.fp32 = counts.fp32 / seconds.fp32;
      speed.int8 = counts.int8 / seconds.int8;
    }
    await Promise.all([fp32.release(), int8.release()]);

    let cider: EncoderInt8Gate['cider'] = null;
    if (options.ciderImages !== 0) {
      const limit = options.ciderImages;
      const run = async (precision: 'fp32' | 'int8') => {
        options.onStage?.(`val CIDEr with the ${precision} encoder`);
        const r = await evaluateModel({
          dataset: options.dataset ?? 'flickr8k',
          split: 'val',
          out: join(options.out, precision),
          dataDir: options.dataDir,
          limit,
          threads: options.threads,
          encoderPrecision: precision,
          encoderInt8Card: cardPath,
          encoderCacheDir: options.cacheDir,
          meteor: 'off',
          examples: 0,
        });
        return r.record.metrics.CIDEr ?? 0;
      };
      const a = await run('fp32');
      const b = await run('int8');
      cider = { fp32: a, int8: b, drop: a - b };
    }
    const top1Agreement = sample.length ? agree / sample.length : 0;
    const info = cpuInfo();
    const gate: EncoderInt8Gate = {
      passed:
        sample.length >= INT8_ENCODER_GATE.images &&
        top1Agreement >= INT8_ENCODER_GATE.minTop1Agreement &&
        cider !== null &&
        cider.drop <= INT8_ENCODER_GATE.maxCiderDrop &&
        (options.ciderImages === undefined || options.ciderImages >= val.length),
      date: new Date().toISOString(),
      cpu: { model: info.model, features: info.features },
      top1Agreement,
      images: sample.length,
      featureCosine: { mean: sample.length ? cosSum / sample.length : 1, min: cosMin },
      cider,
      speed: { fp32: speed.fp32, int8: speed.int8, ratio: speed.fp32 > 0 ? speed.int8 / speed.fp32 : 0 },
      limits: INT8_ENCODER_GATE,
    };
    return { isa: isaClass(info), gate };
  } catch (err) {
    await Promise.allSettled([fp32.release(), int8.release()]);
    throw err;
  }
}

/** Records a gate in the card under its ISA class, keeping the ranges and the other machine types' gates. */
export async function recordEncoderGate(run: EncoderGateRun, cardPath = defaultInt8CardPath()): Promise<void> {
  const card = await readInt8Card(cardPath);
  card.gates[run.isa] = run.gate;
  await writeInt8Card(card, cardPath);
}
