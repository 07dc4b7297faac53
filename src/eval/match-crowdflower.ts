/**
 * Flickr8k's CrowdFlower judgments (CrowdFlowerAnnotations.txt of the Flickr8k release): rows
 * `<image>\t<caption id>\t<% yes>\t<# yes>\t<# no>`, each asking crowd workers whether caption `<caption id>` (a
 * line `<image>#<n>` of Flickr8k.token.txt, written for some Flickr8k image, often another one) describes
 * `<image>`. `% yes` is a fraction in [0, 1]. Metrics are compared with people by Kendall tau-b against it, as in
 * Hessel et al. 2021 (CLIPScore), whose Table 2 figures for this file are PUBLISHED_CROWDFLOWER_TAU_B.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { readTextFile } from '../data/datasets/read-json.js';
import { FLICKR8K_TOKEN_FILE } from '../data/datasets/flickr8k-official.js';

export const CROWDFLOWER_FILE = 'CrowdFlowerAnnotations.txt';

/** Kendall tau-b × 100 on this file, as published (metric → value). */
export const PUBLISHED_CROWDFLOWER_TAU_B = {
  citation:
    'Hessel, Holtzman, Forbes, Le Bras and Choi (2021), "CLIPScore: A Reference-free Evaluation Metric for Image Captioning", EMNLP 2021, Table 2 (Flickr8K-CF, Kendall tau-b x 100)',
  values: { CIDEr: 24.6, SPICE: 24.4, 'CLIP-S': 34.4, 'RefCLIP-S': 36.4 } as Readonly<Record<string, number>>,
} as const;

export interface CrowdFlowerRow {
  /** 1-based line in the file. */
  line: number;
  image: string;
  /** `<image>#<n>` of Flickr8k.token.txt. */
  captionId: string;
  /** The image the caption was written for (the caption id before `#`). */
  captionImage: string;
  /** Fraction of workers who said yes, in [0, 1]. */
  yesRate: number;
  yes: number;
  no: number;
}

export function parseCrowdFlower(text: string, file: string): CrowdFlowerRow[] {
  const rows: CrowdFlowerRow[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    if (raw.trim() === '') return;
    const fields = raw.split('\t');
    const bad = (why: string) => new PixelInfoError(ErrorCodes.DATASET_INVALID, `${file}: line ${index + 1}: ${why}: ${JSON.stringify(raw.slice(0, 100))}`, { subject: file });
    if (fields.length !== 5) throw bad(`expected 5 tab-separated fields, got ${fields.length}`);
    const [image, captionId, rate, yes, no] = fields.map((f) => f.trim());
    const hash = captionId.lastIndexOf('#');
    if (hash <= 0) throw bad(`caption id '${captionId}' is not <image>#<n>`);
    const yesRate = Number(rate);
    const nYes = Number(yes);
    const nNo = Number(no);
    if (!(yesRate >= 0 && yesRate <= 1)) throw bad(`% yes '${rate}' is not a number in [0, 1]`);
    if (!Number.isInteger(nYes) || !Number.isInteger(nNo) || nYes < 0 || nNo < 0) throw bad('the yes/no counts are not counts');
    rows.push({ line: index + 1, image, captionId, captionImage: captionId.slice(0, hash), yesRate, yes: nYes, no: nNo });
  });
  return rows;
}

/** Caption id (`<image>#<n>`) → caption as written, from Flickr8k.token.txt. */
export function parseTokenFileById(text: string): Map<string, string> {
  const byId = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const tab = line.indexOf('\t');
    if (tab <= 0) continue;
    byId.set(line.slice(0, tab).trim(), line.slice(tab + 1).trim());
  }
  return byId;
}

/** The judgments and the captions they refer to, from a Flickr8k folder; null when the file is not there. */
export async function readCrowdFlower(root: string): Promise<{ file: string; rows: CrowdFlowerRow[]; captions: Map<string, string> } | null> {
  const file = join(root, CROWDFLOWER_FILE);
  if (!existsSync(file)) return null;
  const text = await readTextFile(file);
  const rows = parseCrowdFlower(text, file);
  const captions = parseTokenFileById(await readTextFile(join(root, FLICKR8K_TOKEN_FILE)));
  return { file, rows, captions };
}
