/**
 * The ONNX backend, Node side: onnxruntime-node (native, every core), or, when that optional dependency is not
 * installed (its install step downloads GPU libraries and fails where only the npm registry can be reached),
 * onnxruntime-web's WebAssembly build in Node, with one warning saying how to get the native one.
 * PIXEL_INFO_ONNX_BACKEND=web chooses the WebAssembly build on purpose.
 *
 * Its browser twin is ./onnx.browser.ts, chosen by the package.json "browser" field: both export the same names,
 * and every model (the encoder, the decoder architectures) takes `ort` and its model files from here.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type * as OrtCommon from 'onnxruntime-common';
import { ErrorCodes, PixelInfoError } from '../errors.js';

/** The onnxruntime API both runtimes share (onnxruntime-common). */
export type OrtModule = typeof OrtCommon;
export type InferenceSession = OrtCommon.InferenceSession;
export type SessionOptions = OrtCommon.InferenceSession.SessionOptions;
export type ValueMetadata = OrtCommon.InferenceSession.ValueMetadata;
export type Tensor = OrtCommon.Tensor;

export type OnnxBackendName = 'onnxruntime-node' | 'onnxruntime-web';

async function loadRuntime(): Promise<{ ort: OrtModule; name: OnnxBackendName }> {
  if (process.env.PIXEL_INFO_ONNX_BACKEND !== 'web') {
    try {
      return { ort: (await import('onnxruntime-node')) as unknown as OrtModule, name: 'onnxruntime-node' };
    } catch (err) {
      process.emitWarning(
        `onnxruntime-node is not available (${firstLine(err)}); pixel-info runs on onnxruntime-web's WebAssembly build, several times slower. ` +
          'For the native runtime: npm install onnxruntime-node --onnxruntime-node-install=skip',
        { code: 'PIXEL_INFO_WASM_BACKEND' },
      );
    }
  }
  const ort = (await import('onnxruntime-web')) as unknown as OrtModule;
  ort.env.wasm.numThreads = availableParallelism();
  return { ort, name: 'onnxruntime-web' };
}

const runtime = await loadRuntime();

/** The onnxruntime module every session and tensor comes from. */
export const ort: OrtModule = runtime.ort;
/** Which runtime `ort` is. */
export const ONNX_BACKEND: OnnxBackendName = runtime.name;

export interface SessionTuning {
  /**
   * Whether the session's intra-op threads spin-wait between parallel sections (onnxruntime's default). Spinning
   * wins for a long run of large kernels (the encoder); for a session called many times in a row with JavaScript
   * between the calls (a decoder step), idle spinning threads take cores from the next call and from the other
   * sessions, so decoders turn it off.
   */
  spinning?: boolean;
}

/** Sequential, fully optimised sessions; `threads` intra-op threads (default: all cores). */
export function sessionOptions(threads?: number, tuning: SessionTuning = {}): SessionOptions {
  if (ONNX_BACKEND === 'onnxruntime-web') return { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  const options: SessionOptions = { intraOpNumThreads: threads ?? 0, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
  if (tuning.spinning === false) options.extra = { session: { intra_op: { allow_spinning: '0' } } };
  return options;
}

/** A session for an ONNX model's bytes. */
export function createSession(model: Uint8Array, options: SessionOptions): Promise<InferenceSession> {
  return ort.InferenceSession.create(model, options);
}

/** `file` in the model folder `dir` (a path here, a URL in the browser). */
export function modelFile(dir: string, file: string): string {
  return join(dir, file);
}

/** The bytes of a model file; MODEL_NOT_FOUND naming it when it is missing. */
export async function readModelFile(location: string, what = 'model file'): Promise<Uint8Array> {
  try {
    return await readFile(location);
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `${what} ${location} is missing`, { subject: location, cause: err });
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}
