/** The in-memory shape every dataset loader produces, whatever the files on disk look like. */

export const SPLITS = ['train', 'val', 'test', 'restval'] as const;
export type Split = (typeof SPLITS)[number];

export const DATASET_NAMES = ['flickr8k', 'flickr30k', 'coco'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export const SPLIT_SCHEMES = ['karpathy', 'official'] as const;
export type SplitScheme = (typeof SPLIT_SCHEMES)[number];

export interface DatasetImage {
  /** File name, unique within the dataset (the key of the feature store). */
  name: string;
  /** Absolute path of the image file. */
  path: string;
  split: Split;
  /** Human captions as written (only surrounding whitespace trimmed); tokenise with ptbTokenize. */
  captions: string[];
  /** The dataset's own numeric image id where it has one (COCO); Flickr images have none. */
  id?: number;
}

export interface Dataset {
  name: DatasetName;
  /** Absolute dataset folder, <dataDir>/<name>. */
  root: string;
  /** Folder holding the images (for COCO the root: each image's path includes train2014/ or val2014/). */
  imageDir: string;
  /** Sorted by name. Only images that belong to a split. */
  images: DatasetImage[];
  /** Which split definition was loaded. */
  splits: SplitScheme;
  /** Absolute paths of the annotation files read, the main one first (checksummed by `prepare`). */
  sources: string[];
}

export interface LoadOptions {
  dataDir?: string;
  splits?: SplitScheme;
  /** Also check that every image file exists (DATASET_NOT_FOUND listing the first missing ones). */
  checkImages?: boolean;
}

/** Restval is COCO's extra training data in Karpathy's split: it trains like train. */
export function isTrainingSplit(split: Split): boolean {
  return split === 'train' || split === 'restval';
}
