/**
 * The browser's Captioner (`import { Captioner } from 'pixel-info/web'`): the same API as Node's, run on the
 * device with onnxruntime-web. Models come from a model server (`pixel-info serve` publishes them under
 * /models/: a manifest, then every file under a versioned, immutable URL) and are kept in the Cache API, so
 * the first load downloads them once and later loads are offline. Images are read with a canvas
 * (src/backend/image.browser.ts); the beam search, rules and attention are the shared TypeScript code.
 */
import { configureOnnx, fetchModelFiles, modelFile, ort, readModelFile, type OnnxDevice } from '../backend/onnx.browser.js';
import { loadImagesSettled, type ImageInput } from '../backend/image.browser.js';
import { EncoderSession } from '../encoder/session.js';
import { ENCODER_GEOMETRY } from '../encoder/geometry.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { ImageLimits } from '../image/types.js';
import { parseModelCard, type ModelCard } from '../decoder/model-card.js';
import { architectureOf, type LoadedDecoder } from '../decoder/registry.js';
import { resolveGeneration, type GenerationConfig } from '../decoder/generation.js';
import { Vocabulary } from '../text/vocabulary.js';
import {
  captionLoaded,
  checkGeometry,
  decodeFeatures,
  isCaptionFailure,
  resolveMatchOptions,
  type Caption,
  type CaptionModels,
  type CaptionOptions,
  type CaptionOutcome,
  type CaptionResult,
} from '../pipeline/core.js';

/** `GET <modelUrl>manifest.json`, as `pixel-info serve` writes it (docs/api.md). */
export interface ModelManifest {
  /** Content hash of every file: changes whenever any file does. */
  version: string;
  /** Folder of the files, relative to the manifest (ends in '/'); immutable for this version. */
  base: string;
  /** Name of the encoder file (ResNet50 with fp16 weights) among `files`. */
  encoder: string;
  files: Array<{ name: string; bytes: number; sha256: string }>;
  /** onnxruntime-web's version and where its .wasm/.mjs files are served (relative to the manifest). */
  runtime: { version: string; wasmPaths: string; wasm: string; wasmBytes: number };
}

export interface LoadProgress {
  /** Bytes received so far (model files and the WebAssembly runtime; from the cache counts too). */
  loaded: number;
  /** Bytes of everything to load. */
  total: number;
  /** Bytes that came from the network (the rest from the Cache API). */
  downloaded: number;
  /** The file that moved. */
  file: string;
}

export interface WebCaptionerOptions {
  /** Where the model server's manifest.json is (a folder URL ending in '/'); default '/models/'. */
  modelUrl?: string;
  /** 'auto' (default): WebGPU when the browser has an adapter, else WebAssembly (SIMD, threads when cross-origin isolated). */
  device?: 'auto' | OnnxDevice;
  /** WebAssembly threads; default navigator.hardwareConcurrency (capped at 16) on a cross-origin isolated page, else 1. */
  threads?: number;
  /** Cache API cache for the model files; null: none. Default 'pixel-info-models'. */
  cacheName?: string | null;
  /** Images per encoder call and per decoder search. Default 4. */
  batchSize?: number;
  limits?: ImageLimits;
  /** Download progress of the first load. */
  onProgress?: (progress: LoadProgress) => void;
}

/** What the first load cost: shown to users and measured by the benchmark. */
export interface LoadStats {
  /** Bytes of all files (models and runtime). */
  bytes: number;
  /** Bytes that came over the network this time (0 when all came from the Cache API). */
  downloadedBytes: number;
  /** Milliseconds from load() to ready. */
  ms: number;
  device: OnnxDevice;
  threads: number;
  version: string;
}

export class Captioner {
  private constructor(
    private readonly decoder: LoadedDecoder,
    private readonly encoder: EncoderSession,
    readonly vocabulary: Vocabulary,
    private readonly modelCard: ModelCard,
    readonly loadStats: LoadStats,
    private readonly options: WebCaptionerOptions,
  ) {}

