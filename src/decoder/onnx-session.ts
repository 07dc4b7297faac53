/**
 * onnxruntime sessions for decoder graphs, shared by every architecture in ./models: opening a graph with a
 * clear MODEL_NOT_FOUND / MODEL_CORRUPT error naming the file, checking its input and output names against the
 * documented contract, and reading dimensions from its metadata.
 */
import { access, readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ErrorCodes, PixelInfoError } from '../errors.js';

/** Sequential, fully optimised sessions; `threads` intra-op threads (default: all cores). */
export function sessionOptions(threads?: number): ort.InferenceSession.SessionOptions {
  return { intraOpNumThreads: threads ?? 0, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
}

export async function openSession(
  path: string,
  options: ort.InferenceSession.SessionOptions,
  transform?: (bytes: Uint8Array) => Uint8Array,
): Promise<ort.InferenceSession> {
  try {
    await access(path);
  } catch {
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `decoder model file ${path} is missing`, { subject: path });
  }
  try {
    return transform ? await ort.InferenceSession.create(transform(await readFile(path)), options) : await ort.InferenceSession.create(path, options);
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path} cannot be loaded by onnxruntime: ${(err as Error).message}`, { subject: path, cause: err });
  }
}

export function checkNames(session: ort.InferenceSession, file: string, inputs: readonly string[], outputs: readonly string[]): void {
  const missing = [
    ...inputs.filter((n) => !session.inputNames.includes(n)).map((n) => `input '${n}'`),
    ...outputs.filter((n) => !session.outputNames.includes(n)).map((n) => `output '${n}'`),
  ];
  if (missing.length) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_CORRUPT,
      `${file} lacks ${missing.join(', ')} (has inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')}); see docs/formats.md`,
      { subject: file },
    );
  }
}

export function tensorShape(metadata: readonly ort.InferenceSession.ValueMetadata[], name: string): ReadonlyArray<number | string> {
  const meta = metadata.find((m) => m.name === name);
  return meta && meta.isTensor ? meta.shape : [];
}

export function numericDim(dim: number | string | undefined): number | undefined {
  return typeof dim === 'number' && dim > 0 ? dim : undefined;
}
