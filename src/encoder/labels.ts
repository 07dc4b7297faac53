/** ImageNet class names as shipped with the encoder weights (index → label), kept in the model cache. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { defaultCacheDir, LABELS_FILE } from './cache.js';
import { ENCODER_GEOMETRY } from './geometry.js';
import { installedSource } from './source.js';

const byFile = new Map<string, string[]>();

/** The labels of the encoder in `cacheDir` (written there with the converted model; a clone also has its dev dependency's). */
export function imagenetLabels(cacheDir = defaultCacheDir()): string[] {
  const candidates = [join(cacheDir, 'encoder', LABELS_FILE)];
  const installed = installedSource();
  if (installed) candidates.push(join(installed.dir, 'assets', 'labels.json'));
  for (const file of candidates) {
    const cached = byFile.get(file);
    if (cached) return cached;
    let map: Record<string, string>;
    try {
      map = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    } catch {
      continue;
    }
    const labels = Array.from({ length: ENCODER_GEOMETRY.classes }, (_, i) => String(map[String(i)]).replace(/_/g, ' '));
    byFile.set(file, labels);
    return labels;
  }
  throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `no ImageNet labels in ${candidates[0]}: run \`npx pixel-info encoder\` to rebuild the model cache`, { subject: candidates[0] });
}
