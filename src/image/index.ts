/**
 * Image input: any accepted image → the encoder's 224x224 RGB input, and the caffe tensor it feeds; an upload
 * without its owner's metadata, as the library keeps it.
 */
export type { ImageLimits, LoadedImage, LoadOptions } from './types.js';
export { IMAGE_SIZE, DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES } from './types.js';
export { loadImage, loadOriginalRgb } from './decode.js';
export { CAFFE_MEAN_BGR, IMAGE_FLOATS, writeCaffeTensor } from './tensor.js';
export { loadImagesSettled, type LoadResult } from './batch.js';
export { stripMetadata, carriesMetadata, type StrippedImage } from './strip.js';
