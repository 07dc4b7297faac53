/**
 * COCO's own caption annotations (captions_train2014.json, captions_val2014.json), found either in <root>/annotations/
 * (the layout of the official zip) or directly in <root>. Images are <root>/train2014/<file_name> and
 * <root>/val2014/<file_name>. train2014 is the train split and val2014 the val split; test2014 has no public captions.
 */
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { annotationsToReferences, cocoAnnotationsSchema } from '../coco-format.js';
import { isFile } from '../paths.js';
import { readJsonFile } from './read-json.js';
import type { DatasetImage, Split } from './types.js';

export const COCO_OFFICIAL_PARTS: ReadonlyArray<{ folder: string; split: Split }> = [
  { folder: 'train2014', split: 'train' },
  { folder: 'val2014', split: 'val' },
];

export function cocoAnnotationFile(root: string, folder: string): string {
  const candidates = [join(root, 'annotations', `captions_${folder}.json`), join(root, `captions_${folder}.json`)];
  const found = candidates.find(isFile);
  if (!found) {
    throw new PixelInfoError(ErrorCodes.DATASET_NOT_FOUND, `COCO annotations not found: tried ${candidates.join(' and ')}`, {
      subject: candidates[0],
    });
  }
  return found;
}

export async function loadCocoOfficial(root: string): Promise<{ images: DatasetImage[]; sources: string[] }> {
  const images: DatasetImage[] = [];
  const sources: string[] = [];
  for (const { folder, split } of COCO_OFFICIAL_PARTS) {
    const file = cocoAnnotationFile(root, folder);
    sources.push(file);
    const entries = annotationsToReferences(await readJsonFile(file, cocoAnnotationsSchema), file);
    entries.forEach((entry, index) => {
      if (typeof entry.imageId !== 'number' || entry.fileName === undefined) {
        throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${file}: images[${index}] needs a numeric id and a file_name`, {
          subject: file,
        });
      }
      images.push({
        name: entry.fileName,
        path: join(root, folder, entry.fileName),
        split,
        captions: entry.captions.map((c) => c.trim()),
        id: entry.imageId,
      });
    });
  }
  return { images, sources };
}
