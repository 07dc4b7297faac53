/**
 * The ONNX backend, browser side (package.json "browser" field maps ./onnx.js here): onnxruntime-web, WebAssembly
 * with SIMD and threads (threads need a cross-origin isolated page), or WebGPU when the browser has it and
 * `configureOnnx({ device })` allows it. Model files are fetched once and kept in the Cache API under their
 * (versioned, immutable) URL, with download progress reported to `configureOnnx({ onProgress })`.
 *
 * The same names as ./onnx.ts, so the encoder and the decoder architectures run unchanged on either side.
 */
import * as wasmOrt from 'onnxruntime-web/wasm';
import type * as OrtCommon from 'onnxruntime-common';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export type OrtModule = typeof OrtCommon;
export type InferenceSession = OrtCommon.InferenceSession;
export type SessionOptions = OrtCommon.InferenceSession.SessionOptions;
export type ValueMetadata = OrtCommon.InferenceSession.ValueMetadata;
export type Tensor = OrtCommon.Tensor;
export type OnnxBackendName = 'onnxruntime-node' | 'onnxruntime-web';
export type OnnxDevice = 'wasm' | 'webgpu';

/** The onnxruntime module sessions and tensors come from: the WebAssembly build until WebGPU is chosen. */
export let ort: OrtModule = wasmOrt as unknown as OrtModule;
export const ONNX_BACKEND: OnnxBackendName = 'onnxruntime-web';
/** The execution provider sessions are created with. */
export let onnxDevice: OnnxDevice = 'wasm';

export interface DownloadProgress {
  /** The file's URL. */
  url: string;
  loaded: number;
  /** From Content-Length; 0 when unknown. */
  total: number;
  /** Served from the Cache API, not the network. */
  cached: boolean;
}

export interface OnnxConfig {
  /** Where onnxruntime-web's .wasm (and .mjs) files are served, ending in '/'. */
  wasmPaths?: string;
  /** WebAssembly threads; default: navigator.hardwareConcurrency when the page is cross-origin isolated, else 1. */
  threads?: number;
  /** 'auto' (default): WebGPU when the browser offers an adapter, else WebAssembly. */
  device?: 'auto' | OnnxDevice;
  /** Name of the Cache API cache model files are kept in; null: no caching. Default 'pixel-info-models'. */
  cacheName?: string | null;
  onProgress?: (progress: DownloadProgress) => void;
}

let config: OnnxConfig = {};

/** Sets up the runtime; call before the first session (Captioner.load does). */
export async function configureOnnx(options: OnnxConfig = {}): Promise<OnnxDevice> {
  config = { ...config, ...options };
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
  const hardware = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  let device: OnnxDevice = 'wasm';
  if (options.device === 'webgpu' || (options.device ?? 'auto') === 'auto') {
    const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    if (adapter) device = 'webgpu';
    else if (options.device === 'webgpu') throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'this browser has no WebGPU adapter');
  }
  ort = device === 'webgpu' ? ((await import('onnxruntime-web/webgpu')) as unknown as OrtModule) : (wasmOrt as unknown as OrtModule);
  onnxDevice = device;
  ort.env.wasm.numThreads = Math.max(1, options.threads ?? (isolated ? Math.min(hardware, 16) : 1));
  ort.env.wasm.simd = true;
  if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths;
  return device;
}

/** Sessions on the configured device; `threads` is set once for the page (configureOnnx), not per session. */
export function sessionOptions(_threads?: number, _tuning: { spinning?: boolean } = {}): SessionOptions {
  return { executionProviders: onnxDevice === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'], graphOptimizationLevel: 'all' };
}

export function createSession(model: Uint8Array, options: SessionOptions): Promise<InferenceSession> {
  return ort.InferenceSession.create(model, options);
}

/** `file` in the model folder at URL `dir`. */
export function modelFile(dir: string, file: string): string {
  return dir.endsWith('/') ? `${dir}${file}` : `${dir}/${file}`;
}

/** Bytes fetched ahead by `fetchModelFiles`, handed to the next read of the same URL. */
const prefetched = new Map<string, Uint8Array>();

/** The bytes of a model file, from the Cache API when it holds them, else the network (then cached). */
export async function readModelFile(location: string, what = 'model file'): Promise<Uint8Array> {
  const url = new URL(location, globalThis.location?.href).href;
  const ready = prefetched.get(url);
  if (ready) {
    prefetched.delete(url);
    return ready;
  }
  return fetchCached(url, what);
}

/** Downloads model files (in parallel, with progress) and keeps them for the next readModelFile of each. */
export async function fetchModelFiles(locations: readonly string[]): Promise<void> {
  await Promise.all(
    locations.map(async (location) => {
      const url = new URL(location, globalThis.location?.href).href;
      prefetched.set(url, await fetchCached(url, 'model file'));
    }),
  );
}

async function openCache(): Promise<Cache | undefined> {
  const name = config.cacheName === undefined ? 'pixel-info-models' : config.cacheName;
  if (name === null || typeof caches === 'undefined') return undefined;
  return caches.open(name).catch(() => undefined);
}

async function fetchCached(url: string, what: string): Promise<Uint8Array> {
  const cache = await openCache();
  const hit = await cache?.match(url);
  if (hit) {
    const bytes = new Uint8Array(await hit.arrayBuffer());
    config.onProgress?.({ url, loaded: bytes.length, total: bytes.length, cached: true });
    return bytes;
  }
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `${what} ${url} could not be fetched (${(err as Error).message})`, { subject: url, cause: err });
  }
  if (!response.ok || !response.body) {
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `${what} ${url} answered HTTP ${response.status}`, { subject: url });
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    config.onProgress?.({ url, loaded, total, cached: false });
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  if (cache) {
    const headers = { 'content-type': response.headers.get('content-type') ?? 'application/octet-stream', 'content-length': String(loaded) };
    await cache.put(url, new Response(bytes, { headers })).catch(() => {}); // a full quota only costs a download next time
  }
  return bytes;
}
