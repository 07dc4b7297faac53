/**
 * The official Flickr8k release (Hodosh et al. 2013): Flickr8k.token.txt with lines `<image>#<n>\t<caption>` and
 * one image name per line in Flickr_8k.{train,dev,test}Images.txt. "dev" is our "val".
 */
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { readTextFile } from './read-json.js';
import type { DatasetImage, Split } from './types.js';

export const FLICKR8K_TOKEN_FILE = 'Flickr8k.token.txt';
export const FLICKR8K_SPLIT_FILES: ReadonlyArray<[Split, string]> = [
  ['train', 'Flickr_8k.trainImages.txt'],
  ['val', 'Flickr_8k.devImages.txt'],
  ['test', 'Flickr_8k.testImages.txt'],
];

function invalid(file: string, reason: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.DATASET_INVALID, `${file}: ${reason}`, { subject: file });
}

function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

/** Image name → split, from the three list files. */
export async function readFlickr8kSplits(root: string): Promise<Map<string, Split>> {
  const splitOf = new Map<string, Split>();
  for (const [split, fileName] of FLICKR8K_SPLIT_FILES) {
    const file = join(root, fileName);
    for (const line of lines(await readTextFile(file))) {
      const name = line.trim();
      if (name === '') continue;
      const previous = splitOf.get(name);
      if (previous !== undefined) throw invalid(file, `image '${name}' is already listed in the ${previous} split`);
      splitOf.set(name, split);
    }
  }
  return splitOf;
}

/**
 * Image name → captions ordered by their #n. Lines whose image is in no split are skipped: this covers the
 * 91 unsplit images and the file's known glitch line for '2258277193_586949ec62.jpg.1'.
 */
export function parseFlickr8kTokenFile(text: string, file: string, keep: (name: string) => boolean): Map<string, string[]> {
  const numbered = new Map<string, Array<[number, string]>>();
  lines(text).forEach((line, index) => {
    if (line.trim() === '') return;
    const match = /^([^#\t]+)#(\d+)\t(.*)$/.exec(line);
    if (!match) throw invalid(file, `line ${index + 1} is not '<image>#<n><TAB><caption>': ${JSON.stringify(line.slice(0, 80))}`);
    const [, name, n, caption] = match;
    if (!keep(name)) return;
    const list = numbered.get(name) ?? [];
    if (list.some(([m]) => m === Number(n))) throw invalid(file, `line ${index + 1}: caption ${name}#${n} appears twice`);
    list.push([Number(n), caption.trim()]);
    numbered.set(name, list);
  });
  const captions = new Map<string, string[]>();
  for (const [name, list] of numbered) captions.set(name, list.sort((a, b) => a[0] - b[0]).map(([, c]) => c));
  return captions;
}

export async function loadFlickr8kOfficial(root: string, imageDir: string): Promise<{ images: DatasetImage[]; sources: string[] }> {
  const splitOf = await readFlickr8kSplits(root);
  const tokenFile = join(root, FLICKR8K_TOKEN_FILE);
  const captions = parseFlickr8kTokenFile(await readTextFile(tokenFile), tokenFile, (name) => splitOf.has(name));
  const images: DatasetImage[] = [];
  for (const [name, split] of splitOf) {
    const list = captions.get(name);
    if (!list) throw invalid(tokenFile, `no captions for image '${name}' of the ${split} split`);
    images.push({ name, path: join(imageDir, name), split, captions: list });
  }
  return {
    images,
    sources: [tokenFile, ...FLICKR8K_SPLIT_FILES.map(([, f]) => join(root, f))],
  };
}
