/**
 * The COCO caption toolkit's two JSON formats, which `eval` and `score` exchange with pycocoevalcap:
 *
 * - references ("annotations"): `{"images":[{"id",...}], "annotations":[{"image_id","id","caption"}], ...}`,
 *   the shape of captions_val2014.json, read by `COCO(file)`;
 * - results: `[{"image_id", "caption"}]`, one caption per image, read by `coco.loadRes(file)`.
 *
 * Image ids: COCO images use their official numeric id. Flickr images have none, so their image_id is the
 * file name without its extension, as a STRING (e.g. "1000268201_693b08cb0e" for 1000268201_693b08cb0e.jpg;
 * Flickr30k's "1000092795.jpg" → "1000092795", still a string). The toolkit only uses ids as dictionary keys,
 * so strings work there, and no lookup table is needed to go back to the file. Ids are compared strictly:
 * 42 and "42" are different images.
 */
import { randomBytes } from 'node:crypto';
import { rename, writeFile, unlink } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { Dataset, DatasetImage, Split } from './datasets/types.js';
import { DATASET_FILE_ERRORS, readJsonFile, type FileErrorCodes } from './datasets/read-json.js';

export type CocoImageId = number | string;

const imageId = z.union([z.number().int(), z.string().min(1)]);

export const cocoAnnotationsSchema = z.object({
  images: z.array(z.object({ id: imageId, file_name: z.string().optional() }).passthrough()),
  annotations: z.array(z.object({ image_id: imageId, caption: z.string(), id: z.number().int().optional() }).passthrough()),
});
export type CocoAnnotations = z.output<typeof cocoAnnotationsSchema>;

export const cocoResultsSchema = z.array(z.object({ image_id: imageId, caption: z.string() }));
export interface CocoResult {
  image_id: CocoImageId;
  caption: string;
}

/** Results files come from users and our own `eval`: a bad one is a bad argument, not a bad dataset. */
const RESULTS_FILE_ERRORS: FileErrorCodes = { missing: ErrorCodes.FILE_NOT_FOUND, invalid: ErrorCodes.INVALID_ARGUMENT };

/** The image_id an image gets in COCO-format files: its numeric COCO id, else its file name without extension. */
export function cocoImageIdOf(image: Pick<DatasetImage, 'name' | 'id'>): CocoImageId {
  if (image.id !== undefined) return image.id;
  const name = basename(image.name);
  return name.slice(0, name.length - extname(name).length);
}

export interface ReferenceEntry {
  imageId: CocoImageId;
  /** Raw captions: the toolkit tokenises them itself. */
  captions: string[];
  fileName?: string;
}

/** The references of one split (or several, e.g. ['train', 'restval']) of a dataset. */
export function splitReferences(dataset: Pick<Dataset, 'images'>, splits: Split | Split[]): ReferenceEntry[] {
  const wanted = new Set(Array.isArray(splits) ? splits : [splits]);
  return dataset.images
    .filter((image) => wanted.has(image.split))
    .map((image) => ({ imageId: cocoImageIdOf(image), captions: image.captions, fileName: image.name }));
}

export function toCocoAnnotations(entries: ReferenceEntry[], description = 'pixel-info references'): CocoAnnotations & Record<string, unknown> {
  assertUniqueIds(entries.map((e) => e.imageId), 'references');
  let annotationId = 0;
  return {
    info: { description },
    licenses: [],
    type: 'captions',
    images: entries.map((e) => ({ id: e.imageId, ...(e.fileName !== undefined ? { file_name: e.fileName } : {}) })),
    annotations: entries.flatMap((e) =>
      e.captions.map((caption) => ({ image_id: e.imageId, id: ++annotationId, caption })),
    ),
  };
}

export async function writeCocoAnnotations(file: string, entries: ReferenceEntry[], description?: string): Promise<void> {
  await writeJsonAtomic(file, toCocoAnnotations(entries, description));
}

/** Reads a COCO captions annotation file; every image is kept, in file order, with its captions in file order. */
export async function readCocoAnnotations(
  file: string,
  codes: FileErrorCodes = DATASET_FILE_ERRORS,
): Promise<ReferenceEntry[]> {
  const data = await readJsonFile(file, cocoAnnotationsSchema, codes);
  return annotationsToReferences(data, file, codes);
}

export function annotationsToReferences(
  data: CocoAnnotations,
  file: string,
  codes: FileErrorCodes = DATASET_FILE_ERRORS,
): ReferenceEntry[] {
  const byId = new Map<CocoImageId, ReferenceEntry>();
  for (const image of data.images) {
    if (byId.has(image.id)) throw new PixelInfoError(codes.invalid, `${file}: image id ${JSON.stringify(image.id)} appears twice`, { subject: file });
    byId.set(image.id, { imageId: image.id, captions: [], ...(image.file_name !== undefined ? { fileName: image.file_name } : {}) });
  }
  data.annotations.forEach((ann, index) => {
    const entry = byId.get(ann.image_id);
    if (!entry) {
      throw new PixelInfoError(
        codes.invalid,
        `${file}: annotations[${index}] refers to image_id ${JSON.stringify(ann.image_id)}, which is not in "images"`,
        { subject: file },
      );
    }
    entry.captions.push(ann.caption);
  });
  return [...byId.values()];
}

export async function writeCocoResults(file: string, results: CocoResult[]): Promise<void> {
  assertUniqueIds(results.map((r) => r.image_id), 'results');
  await writeJsonAtomic(file, results.map((r) => ({ image_id: r.image_id, caption: r.caption })));
}

/** Reads a results file; an image may appear only once (the toolkit's BLEU asserts one hypothesis per image). */
export async function readCocoResults(file: string): Promise<CocoResult[]> {
  const results = await readJsonFile(file, cocoResultsSchema, RESULTS_FILE_ERRORS);
  const seen = new Set<CocoImageId>();
  for (const r of results) {
    if (seen.has(r.image_id)) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${file}: image_id ${JSON.stringify(r.image_id)} has more than one caption`, { subject: file });
    }
    seen.add(r.image_id);
  }
  return results;
}

function assertUniqueIds(ids: CocoImageId[], what: string): void {
  const seen = new Set<CocoImageId>();
  for (const id of ids) {
    if (seen.has(id)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${what}: image_id ${JSON.stringify(id)} appears twice`);
    seen.add(id);
  }
}

/** Write to a temporary sibling then rename, so a crash never leaves a half-written file behind. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(value));
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