  static async load(options: WebCaptionerOptions = {}): Promise<Captioner> {
    const t0 = performance.now();
    const batchSize = options.batchSize ?? 4;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `batchSize must be a positive integer, got ${batchSize}`);
    }
    const manifestUrl = new URL('manifest.json', new URL(options.modelUrl ?? '/models/', globalThis.location?.href)).href;
    const manifest = await fetchManifest(manifestUrl);
    const base = new URL(manifest.base, manifestUrl).href;
    const wasmPaths = new URL(manifest.runtime.wasmPaths, manifestUrl).href;
    const wasmUrl = modelFile(wasmPaths, manifest.runtime.wasm);

    const sizes = new Map<string, number>(manifest.files.map((f) => [modelFile(base, f.name), f.bytes]));
    sizes.set(wasmUrl, manifest.runtime.wasmBytes);
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    const loadedBy = new Map<string, number>();
    const fromNetwork = new Map<string, number>();
    const report = (url: string, loaded: number, cached: boolean) => {
      loadedBy.set(url, loaded);
      if (!cached) fromNetwork.set(url, loaded);
      const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
      options.onProgress?.({ loaded: sum(loadedBy), total, downloaded: sum(fromNetwork), file: url.slice(url.lastIndexOf('/') + 1) });
    };
    const device = await configureOnnx({
      wasmPaths,
      threads: options.threads,
      device: options.device,
      cacheName: options.cacheName,
      onProgress: (p) => report(p.url, p.loaded, p.cached),
    });
    await dropOldVersions(options.cacheName, base, wasmPaths);

    // Everything in parallel, with progress; the sessions then read the bytes fetched here.
    await fetchModelFiles([...sizes.keys()]);
    ort.env.wasm.wasmBinary = await readModelFile(wasmUrl);
    const card = parseModelCard(JSON.parse(text(await readModelFile(modelFile(base, 'model-card.json')))), 'model-card.json');
    const vocabulary = Vocabulary.fromJSON(JSON.parse(text(await readModelFile(modelFile(base, 'vocab.json')))));
    const architecture = architectureOf(card, 'model-card.json');
    const missing = architecture.files.filter((f) => !manifest.files.some((m) => m.name === f));
    if (missing.length) throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `${manifestUrl} lists no ${missing.join(', ')}`);
    const encoder = await EncoderSession.create(await readModelFile(modelFile(base, manifest.encoder)), ENCODER_GEOMETRY, { outputs: ['features'] });
    let decoder: LoadedDecoder;
    try {
      decoder = await architecture.load(base, vocabulary.size, {});
      checkGeometry(decoder, encoder.geometry, base);
    } catch (err) {
      await encoder.release();
      throw err;
    }
    const stats: LoadStats = {
      bytes: total,
      downloadedBytes: [...fromNetwork.values()].reduce((a, b) => a + b, 0),
      ms: Math.round(performance.now() - t0),
      device,
      threads: ort.env.wasm.numThreads ?? 1,
      version: manifest.version,
    };
    return new Captioner(decoder, encoder, vocabulary, card, stats, { ...options, batchSize });
  }

  /** The model card of the decoder (architecture, training data, metrics). */
  get card(): ModelCard {
    return this.modelCard;
  }

  /** One image: its result, or a PixelInfoError (not an image, too large, ...). */
  caption(input: ImageInput, options?: CaptionOptions): Promise<CaptionResult>;
  /** Many images: one slot per input, in order; a bad image gets `{ source, error }` and the rest go on. */
  caption(inputs: ReadonlyArray<ImageInput>, options?: CaptionOptions): Promise<CaptionOutcome[]>;
  async caption(input: ImageInput | ReadonlyArray<ImageInput>, options: CaptionOptions = {}): Promise<CaptionResult | CaptionOutcome[]> {
    const search = this.generationConfig(options);
    resolveMatchOptions(options, undefined); // no matcher here yet: rerank: 'match' and returnEmbedding fail clearly
    if (!Array.isArray(input)) {
      const [one] = await this.captionBatch([input as ImageInput], search);
      if (isCaptionFailure(one)) throw new PixelInfoError(one.error.code, one.error.message, { subject: one.source });
      return one;
    }
    const outcomes: CaptionOutcome[] = [];
    const batchSize = this.options.batchSize!;
    for (let start = 0; start < input.length; start += batchSize) {
      outcomes.push(...(await this.captionBatch(input.slice(start, start + batchSize), search)));
    }
    return outcomes;
  }

  /** Captions for features the caller already has (count × regions × channels): per image, nBest captions. */
  captionFeatures(features: Float32Array, count: number, options: CaptionOptions = {}): Promise<Caption[][]> {
    return decodeFeatures(this.models, features, count, this.generationConfig(options));
  }

  /** The encoder's 7x7x2048 feature maps of images (count × regions × channels), e.g. to compare with Node's. */
  async features(inputs: ReadonlyArray<ImageInput>): Promise<Float32Array> {
    const loaded = await loadImagesSettled(inputs, this.options.limits);
    const { IMAGE_FLOATS, writeCaffeTensor } = await import('../image/tensor.js');
    const batch = new Float32Array(loaded.length * IMAGE_FLOATS);
    loaded.forEach((r, i) => {
      if (!r.ok) throw r.error;
      writeCaffeTensor(r.image.pixels, batch, i);
    });
    return (await this.encoder.encode(batch, loaded.length)).features!;
  }

  /** The settings a call runs with (call options > model card > defaults). */
  generationConfig(options: CaptionOptions = {}): GenerationConfig {
    return resolveGeneration(options, this.modelCard.decoding);
  }

  async release(): Promise<void> {
    await Promise.all([this.decoder.release(), this.encoder.release()]);
  }

  private get models(): CaptionModels {
    return { encoder: this.encoder, decoder: this.decoder, vocabulary: this.vocabulary };
  }

  private async captionBatch(inputs: ReadonlyArray<ImageInput>, search: GenerationConfig): Promise<CaptionOutcome[]> {
    const t0 = performance.now();
    const loaded = await loadImagesSettled(inputs, this.options.limits);
    return captionLoaded(this.models, loaded, search, t0);
  }
}

async function fetchManifest(url: string): Promise<ModelManifest> {
  let response: Response;
  try {
    response = await fetch(url, { cache: 'no-cache' });
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `the model manifest ${url} could not be fetched (${(err as Error).message})`, { subject: url });
  }
  if (!response.ok) throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `the model manifest ${url} answered HTTP ${response.status}`, { subject: url });
  const manifest = (await response.json()) as ModelManifest;
  if (!manifest || typeof manifest.base !== 'string' || !Array.isArray(manifest.files) || !manifest.runtime) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${url} is not a model manifest`, { subject: url });
  }
  return manifest;
}

/** Files of other model versions under the same server, left in the cache by earlier loads. */
async function dropOldVersions(cacheName: string | null | undefined, base: string, wasmPaths: string): Promise<void> {
  const name = cacheName === undefined ? 'pixel-info-models' : cacheName;
  if (name === null || typeof caches === 'undefined') return;
  const cache = await caches.open(name).catch(() => undefined);
  if (!cache) return;
  const parent = (url: string) => url.replace(/[^/]+\/$/, '');
  for (const request of await cache.keys()) {
    const url = request.url;
    for (const current of [base, wasmPaths]) {
      if (url.startsWith(parent(current)) && !url.startsWith(current)) await cache.delete(request);
    }
  }
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
