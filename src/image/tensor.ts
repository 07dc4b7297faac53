/**
 * Keras 'caffe' preprocessing (what keras.applications.resnet50.preprocess_input does): RGB → BGR,
 * minus the ImageNet channel means, no scaling, written as one NCHW float32 image of a batch.
 */
import { PixelInfoError, ErrorCodes } from '../errors.js';
import { IMAGE_SIZE } from './types.js';

export const CAFFE_MEAN_BGR: readonly [number, number, number] = Object.freeze([103.939, 116.779, 123.68] as const);

const PLANE = IMAGE_SIZE * IMAGE_SIZE;
export const IMAGE_FLOATS = 3 * PLANE;

// Keras subtracts in float32: with the means rounded to float32, the double subtraction below is exact
// and its single rounding on store gives bit-identical results.
const MEAN_B = Math.fround(CAFFE_MEAN_BGR[0]);
const MEAN_G = Math.fround(CAFFE_MEAN_BGR[1]);
const MEAN_R = Math.fround(CAFFE_MEAN_BGR[2]);

/** Writes one image into a NCHW float32 batch at index `index`: channels B,G,R, each minus the caffe mean, no scaling (Keras 'caffe' preprocessing). */
export function writeCaffeTensor(pixels: Uint8Array, batch: Float32Array, index: number, opts: { hflip?: boolean } = {}): void {
  if (pixels.length !== IMAGE_FLOATS) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `expected ${IMAGE_FLOATS} RGB bytes (224x224x3), got ${pixels.length}`);
  }
  if (!Number.isInteger(index) || index < 0 || (index + 1) * IMAGE_FLOATS > batch.length) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `image index ${index} is outside a batch of ${batch.length / IMAGE_FLOATS} images`);
  }
  const b = batch.subarray(index * IMAGE_FLOATS, index * IMAGE_FLOATS + PLANE);
  const g = batch.subarray(index * IMAGE_FLOATS + PLANE, index * IMAGE_FLOATS + 2 * PLANE);
  const r = batch.subarray(index * IMAGE_FLOATS + 2 * PLANE, (index + 1) * IMAGE_FLOATS);
  if (!opts.hflip) {
    for (let i = 0, p = 0; i < PLANE; i++, p += 3) {
      r[i] = pixels[p] - MEAN_R;
      g[i] = pixels[p + 1] - MEAN_G;
      b[i] = pixels[p + 2] - MEAN_B;
    }
    return;
  }
  for (let y = 0; y < IMAGE_SIZE; y++) {
    const row = y * IMAGE_SIZE;
    // Destination column x reads source column (223 - x): walk the source row backwards.
    for (let x = 0, p = (row + IMAGE_SIZE - 1) * 3; x < IMAGE_SIZE; x++, p -= 3) {
      const i = row + x;
      r[i] = pixels[p] - MEAN_R;
      g[i] = pixels[p + 1] - MEAN_G;
      b[i] = pixels[p + 2] - MEAN_B;
    }
  }
}
