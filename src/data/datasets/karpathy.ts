/**
 * Karpathy's split files (dataset_flickr8k.json, dataset_flickr30k.json, dataset_coco.json): the splits every
 * captioning paper reports on. Only each sentence's `raw` text is used; the pre-made `tokens` are ignored so that
 * every caption goes through the same ptbTokenize as the metrics.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { readJsonFile } from './read-json.js';
import { SPLITS, type DatasetImage, type DatasetName } from './types.js';

const karpathySentence = z.object({ raw: z.string() });

const karpathyImage = z.object({
  filename: z.string().min(1),
  /** COCO only: the folder under the root, e.g. 'val2014'. */
  filepath: z.string().optional(),
  split: z.enum(SPLITS),
  sentences: z.array(karpathySentence).min(1, 'an image needs at least one sentence'),
  /** COCO only: the official image id. */
  cocoid: z.number().int().optional(),
});

const karpathyFile = z.object({
  dataset: z.string().optional(),
  images: z.array(karpathyImage).min(1, 'no images'),
});

export type KarpathyImage = z.output<typeof karpathyImage>;

export interface KarpathyLoadOptions {
  /** Expected value of the file's `dataset` field (checked when the field is present). */
  name: DatasetName;
  /** Where an image's file lives. */
  imagePath: (image: KarpathyImage) => string;
}

export async function loadKarpathyFile(file: string, opts: KarpathyLoadOptions): Promise<DatasetImage[]> {
  const data = await readJsonFile(file, karpathyFile);
  if (data.dataset !== undefined && data.dataset !== opts.name) {
    throw new PixelInfoError(
      ErrorCodes.DATASET_INVALID,
      `${file}: is a split file for dataset '${data.dataset}', expected '${opts.name}'`,
      { subject: file },
    );
  }
  return data.images.map((image) => ({
    name: image.filename,
    path: opts.imagePath(image),
    split: image.split,
    captions: image.sentences.map((s) => s.raw.trim()),
    ...(image.cocoid !== undefined ? { id: image.cocoid } : {}),
  }));
}

export function karpathyFileName(name: DatasetName): string {
  return `dataset_${name}.json`;
}

/** Image path for COCO's Karpathy entries: <root>/<filepath>/<filename>. */
export function cocoKarpathyImagePath(root: string, file: string) {
  return (image: KarpathyImage): string => {
    if (image.filepath === undefined) {
      throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${file}: image '${image.filename}' has no filepath`, {
        subject: file,
      });
    }
    return join(root, image.filepath, image.filename);
  };
}
