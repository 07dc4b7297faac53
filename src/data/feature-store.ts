/**
 * The feature store: fixed-size float16 rows (one per image, sorted by name) plus index.json.
 * Rows are appended in order and `done` is advanced only after the data is synced, so a run
 * killed at any point resumes to exactly the store an uninterrupted run writes. The index records
 * the geometry of the encoder that wrote the rows (grid, regions, channels); row sizes come from it.
 * Format: docs/formats.md.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, writeFileSync, writeSync, readSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { featureMapFloats, sameFeatureLayout, type FeatureGeometry } from '../encoder/geometry.js';
import { PixelInfoError, ErrorCodes } from '../errors.js';
import { toFloat16Array, fromFloat16Array } from '../tensor/float16.js';

const ErrorSchema = z.object({ code: z.string(), message: z.string() });
const dimension = z.number().int().positive();
const IndexSchema = z
  .object({
    format: z.literal('pixel-info-features'),
    version: z.literal(1),
    encoder: z.object({ name: z.string(), source: z.string(), modelSha256: z.string() }),
    dataset: z.string(),
    grid: z.tuple([dimension, dimension]),
    regions: dimension,
    channels: dimension,
    dtype: z.literal('float16'),
    hflip: z.boolean(),
    count: z.number().int().nonnegative(),
    done: z.number().int().nonnegative(),
    complete: z.boolean(),
    images: z.array(z.object({ name: z.string(), error: ErrorSchema.optional() })),
  })
  .refine((index) => index.regions === index.grid[0] * index.grid[1], { message: 'regions is not rows × cols of grid', path: ['regions'] });
/** index.json; its grid, regions and channels are the FeatureGeometry of the rows. */
export type FeatureIndex = z.infer<typeof IndexSchema>;
export type EncoderInfo = FeatureIndex['encoder'];

interface DataFile {
  name: string;
  rowFloats: number;
  fd: number;
}

export interface OpenOptions {
  dataset: string;
  encoder: EncoderInfo;
  /** The layout of the encoder's features (ImageEncoder.geometry). */
  geometry: FeatureGeometry;
  imageNames: string[];
  hflip?: boolean;
  /** Start again even if a store for other images or another encoder is there. */
  overwrite?: boolean;
}

/** The data files of a store and the floats in each of their rows. */
function dataFiles(index: FeatureIndex): Array<[string, number]> {
  const spatial = featureMapFloats(index);
  const files: Array<[string, number]> = [
    ['spatial.f16', spatial],
    ['pooled.f16', index.channels],
  ];
  if (index.hflip) files.push(['spatial_hflip.f16', spatial], ['pooled_hflip.f16', index.channels]);
  return files;
}

export function readFeatureIndex(dir: string): FeatureIndex {
  const path = join(dir, 'index.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.FEATURE_STORE_INVALID, `cannot read ${path}: ${(err as Error).message}`, { subject: path });
  }
  const parsed = IndexSchema.safeParse(raw);
  if (!parsed.success) {
    throw new PixelInfoError(ErrorCodes.FEATURE_STORE_INVALID, `${path}: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`, {
      subject: path,
    });
  }
  return parsed.data;
}

/** A store opened for writing; rows are appended in order with `append`. */
export class FeatureStoreWriter {
  private constructor(
    readonly dir: string,
    readonly index: FeatureIndex,
    private readonly files: DataFile[],
  ) {}

