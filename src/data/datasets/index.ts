/**
 * One entry point for the three caption datasets. Each lives in <dataDir>/<name>/ and can be read with
 * Karpathy's split (the default, what papers report on) or its official annotations:
 *
 * | dataset   | karpathy                                   | official                                             |
 * | --------- | ------------------------------------------ | ---------------------------------------------------- |
 * | flickr8k  | dataset_flickr8k.json, images/             | Flickr8k.token.txt + Flickr_8k.{train,dev,test}Images.txt |
 * | flickr30k | dataset_flickr30k.json, flickr30k-images/ or images/ | (none: Flickr30k has no official split)    |
 * | coco      | dataset_coco.json, <filepath>/<filename>   | [annotations/]captions_{train,val}2014.json          |
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { isDirectory, resolveDataDir } from '../paths.js';
import { loadCocoOfficial } from './coco-official.js';
import { loadFlickr8kOfficial } from './flickr8k-official.js';
import { cocoKarpathyImagePath, karpathyFileName, loadKarpathyFile } from './karpathy.js';
import { DATASET_NAMES, SPLIT_SCHEMES, type Dataset, type DatasetImage, type DatasetName, type LoadOptions, type SplitScheme } from './types.js';

export * from './types.js';

/** Image folders tried in order; the first that exists is used (the first is assumed when none does). */
const IMAGE_DIRS: Record<Exclude<DatasetName, 'coco'>, string[]> = {
  // Flicker8k_Dataset (sic) is the folder name inside the original Flickr8k_Dataset.zip.
  flickr8k: ['images', 'Flicker8k_Dataset', 'Flickr8k_Dataset'],
  flickr30k: ['flickr30k-images', 'images'],
};

export async function loadDataset(name: DatasetName, opts: LoadOptions = {}): Promise<Dataset> {
  if (!(DATASET_NAMES as readonly string[]).includes(name)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `unknown dataset '${name}' (expected one of ${DATASET_NAMES.join(', ')})`);
  }
  const splits: SplitScheme = opts.splits ?? 'karpathy';
  if (!(SPLIT_SCHEMES as readonly string[]).includes(splits)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `unknown split scheme '${splits}' (expected karpathy or official)`);
  }
  const root = join(resolveDataDir(opts.dataDir), name);
  if (!isDirectory(root)) {
    throw new PixelInfoError(ErrorCodes.DATASET_NOT_FOUND, `dataset folder not found: ${root}`, { subject: root });
  }

  const imageDir = name === 'coco' ? root : pickImageDir(root, IMAGE_DIRS[name]);
  let loaded: { images: DatasetImage[]; sources: string[] };
  if (splits === 'karpathy') {
    const file = join(root, karpathyFileName(name));
    const imagePath = name === 'coco' ? cocoKarpathyImagePath(root, file) : (image: { filename: string }) => join(imageDir, image.filename);
    loaded = { images: await loadKarpathyFile(file, { name, imagePath }), sources: [file] };
  } else if (name === 'flickr8k') {
    loaded = await loadFlickr8kOfficial(root, imageDir);
  } else if (name === 'coco') {
    loaded = await loadCocoOfficial(root);
  } else {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${name} has no official split; use --splits karpathy`);
  }

  const images = sortByName(loaded.images);
  assertUniqueNames(images, loaded.sources[0]);
  if (opts.checkImages) assertImagesExist(images, name);
  return { name, root, imageDir, images, splits, sources: loaded.sources };
}

function pickImageDir(root: string, candidates: string[]): string {
  return join(root, candidates.find((dir) => isDirectory(join(root, dir))) ?? candidates[0]);
}

/** Code-point order (not locale order), so Python's sorted() gives the same sequence. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortByName(images: DatasetImage[]): DatasetImage[] {
  return [...images].sort((a, b) => compareNames(a.name, b.name));
}

/** Names key the feature store, so two images may not share one. */
function assertUniqueNames(sorted: DatasetImage[], source: string): void {
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].name === sorted[i - 1].name) {
      throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${source}: image '${sorted[i].name}' is listed twice`, { subject: source });
    }
  }
}

function assertImagesExist(images: DatasetImage[], name: string): void {
  const missing = images.filter((image) => !existsSync(image.path));
  if (missing.length > 0) {
    const shown = missing.slice(0, 3).map((image) => image.path).join(', ');
    throw new PixelInfoError(
      ErrorCodes.DATASET_NOT_FOUND,
      `${missing.length} of ${images.length} ${name} image files are missing: ${shown}${missing.length > 3 ? ', ...' : ''}`,
      { subject: missing[0].path },
    );
  }
}
