/** Where tests find ../shared/datasets; tests that need it skip when it is absent. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const DATA_DIR = resolve(process.env.PIXEL_INFO_DATA_DIR ?? '../shared/datasets');
export const FLICKR8K = resolve(DATA_DIR, 'flickr8k');
export const FLICKR8K_IMAGES = resolve(FLICKR8K, 'images');
export const HAVE_FLICKR8K = existsSync(FLICKR8K_IMAGES);
