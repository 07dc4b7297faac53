/** The HTTP server with the real Captioner: what `pixel-info serve` and the load benchmark start. */
import { defaultLibraryPath, modelIdOf } from '../library/index.js';
import { Captioner, defaultModelDir, type CaptionerOptions } from '../pipeline/captioner.js';
import { buildServer, SERVER_DEFAULTS, type PixelInfoServer, type ServerOptions } from './app.js';
import type { CaptionEngine } from './engine.js';

export { buildServer, SERVER_DEFAULTS, type PixelInfoServer, type ServerOptions } from './app.js';
export { toHttpError } from './http-errors.js';
export { closeWithin, DEFAULT_DRAIN_TIMEOUT_MS } from './drain.js';
export { MicroBatcher, type BatcherOptions, type Submitted } from './batcher.js';
export { defaultLibraryPath, libraryTarget, openLibrary, type LibraryEntry, type LibraryStore } from '../library/index.js';
export type { CaptionEngine } from './engine.js';

/** Server-side default pixel limit: a 40-megapixel photo decodes to ~120 MB of RGB. */
export const SERVER_MAX_PIXELS = 40_000_000;

export interface StartOptions extends Omit<ServerOptions, 'loadEngine' | 'library'> {
  port?: number;
  /** int8 decoder weights (Captioner's int8Decoder). */
  int8Decoder?: boolean;
  host?: string;
  modelDir?: string;
  /** Where the library is: an SQLite file or a postgres:// URL (see libraryTarget); default $PIXEL_INFO_LIBRARY, else ./pixel-info-library.sqlite. */
  library?: string;
  maxPixels?: number;
  /** onnxruntime threads; default all cores. */
  threads?: number;
}

/** Builds the server around a Captioner (loaded in the background: /readyz turns 200 when done) and listens. */
export async function startServer(options: StartOptions = {}): Promise<{ server: PixelInfoServer; url: string }> {
  const maxBatch = options.maxBatch ?? SERVER_DEFAULTS.maxBatch;
  const bodyLimit = options.bodyLimit ?? SERVER_DEFAULTS.bodyLimit;
  const server = await buildServer({
    ...options,
    library: options.library ?? defaultLibraryPath(),
    deviceModel: options.deviceModel ?? { modelDir: options.modelDir ?? defaultModelDir() },
    loadEngine: () =>
      loadCaptionEngine({
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

/** A Captioner as the server's engine, with the model id its captions are stored under (modelIdOf). */
async function loadCaptionEngine(options: CaptionerOptions): Promise<CaptionEngine> {
  const captioner = await Captioner.load(options);
  try {
    const modelId = await modelIdOf(captioner.modelDir, { int8Decoder: options.int8Decoder });
    return { card: captioner.card, modelId, caption: (inputs, generation) => captioner.caption(inputs, generation), release: () => captioner.release() };
  } catch (err) {
    await captioner.release();
    throw err;
  }
}
