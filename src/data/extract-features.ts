/**
 * Batched feature extraction for a list of images into a feature store. Decoding of the next
 * batch overlaps encoding of the current one; a bad image gets a zero row and its error, and
 * the batch goes on.
 */
import { join } from 'node:path';
import { ImageEncoder, featureMapFloats, type EncodedBatch, type FeatureGeometry } from '../encoder/index.js';
import { loadImage, writeCaffeTensor, type ImageLimits } from '../image/index.js';
import { asPixelInfoError } from '../errors.js';
import { FeatureStoreWriter, type EncoderInfo } from './feature-store.js';

export interface ExtractOptions {
  storeDir: string;
  dataset: string;
  imageDir: string;
  imageNames: string[];
  /** Where an image lives when it is not `imageDir/name` (COCO keeps train2014/ and val2014/ apart). */
  pathOf?: (name: string) => string;
  encoder: ImageEncoder;
  encoderInfo: EncoderInfo;
  batchSize?: number;
  hflip?: boolean;
  overwrite?: boolean;
  limits?: ImageLimits;
  /** Stop after this many new rows (tests use it to simulate a killed run). */
  maxRows?: number;
  onProgress?: (done: number, total: number, failedSoFar: number) => void;
}

export interface ExtractSummary {
  total: number;
  resumedFrom: number;
  written: number;
  failed: Array<{ name: string; code: string; message: string }>;
  seconds: number;
}

interface PreparedBatch {
  count: number;
  input: Float32Array;
  flipped?: Float32Array;
  errors: Array<{ code: string; message: string } | undefined>;
}

async function prepareBatch(names: string[], pathOf: (name: string) => string, hflip: boolean, limits?: ImageLimits): Promise<PreparedBatch> {
  const per = ImageEncoder.imageFloats;
  const input = new Float32Array(names.length * per);
  const flipped = hflip ? new Float32Array(names.length * per) : undefined;
  const results = await Promise.allSettled(names.map((name) => loadImage(pathOf(name), limits)));
  const errors = results.map((r, i) => {
    if (r.status === 'fulfilled') {
      writeCaffeTensor(r.value.pixels, input, i);
      if (flipped) writeCaffeTensor(r.value.pixels, flipped, i, { hflip: true });
      return undefined;
    }
    const e = asPixelInfoError(r.reason, names[i]);
    return { code: e.code, message: e.message }; // its row stays zero
  });
  return { count: names.length, input, flipped, errors };
}

function zeroFailedRows(arr: Float32Array, rowFloats: number, errors: PreparedBatch['errors']): Float32Array {
  errors.forEach((e, i) => e && arr.fill(0, i * rowFloats, (i + 1) * rowFloats));
  return arr;
}

/** The store rows of one encoder output: the feature maps, then the pooled vectors; failed images zeroed. */
function storeRows(out: EncodedBatch, geometry: FeatureGeometry, errors: PreparedBatch['errors']): Float32Array[] {
  return [zeroFailedRows(out.features!, featureMapFloats(geometry), errors), zeroFailedRows(out.pooled!, geometry.channels, errors)];
}

export async function extractFeatures(opts: ExtractOptions): Promise<ExtractSummary> {
  const start = Date.now();
  const batchSize = opts.batchSize ?? 8;
  const hflip = opts.hflip ?? false;
  const geometry = opts.encoder.geometry;
  const { writer, resumedFrom } = FeatureStoreWriter.open(opts.storeDir, {
    dataset: opts.dataset,
    encoder: opts.encoderInfo,
    geometry,
    imageNames: opts.imageNames,
    hflip,
    overwrite: opts.overwrite,
  });
  const names = writer.index.images.map((im) => im.name);
  const failed = writer.index.images.filter((im) => im.error).map((im) => ({ name: im.name, ...im.error! }));
  const pathOf = opts.pathOf ?? ((name: string) => join(opts.imageDir, name));
  const end = Math.min(names.length, opts.maxRows === undefined ? Infinity : writer.done + opts.maxRows);
  let written = 0;
  try {
    let next = writer.done < end ? prepareBatch(names.slice(writer.done, Math.min(end, writer.done + batchSize)), pathOf, hflip, opts.limits) : undefined;
    while (next) {
      const batch = await next;
      const after = writer.done + batch.count;
      next = after < end ? prepareBatch(names.slice(after, Math.min(end, after + batchSize)), pathOf, hflip, opts.limits) : undefined;

      const out = await opts.encoder.encode(batch.input, batch.count);
      const arrays = storeRows(out, geometry, batch.errors);
      if (batch.flipped) arrays.push(...storeRows(await opts.encoder.encode(batch.flipped, batch.count), geometry, batch.errors));
      batch.errors.forEach((e, i) => e && failed.push({ name: names[writer.done + i], ...e }));
      writer.append(batch.count, arrays, batch.errors);
      written += batch.count;
      opts.onProgress?.(writer.done, names.length, failed.length);
    }
  } finally {
    writer.close();
  }
  return { total: names.length, resumedFrom, written, failed, seconds: (Date.now() - start) / 1000 };
}