  static open(dir: string, opts: OpenOptions): { writer: FeatureStoreWriter; resumedFrom: number } {
    mkdirSync(dir, { recursive: true });
    const names = [...opts.imageNames].sort();
    const hflip = opts.hflip ?? false;
    const { grid, regions, channels } = opts.geometry;
    let index: FeatureIndex | undefined;
    if (existsSync(join(dir, 'index.json')) && !opts.overwrite) {
      const old = readFeatureIndex(dir);
      const same =
        old.encoder.modelSha256 === opts.encoder.modelSha256 &&
        sameFeatureLayout(old, opts.geometry) &&
        old.hflip === hflip &&
        old.count === names.length &&
        old.images.every((im, i) => im.name === names[i]);
      if (!same) {
        throw new PixelInfoError(
          ErrorCodes.FEATURE_STORE_INVALID,
          `${dir} holds a store for other images, another encoder or another hflip setting; pass --overwrite to replace it`,
          { subject: dir },
        );
      }
      index = old;
    }
    index ??= {
      format: 'pixel-info-features',
      version: 1,
      encoder: opts.encoder,
      dataset: opts.dataset,
      grid: [grid[0], grid[1]],
      regions,
      channels,
      dtype: 'float16',
      hflip,
      count: names.length,
      done: 0,
      complete: false,
      images: names.map((name) => ({ name })),
    };
    // Anything past `done` was written by a run that was killed before syncing it: drop it.
    const files = dataFiles(index).map(([name, rowFloats]) => {
      const fd = openSync(join(dir, name), existsSync(join(dir, name)) ? 'r+' : 'w+');
      ftruncateSync(fd, index!.done * rowFloats * 2);
      return { name, rowFloats, fd };
    });
    const writer = new FeatureStoreWriter(dir, index, files);
    writer.writeIndex();
    return { writer, resumedFrom: index.done };
  }

  get done(): number {
    return this.index.done;
  }

  /**
   * Appends rows for images [done, done + count). `arrays` holds, per data file in order
   * (spatial, pooled[, spatial_hflip, pooled_hflip]), count rows of float32.
   */
  append(count: number, arrays: Float32Array[], errors: Array<{ code: string; message: string } | undefined> = []): void {
    if (this.index.done + count > this.index.count) throw new RangeError('more rows than images');
    this.files.forEach((file, k) => {
      const src = arrays[k];
      if (src.length !== count * file.rowFloats) throw new RangeError(`${file.name}: expected ${count} rows`);
      const half = toFloat16Array(src);
      writeSync(file.fd, half, 0, half.byteLength, this.index.done * file.rowFloats * 2);
      fsyncSync(file.fd);
    });
    for (let i = 0; i < count; i++) {
      const err = errors[i];
      if (err) this.index.images[this.index.done + i].error = err;
    }
    this.index.done += count;
    this.index.complete = this.index.done === this.index.count;
    this.writeIndex();
  }

  private writeIndex(): void {
    const path = join(this.dir, 'index.json');
    writeFileSync(`${path}.tmp`, JSON.stringify(this.index));
    renameSync(`${path}.tmp`, path);
  }

  close(): void {
    for (const f of this.files) closeSync(f.fd);
  }
}

/** Reads single rows back (tests, eval on stored features). */
export class FeatureStoreReader {
  readonly index: FeatureIndex;
  private readonly rowOf: Map<string, number>;

  constructor(readonly dir: string) {
    this.index = readFeatureIndex(dir);
    this.rowOf = new Map(this.index.images.map((im, i) => [im.name, i]));
  }

  row(name: string): number {
    const r = this.rowOf.get(name);
    if (r === undefined || r >= this.index.done) {
      throw new PixelInfoError(ErrorCodes.FEATURE_STORE_INVALID, `${name} has no features in ${this.dir}`, { subject: name });
    }
    return r;
  }

  read(name: string, file: 'spatial' | 'pooled' | 'spatial_hflip' | 'pooled_hflip' = 'spatial'): Float32Array {
    const rowFloats = file.startsWith('spatial') ? featureMapFloats(this.index) : this.index.channels;
    const fd = openSync(join(this.dir, `${file}.f16`), 'r');
    try {
      const half = new Uint16Array(rowFloats);
      readSync(fd, half, 0, half.byteLength, this.row(name) * rowFloats * 2);
      return fromFloat16Array(half);
    } finally {
      closeSync(fd);
    }
  }
}
