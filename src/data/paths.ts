/**
 * Where the datasets live. The data is never part of the repository, so the location comes from
 * the command line, then the environment, then the conventional sibling folder of the checkout.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const DATA_DIR_ENV = 'PIXEL_INFO_DATA_DIR';
export const DEFAULT_DATA_DIR = '../shared/datasets';

/**
 * The datasets folder: `flag` > $PIXEL_INFO_DATA_DIR > ../shared/datasets (relative to the working directory).
 * The first one given wins; it must be an existing directory, else DATASET_NOT_FOUND says which source was
 * used and what the alternatives are (no silent fall-through, so a typo in a flag is never masked).
 */
export function resolveDataDir(flag?: string): string {
  const envValue = process.env[DATA_DIR_ENV];
  const [source, value] =
    flag !== undefined && flag !== ''
      ? ['--data-dir', flag]
      : envValue !== undefined && envValue !== ''
        ? [`$${DATA_DIR_ENV}`, envValue]
        : ['the default', DEFAULT_DATA_DIR];
  const dir = resolve(process.cwd(), value);
  if (!isDirectory(dir)) {
    throw new PixelInfoError(
      ErrorCodes.DATASET_NOT_FOUND,
      `data directory not found: ${dir} (from ${source}${source === 'the default' ? ` ${DEFAULT_DATA_DIR}` : ''}); ` +
        `pass --data-dir DIR or set ${DATA_DIR_ENV}`,
      { subject: dir },
    );
  }
  return dir;
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
