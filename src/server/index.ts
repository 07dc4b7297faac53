/** The HTTP server with the real Captioner: what `pixel-info serve` and the load benchmark start. */
import type { Int8Choice } from '../decoder/precision.js';
import type { EncoderPrecisionChoice } from '../encoder/int8.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultLibraryPath, matcherIdOf, modelIdOf } from '../library/index.js';
import { parseMatcherCard } from '../match/card.js';
import { Captioner, defaultModelDir, type CaptionerOptions } from '../pipeline/captioner.js';
import { buildServer, SERVER_DEFAULTS, type PixelInfoServer, type ServerOptions } from './app.js';
import type { CaptionEngine, EngineMatcher } from './engine.js';

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
  /** int8 decoder weights (Captioner's int8Decoder; default 'auto'). */
  int8Decoder?: Int8Choice;
  /** The encoder's precision (Captioner's encoderPrecision; default 'auto'). */
  encoderPrecision?: EncoderPrecisionChoice;
  host?: string;
  /** Decoder model spec: a directory, a shipped model's name, or a comma-separated ensemble (Captioner's modelDir). */
  modelDir?: string;
  /** Ensembles (Captioner's ensembleCombine and ensembleWeights). */
  ensembleCombine?: CaptionerOptions['ensembleCombine'];
  ensembleWeights?: readonly number[];
  /** Where the library is: an SQLite file or a postgres:// URL (see libraryTarget); default $PIXEL_INFO_LIBRARY, else ./pixel-info-library.sqlite. */
  library?: string;
  maxPixels?: number;
  /** onnxruntime threads; default all cores. */
  threads?: number;
  /** Image–text matcher directory (Captioner's matcherDir); default models/flickr8k-match when it exists. */
  matcherDir?: string;
  /** false: no matcher (no confidence, no /v1/match, library search by words only). */
  matcher?: boolean;
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
        ensembleCombine: options.ensembleCombine,
        ensembleWeights: options.ensembleWeights,
        threads: options.threads,
        int8Decoder: options.int8Decoder,
        encoderPrecision: options.encoderPrecision,
        matcherDir: options.matcherDir,
        matcher: options.matcher,
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

/**
 * A Captioner as the server's engine, with the model id its captions are stored under (modelIdOf) and, when it
 * has an image–text matcher, that matcher's id, size and calibration (confidence, /v1/match, search by meaning).
 */
export async function loadCaptionEngine(options: CaptionerOptions = {}): Promise<CaptionEngine> {
  const captioner = await Captioner.load(options);
  try {
    const modelId = await modelIdOf(captioner.modelDirs, { int8Decoder: captioner.int8Decoder, encoderPrecision: captioner.encoderPrecision });
    const info = captioner.matcherInfo;
    const matching = info ? await engineMatcher(info.dir) : undefined;
    return {
      card: captioner.card,
      modelId,
      caption: (inputs, generation) => captioner.caption(inputs, generation),
      ...(matching && {
        matching,
        match: (image: Buffer, texts: readonly string[]) => captioner.match(image, texts),
        embedTexts: (texts: readonly string[]) => captioner.embedTexts(texts),
      }),
      release: () => captioner.release(),
    };
  } catch (err) {
    await captioner.release();
    throw err;
  }
}

/** What the server needs to know of the matcher in `dir`: its id (for stored embeddings), name, size and calibration. */
export async function engineMatcher(dir: string): Promise<EngineMatcher> {
  const file = join(dir, 'model-card.json');
  const card = parseMatcherCard(JSON.parse(await readFile(file, 'utf8')), file);
  const id = await matcherIdOf(dir);
  return { id, name: card.name ?? id.split('@')[0], dim: card.embeddingDim, calibration: { a: card.calibration.a, b: card.calibration.b } };
}
