/**
 * Which precision a decoder runs at. The int8 decoder (src/onnx/quantize.ts: 7-bit per-column weights, activations
 * quantised per call) is on by default only where both hold:
 *   - the runtime has its kernels: onnxruntime-node (the browser's WASM runtime does not run it), and
 *   - the model card records that int8 passed its quality gate (`quantization.int8Decoder.passed`, written by
 *     `pixel-info eval --int8-gate --write-card`: val CIDEr within 0.003 of fp32).
 * The weights' integer products are exact on every x86 and ARM kernel onnxruntime has (7-bit weights keep AVX2's
 * vpmaddubsw from saturating), so a gate measured on one machine holds on the others.
 * An explicit true / false (`--int8-decoder` / `--no-int8-decoder`) overrides the default.
 */
import { ONNX_BACKEND } from '../backend/onnx.js';
import type { ModelCard } from './model-card.js';

/** true / false, or 'auto' (the default): int8 when the card's gate passed and the runtime can. */
export type Int8Choice = boolean | 'auto';

/** The largest val CIDEr drop the int8 gate accepts. */
export const INT8_MAX_CIDER_DROP = 0.003;

export function int8Available(): boolean {
  return ONNX_BACKEND === 'onnxruntime-node';
}

export function resolveInt8Decoder(choice: Int8Choice | undefined, card: ModelCard): boolean {
  if (choice === true || choice === false) return choice;
  return int8Available() && card.quantization?.int8Decoder?.passed === true;
}
