/**
 * The int8 encoder: the converted fp32 ResNet50 quantised statically (src/onnx/quantize-static.ts: uint8
 * activations with calibrated ranges, 7-bit per-channel weights, QDQ that onnxruntime fuses into QLinearConv).
 *
 * What ships is small: the calibration card `models/resnet50-int8/int8.json` (activation ranges measured on Flickr8k
 * train images, the convolutions left in fp32, and the quality gates measured per machine type). The int8 graph is
 * built from the cached fp32 one at first use and cached beside it (`resnet50.int8.onnx`, remade when the fp32 model
 * or the card changes).
 *
 * Precision choice (`ImageEncoder.load({ precision })`): 'fp32', 'int8', or 'auto' (the default) = int8 only when the
 * card records a passed gate for this machine's ISA class (src/backend/cpu.ts isaClass): val CIDEr within 0.005 of
 * fp32 and ImageNet top-1 agreement with fp32 of at least 97% on 500 val images (`pixel-info encoder --int8-gate`).
 */
import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isaClass, type IsaClass } from '../backend/cpu.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { quantizeStatic, type TensorRange } from '../onnx/quantize-static.js';
import { ensureEncoderModel, MODEL_FILE } from './cache.js';

export const INT8_CARD_FORMAT = 'pixel-info-encoder-int8';
export const INT8_MODEL_FILE = 'resnet50.int8.onnx';
/** The gate's limits (issue "Speed": a reduced-precision encoder must keep captions and classes). */
export const INT8_ENCODER_GATE = { maxCiderDrop: 0.005, minTop1Agreement: 0.97, images: 500 } as const;

export type EncoderPrecision = 'fp32' | 'int8';
export type EncoderPrecisionChoice = EncoderPrecision | 'auto';

/** One machine type's quality gate of the int8 encoder. */
export interface EncoderInt8Gate {
  passed: boolean;
  date: string;
  cpu: { model: string; features: string[] };
  /** ImageNet top-1 class the same as fp32's, on `images` Flickr8k val images. */
  top1Agreement: number;
  images: number;
  featureCosine: { mean: number; min: number };
  /** val CIDEr with each encoder (the shipped decoder, its card's decoding settings); null when not measured. */
  cider: { fp32: number; int8: number; drop: number } | null;
  /** Images/s at batch 8, the same run. */
  speed: { fp32: number; int8: number; ratio: number };
  limits: typeof INT8_ENCODER_GATE;
}

export interface EncoderInt8Card {
  format: typeof INT8_CARD_FORMAT;
  version: 1;
  /** The fp32 model the ranges were measured on. */
  encoder: { source: string; modelSha256: string };
  calibration: { dataset: string; split: string; images: number; percentile: number; date: string };
  /** Conv nodes left in fp32. */
  exclude: string[];
  weightBits: 7 | 8;
  ranges: Record<string, TensorRange>;
  /** Gates by ISA class. */
  gates: Partial<Record<IsaClass, EncoderInt8Gate>>;
}

const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** $PIXEL_INFO_ENCODER_INT8_CARD, else <package root>/models/resnet50-int8/int8.json. */
export function defaultInt8CardPath(): string {
  return process.env.PIXEL_INFO_ENCODER_INT8_CARD || join(PACKAGE_ROOT, 'models', 'resnet50-int8', 'int8.json');
}

