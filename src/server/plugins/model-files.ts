/**
 * The models for captioning on the device (`pixel-info/web`, the page's "Caption on this device"):
 *
 *   GET /models/manifest.json          which version is current, its files with sizes and sha256 (no-cache)
 *   GET /models/<version>/<file>       the encoder with fp16 weights, the decoder's graphs, vocab.json and
 *                                      model-card.json, immutable (the version is a hash of every file)
 *   GET /ort/<ort version>/<file>      onnxruntime-web's WebAssembly runtime (.wasm and .mjs), immutable, gzip
 *
 * Everything is prepared on the first request (the fp16 encoder is made once and kept in the model cache).
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ensureFloat16Encoder, defaultCacheDir } from '../../encoder/cache.js';
import { readModelDir } from '../../decoder/model-dir.js';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { resolveModelSpec } from '../../pipeline/models.js';
import { finetunedEncoderOf } from '../../decoder/model-card.js';
import type { ModelManifest } from '../../browser/captioner.js';

export interface ModelFilesOptions {
  /** The decoder model spec the server captions with; the browser gets its first decoder (ensembles run in Node). */
  modelDir: string;
  /** The encoder's model cache; default defaultCacheDir(). */
  cacheDir?: string;
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
const ENCODER_NAME = 'encoder.fp16.onnx';
const RUNTIME_FILE = /^ort-wasm-simd-threaded(\.(jsep|asyncify|jspi))?\.(wasm|mjs)$/;
const RUNTIME_WASM = 'ort-wasm-simd-threaded.wasm';

interface Prepared {
  manifest: ModelManifest;
  paths: Map<string, string>;
}

/** onnxruntime-web's dist folder and version. */
function runtimeDir(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve(`onnxruntime-web/${RUNTIME_WASM}`));
  const version = (JSON.parse(readFileSync(join(dir, '..', 'package.json'), 'utf8')) as { version: string }).version;
  return { dir, version };
}

async function prepare(options: ModelFilesOptions): Promise<Prepared> {
  const model = await readModelDir(resolveModelSpec(options.modelDir)[0]);
  // A model trained on a fine-tuned encoder brings it (fp16 initializers already): the browser must run that one.
  const finetuned = finetunedEncoderOf(model.card);
  const encoder = finetuned
    ? await (async () => {
        const path = join(model.dir, finetuned.file);
        const bytes = await readFile(path);
        return { path, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
      })()
    : await ensureFloat16Encoder(options.cacheDir ?? defaultCacheDir());
  const paths = new Map<string, string>([[ENCODER_NAME, encoder.path]]);
  for (const file of ['model-card.json', 'vocab.json', ...model.architecture.files]) paths.set(file, join(model.dir, file));
  const files: ModelManifest['files'] = [];
  for (const [name, path] of paths) {
    const bytes = name === ENCODER_NAME ? encoder.bytes : await readFile(path);
    files.push({ name, bytes: bytes.length, sha256: name === ENCODER_NAME ? encoder.sha256 : createHash('sha256').update(bytes).digest('hex') });
  }
  const version = createHash('sha256').update(files.map((f) => `${f.name}:${f.sha256}`).join('\n')).digest('hex').slice(0, 16);
  const runtime = runtimeDir();
  const wasmBytes = (await stat(join(runtime.dir, RUNTIME_WASM))).size;
  return {
    manifest: { version, base: `${version}/`, encoder: ENCODER_NAME, files, runtime: { version: runtime.version, wasmPaths: `../ort/${runtime.version}/`, wasm: RUNTIME_WASM, wasmBytes } },
    paths,
  };
}

export async function modelFilesPlugin(app: FastifyInstance, options: ModelFilesOptions): Promise<void> {
  let prepared: Promise<Prepared> | undefined;
  const ready = () => {
    prepared ??= prepare(options);
    prepared.catch(() => (prepared = undefined)); // tried again by the next request
    return prepared;
  };
  const runtime = runtimeDir();
  const gzipped = new Map<string, Buffer>();

  app.get('/models/manifest.json', { schema: { tags: ['model'], summary: 'The models for captioning in the browser: current version, files, sizes, sha256 (no-cache)' } }, async (_request, reply) => {
    const { manifest } = await ready();
    return reply.header('cache-control', 'no-cache').type('application/json; charset=utf-8').send(manifest);
  });

  app.get('/models/:version/:file', { schema: { tags: ['model'], summary: 'One model file of a version (immutable)' } }, async (request: FastifyRequest<{ Params: { version: string; file: string } }>, reply) => {
    const { manifest, paths } = await ready();
    const { version, file } = request.params;
    const path = paths.get(file);
    if (version !== manifest.version || !path) throw notFound(`/models/${version}/${file}`, manifest.version);
    const entry = manifest.files.find((f) => f.name === file)!;
    reply.header('cache-control', IMMUTABLE).header('etag', `"${entry.sha256}"`).header('content-length', entry.bytes);
    reply.type(file.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream');
    if (request.headers['if-none-match'] === `"${entry.sha256}"`) return reply.status(304).send();
    return reply.send(createReadStream(path));
  });

  app.get('/ort/:version/:file', { schema: { tags: ['model'], summary: "onnxruntime-web's WebAssembly runtime files (immutable, gzip)" } }, async (request: FastifyRequest<{ Params: { version: string; file: string } }>, reply: FastifyReply) => {
    const { version, file } = request.params;
    if (version !== runtime.version || !RUNTIME_FILE.test(file)) throw notFound(`/ort/${version}/${file}`, runtime.version);
    let body = gzipped.get(file);
    if (!body) {
      body = gzipSync(await readFile(join(runtime.dir, file)), { level: 6 });
      gzipped.set(file, body);
    }
    reply.header('cache-control', IMMUTABLE).header('vary', 'accept-encoding');
    reply.type(file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript; charset=utf-8');
    if (/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(body);
    return reply.send(await readFile(join(runtime.dir, file)));
  });
}

function notFound(path: string, current: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `${path} is not served here (the current version is ${current}; see /models/manifest.json)`);
}
