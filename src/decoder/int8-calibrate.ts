/**
 * Calibration of the int8 decoder: the input ranges of its dense layers, measured while the fp32 decoder captions
 * real images with the card's decoding settings. With them every int8 layer quantises its input with a fixed scale
 * (src/onnx/quantize.ts, QuantizeLinear + MatMulIntegerToFloat), so a row's result depends on that row alone and
 * an image gets the same caption whatever else is in its batch (per-call dynamic quantisation scales the whole
 * batch together, so a caption could change with its neighbours). `pixel-info eval --calibrate-int8` runs it and
 * records the ranges in the model card (`quantization.int8DecoderCalibration`), where loadDecoder finds them.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageEncoder } from '../encoder/index.js';
import { loadImage, writeCaffeTensor } from '../image/index.js';
import { IMAGE_FLOATS } from '../image/tensor.js';
import { denseLayerInputs } from '../onnx/quantize.js';
import { RangeObserver, type TensorRange } from '../onnx/quantize-static.js';
import type { Tensor } from '../backend/onnx.js';
import { resolveGeneration } from './generation.js';
import { CARD_FILE, loadDecoder, readModelDir } from './model-dir.js';
import { beamSearch } from './search.js';

type Graph = 'init' | 'step';

export interface DecoderCalibration {
  dataset: string;
  split: string;
  images: number;
  percentile: number;
  date: string;
  ranges: Record<Graph, Record<string, TensorRange>>;
}

export interface CalibrateDecoderOptions {
  modelDir: string;
  /** Calibration images (paths), e.g. the first Flickr8k train images. */
  images: readonly string[];
  dataset: string;
  split: string;
  /** Ranges clipped at this percentile of the magnitudes (default 99.999). */
  percentile?: number;
  threads?: number;
  encoder?: ImageEncoder;
  onProgress?: (done: number, total: number) => void;
}

export async function calibrateInt8Decoder(options: CalibrateDecoderOptions): Promise<DecoderCalibration> {
  const model = await readModelDir(options.modelDir);
  const files = { init: join(model.dir, 'decoder_init.onnx'), step: join(model.dir, 'decoder_step.onnx') };
  const tensors = {
    init: denseLayerInputs(await readFile(files.init)),
    step: denseLayerInputs(await readFile(files.step)),
  };
  const observers = { init: new Map<string, RangeObserver>(), step: new Map<string, RangeObserver>() };
  for (const g of ['init', 'step'] as const) for (const t of tensors[g]) observers[g].set(t, new RangeObserver());
  const graphInputs = { init: new Set(['features']), step: new Set(['tokens', 'image', 'h', 'c', 'memory', 'proj_features']) };
  const decoder = await loadDecoder(model, {
    threads: options.threads,
    int8: false,
    observe: {
      // a graph input is seen in the feeds; anything else is added as an output
      tensors: { init: tensors.init.filter((t) => !graphInputs.init.has(t)), step: tensors.step.filter((t) => !graphInputs.step.has(t)) },
      onRun: (graph: Graph, feeds: Record<string, Tensor>, outputs: Record<string, Tensor>) => {
        for (const [name, observer] of observers[graph]) {
          const t = feeds[name] ?? outputs[name];
          if (t) observer.observe(t.data as Float32Array);
        }
      },
    },
  });
  const encoder = options.encoder ?? (await ImageEncoder.load({ threads: options.threads, outputs: ['features'], precision: 'fp32' }));
  try {
    const search = resolveGeneration({}, model.card.decoding);
    const BATCH = 8;
    for (let i = 0; i < options.images.length; i += BATCH) {
      const part = options.images.slice(i, i + BATCH);
      const batch = new Float32Array(part.length * IMAGE_FLOATS);
      for (let k = 0; k < part.length; k++) writeCaffeTensor((await loadImage(part[k])).pixels, batch, k);
      const { features } = await encoder.encode(batch, part.length);
      await beamSearch(decoder, features!, part.length, search, { words: model.vocabulary.words });
      options.onProgress?.(Math.min(i + BATCH, options.images.length), options.images.length);
    }
  } finally {
    await decoder.release();
    if (!options.encoder) await encoder.release();
  }
  const percentile = options.percentile ?? 99.999;
  const ranges = (g: Graph) => Object.fromEntries([...observers[g]].map(([t, o]) => [t, o.range(percentile)]));
  return {
    dataset: options.dataset,
    split: options.split,
    images: options.images.length,
    percentile,
    date: new Date().toISOString(),
    ranges: { init: ranges('init'), step: ranges('step') },
  };
}

/** Records a calibration in `<modelDir>/model-card.json` (quantization.int8DecoderCalibration), keeping the rest. */
export async function writeInt8DecoderCalibration(modelDir: string, calibration: DecoderCalibration): Promise<void> {
  const path = join(modelDir, CARD_FILE);
  const card = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  card.quantization = { ...(card.quantization as object | undefined), int8DecoderCalibration: calibration };
  await writeFile(path, `${JSON.stringify(card, null, 1)}\n`);
}