export async function readInt8Card(path = defaultInt8CardPath()): Promise<EncoderInt8Card> {
  let value: EncoderInt8Card;
  try {
    value = JSON.parse(await readFile(path, 'utf8')) as EncoderInt8Card;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ErrorCodes.MODEL_NOT_FOUND : ErrorCodes.MODEL_CORRUPT;
    throw new PixelInfoError(code, `int8 encoder card ${path}: ${(err as Error).message}`, { subject: path, cause: err });
  }
  if (value?.format !== INT8_CARD_FORMAT || typeof value.ranges !== 'object' || !Array.isArray(value.exclude)) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path} is not an int8 encoder card (format ${INT8_CARD_FORMAT})`, { subject: path });
  }
  value.gates ??= {};
  return value;
}

/** What 'auto' means on this machine: int8 when the card has a passed gate for its ISA class. */
export async function resolveEncoderPrecision(choice: EncoderPrecisionChoice = 'auto', cardPath = defaultInt8CardPath()): Promise<EncoderPrecision> {
  if (choice !== 'auto') return choice;
  const card = await readInt8Card(cardPath).catch(() => undefined);
  return card?.gates[isaClass()]?.passed === true ? 'int8' : 'fp32';
}

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** The int8 graph for the cached fp32 encoder and a card: from the cache when it was built from the same two. */
export async function ensureInt8Encoder(cacheDir: string, cardPath = defaultInt8CardPath()): Promise<{ path: string; bytes: Buffer; sha256: string }> {
  const fp32 = await ensureEncoderModel(cacheDir);
  const card = await readInt8Card(cardPath);
  const fp32Sha = fp32.manifest.files[MODEL_FILE].sha256;
  if (card.encoder.modelSha256 !== fp32Sha) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_CORRUPT,
      `${cardPath} was calibrated on encoder ${card.encoder.modelSha256.slice(0, 12)}…, the cached one is ${fp32Sha.slice(0, 12)}…; calibrate again (pixel-info encoder --calibrate-int8)`,
      { subject: cardPath },
    );
  }
  // the graph depends on the fp32 model and on the ranges / exclusions / weight bits, not on the gates
  const from = sha256(`${fp32Sha}\0${JSON.stringify([card.ranges, card.exclude, card.weightBits])}`);
  const path = join(dirname(fp32.path), INT8_MODEL_FILE);
  const infoPath = `${path}.json`;
  try {
    const info = JSON.parse(await readFile(infoPath, 'utf8')) as { from: string; sha256: string; bytes: number };
    const bytes = await readFile(path);
    if (info.from === from && bytes.length === info.bytes && sha256(bytes) === info.sha256) return { path, bytes, sha256: info.sha256 };
  } catch {
    // not built yet, or damaged: build it
  }
  const { bytes } = quantizeStatic(fp32.bytes, { ranges: card.ranges, exclude: card.exclude, weightBits: card.weightBits });
  const digest = sha256(bytes);
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
  await writeFile(infoPath, JSON.stringify({ from, sha256: digest, bytes: bytes.length }));
  return { path, bytes: Buffer.from(bytes), sha256: digest };
}

export interface CalibrateOptions {
  /** Calibration images (paths), e.g. a few hundred Flickr8k train images. */
  images: readonly string[];
  /** Where they come from, for the card. */
  dataset: string;
  split: string;
  /** Ranges clipped at this percentile of the magnitudes (default 99.999; 100 = min/max). */
  percentile?: number;
  /** Conv nodes left in fp32 (default: the first convolution, whose input is the raw image). */
  exclude?: readonly string[];
  weightBits?: 7 | 8;
  cacheDir?: string;
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The first convolution: its input is the caffe-normalised image, not a ReLU output, and it is cheap. */
export const DEFAULT_INT8_EXCLUDE = ['bn_conv1'] as const;

/** Measures the activation ranges on `images` with the cached fp32 encoder and returns a card (no gates yet). */
export async function calibrateEncoder(options: CalibrateOptions): Promise<EncoderInt8Card> {
  const [{ activationTensors, withOutputs, RangeObserver }, { ort, createSession, sessionOptions }, { loadImage }, { writeCaffeTensor, IMAGE_FLOATS }] = await Promise.all([
    import('../onnx/quantize-static.js'),
    import('../backend/onnx.js'),
    import('../image/index.js'),
    import('../image/tensor.js'),
  ]);
  if (options.images.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'calibration needs at least one image');
  const exclude = [...(options.exclude ?? DEFAULT_INT8_EXCLUDE)];
  const percentile = options.percentile ?? 99.999;
  const fp32 = await ensureEncoderModel(options.cacheDir ?? (await import('./cache.js')).defaultCacheDir());
  const tensors = activationTensors(fp32.bytes, exclude);
  // 'basic': no fusions, so every tensor named in the graph still exists
  const session = await createSession(withOutputs(fp32.bytes, tensors), { ...sessionOptions(options.threads), graphOptimizationLevel: 'basic' });
  const observers = new Map(tensors.map((t) => [t, new RangeObserver()]));
  const BATCH = 8;
  try {
    for (let i = 0; i < options.images.length; i += BATCH) {
      const paths = options.images.slice(i, i + BATCH);
      const batch = new Float32Array(paths.length * IMAGE_FLOATS);
      for (let k = 0; k < paths.length; k++) writeCaffeTensor((await loadImage(paths[k])).pixels, batch, k);
      const out = await session.run({ image: new ort.Tensor('float32', batch, [paths.length, 3, 224, 224]) }, tensors);
      for (const t of tensors) observers.get(t)!.observe(out[t].data as Float32Array);
      options.onProgress?.(Math.min(i + BATCH, options.images.length), options.images.length);
    }
  } finally {
    await session.release();
  }
  return {
    format: INT8_CARD_FORMAT,
    version: 1,
    encoder: { source: fp32.manifest.source, modelSha256: fp32.manifest.files[MODEL_FILE].sha256 },
    calibration: { dataset: options.dataset, split: options.split, images: options.images.length, percentile, date: new Date().toISOString() },
    exclude,
    weightBits: options.weightBits ?? 7,
    ranges: Object.fromEntries(tensors.map((t) => [t, observers.get(t)!.range(percentile)])),
    gates: {},
  };
}

export async function writeInt8Card(card: EncoderInt8Card, path = defaultInt8CardPath()): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, `${JSON.stringify(card, null, 1)}\n`);
  await rename(`${path}.tmp`, path);
}
