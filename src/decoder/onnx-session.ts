/**
 * onnxruntime sessions for decoder graphs, shared by every architecture in ./models: opening a graph with a
 * clear MODEL_NOT_FOUND / MODEL_CORRUPT error naming the file, checking its input and output names against the
 * documented contract, and reading dimensions from its metadata. The runtime and the files come from the ONNX
 * backend module (../backend/onnx.ts in Node, ../backend/onnx.browser.ts in a browser).
 */
import { createSession, readModelFile, type InferenceSession, type SessionOptions, type ValueMetadata } from '../backend/onnx.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export { sessionOptions } from '../backend/onnx.js';

/** `path`: a file path in Node, a URL in the browser; `what` names it in a MODEL_NOT_FOUND message. */
export async function openSession(
  path: string,
  options: SessionOptions,
  transform?: (bytes: Uint8Array) => Uint8Array,
  what = 'decoder model file',
): Promise<InferenceSession> {
  const bytes = await readModelFile(path, what);
  try {
    return await createSession(transform ? transform(bytes) : bytes, options);
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path} cannot be loaded by onnxruntime: ${(err as Error).message}`, { subject: path, cause: err });
  }
}

export function checkNames(session: InferenceSession, file: string, inputs: readonly string[], outputs: readonly string[]): void {
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

export function tensorShape(metadata: readonly ValueMetadata[], name: string): ReadonlyArray<number | string> {
  const meta = metadata.find((m) => m.name === name);
  return meta && meta.isTensor ? meta.shape : [];
}

export function numericDim(dim: number | string | undefined): number | undefined {
  return typeof dim === 'number' && dim > 0 ? dim : undefined;
}
