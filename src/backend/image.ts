/**
 * The image-input backend, Node side: files and buffers decoded, oriented, flattened and resized to the
 * encoder's 224x224 RGB input with sharp (../image). Its browser twin, ./image.browser.ts (package.json
 * "browser" field), does the same on a canvas for Blobs, images, bitmaps, video frames and canvases.
 */
export { loadImagesSettled, type LoadResult } from '../image/batch.js';
export { loadImage } from '../image/decode.js';
/** What this side accepts as an image. */
export type ImageInput = string | Buffer;
