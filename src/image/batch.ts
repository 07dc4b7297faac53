/**
 * Loads many images with bounded concurrency; one bad file never fails the others.
 */
import { asPixelInfoError, type PixelInfoError } from '../errors.js';
import { loadImage } from './decode.js';
import type { LoadedImage, ImageLimits } from './types.js';

export type LoadResult = { ok: true; image: LoadedImage } | { ok: false; source: string; error: PixelInfoError };

/**
 * Results in input order; errors name `names[i]` when given, else the path or `<buffer i>`. `concurrency` images are in flight at once (default 2: on glibc Linux sharp
 * sets sharp.concurrency() to 1, so each pipeline uses one libvips thread, and the target machine has
 * 2 cores; every pipeline also holds one of libuv's UV_THREADPOOL_SIZE threads, default 4).
 */
export async function loadImagesSettled(
  inputs: ReadonlyArray<string | Buffer>,
  opts: ImageLimits & { concurrency?: number; names?: readonly string[] } = {},
): Promise<LoadResult[]> {
  const results: LoadResult[] = new Array(inputs.length);
  const workers = Math.max(1, Math.min(opts.concurrency ?? 2, inputs.length));
  let next = 0;
  const work = async () => {
    while (next < inputs.length) {
      const i = next++;
      const input = inputs[i];
      const source = opts.names?.[i] ?? (typeof input === 'string' ? input : `<buffer ${i}>`);
      try {
        results[i] = { ok: true, image: await loadImage(input, { ...opts, name: source }) };
      } catch (err) {
        results[i] = { ok: false, source, error: asPixelInfoError(err, source) };
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, work));
  return results;
}
