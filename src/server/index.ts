/** The HTTP server with the real Captioner: what `pixel-info serve` and the load benchmark start. */
import { resolve } from 'node:path';
import { Captioner, defaultModelDir } from '../pipeline/captioner.js';
import { buildServer, SERVER_DEFAULTS, type PixelInfoServer, type ServerOptions } from './app.js';

export { buildServer, SERVER_DEFAULTS, type PixelInfoServer, type ServerOptions } from './app.js';
export { toHttpError } from './http-errors.js';
export { MicroBatcher, type BatcherOptions, type Submitted } from './batcher.js';
export { Library, type LibraryEntry } from './library.js';
export type { CaptionEngine } from './engine.js';

/** Server-side default pixel limit: a 40-megapixel photo decodes to ~120 MB of RGB. */
export const SERVER_MAX_PIXELS = 40_000_000;

export interface StartOptions extends Omit<ServerOptions, 'loadEngine' | 'library'> {
  port?: number;
  /** int8 decoder weights (Captioner's int8Decoder). */
  int8Decoder?: boolean;
  host?: string;
  modelDir?: string;
  /** SQLite file of the library; default $PIXEL_INFO_LIBRARY, else ./pixel-info-library.sqlite. */
  library?: string;
  maxPixels?: number;
  /** onnxruntime threads; default all cores. */
  threads?: number;
}

export function defaultLibraryPath(): string {
  return resolve(process.env.PIXEL_INFO_LIBRARY || 'pixel-info-library.sqlite');
}

/** Builds the server around a Captioner (loaded in the background: /readyz turns 200 when done) and listens. */
export async function startServer(options: StartOptions = {}): Promise<{ server: PixelInfoServer; url: string }> {
  const maxBatch = options.maxBatch ?? SERVER_DEFAULTS.maxBatch;
  const bodyLimit = options.bodyLimit ?? SERVER_DEFAULTS.bodyLimit;
  const server = await buildServer({
    ...options,
    library: options.library ?? defaultLibraryPath(),
    loadEngine: () =>
      Captioner.load({
        modelDir: options.modelDir ?? defaultModelDir(),
        threads: options.threads,
        int8Decoder: options.int8Decoder,
        batchSize: maxBatch,
        limits: { maxPixels: options.maxPixels ?? SERVER_MAX_PIXELS, maxBytes: bodyLimit },
      }),
  });
  try {
    const url = await server.app.listen({ port: options.port ?? 8080, host: options.host ?? '127.0.0.1' });
    return { server, url };
  } catch (err) {
    await server.app.close();
    throw err;
  }
}
