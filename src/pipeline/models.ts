/**
 * Which models a captioner runs. A model spec names one decoder or an ensemble of decoders:
 *
 *   DIR                    a decoder model directory (docs/formats.md)
 *   NAME                   a model shipped in the package's models/ folder (e.g. flickr8k-sat)
 *   A,B,C                  an ensemble of any of those (src/decoder/ensemble.ts)
 *
 * The default is DEFAULT_MODEL below (switching the shipped default is that one line), or $PIXEL_INFO_MODEL_DIR.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, PixelInfoError } from '../errors.js';

/** <package root>; the same from src/pipeline (tsx) and dist/pipeline (built). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The shipped models' folder. */
export const PACKAGE_MODELS = join(PACKAGE_ROOT, 'models');

/** The decoder (or comma-separated ensemble) captioning uses by default: names under models/. */
export const DEFAULT_MODEL = 'flickr8k-sat';
/** @deprecated the first name of DEFAULT_MODEL; kept for callers of 0.1. */
export const DEFAULT_MODEL_NAME = DEFAULT_MODEL.split(',')[0];
export const DEFAULT_MATCHER_NAME = 'flickr8k-match';

/** $PIXEL_INFO_MODEL_DIR, else DEFAULT_MODEL as directories (comma-separated when it is an ensemble). */
export function defaultModelDir(): string {
  return process.env.PIXEL_INFO_MODEL_DIR || DEFAULT_MODEL.split(',').map((name) => join(PACKAGE_MODELS, name)).join(',');
}

/** $PIXEL_INFO_MATCHER_DIR, else <package root>/models/flickr8k-match (docs/formats.md, "Matcher model directory"). */
export function defaultMatcherDir(): string {
  return process.env.PIXEL_INFO_MATCHER_DIR || join(PACKAGE_MODELS, DEFAULT_MATCHER_NAME);
}

const isDir = (path: string) => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

/**
 * The decoder directories of a model spec, absolute, in order (one for a single model). A directory that exists is
 * taken as it is, even with a comma in its name; a bare name (no path separator) that is not a directory here is
 * looked up in the package's models/. Whether each holds a model is checked when it is read (readModelDir).
 */
export function resolveModelSpec(spec: string | readonly string[]): string[] {
  const parts = typeof spec === 'string' ? (isDir(spec) ? [spec] : spec.split(',')) : [...spec];
  const dirs = parts.map((p) => p.trim()).filter((p) => p !== '');
  if (dirs.length === 0) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `no decoder model in ${JSON.stringify(spec)}: give a directory, a model name, or a comma-separated list of them`);
  }
  return dirs.map((p) => {
    if (isDir(p)) return resolve(p);
    const bare = !p.includes('/') && !p.includes(sep) && p !== '.' && p !== '..';
    if (bare && existsSync(join(PACKAGE_MODELS, p))) return join(PACKAGE_MODELS, p);
    return resolve(p); // readModelDir names it in its MODEL_NOT_FOUND
  });
}
