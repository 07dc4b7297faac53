/**
 * The web app: `GET /` (index.html) and `/styles.css` from the web folder, and the page's one script, `/app.js`
 * (with `/app.js.map`): esbuild's bundle of web/src/main.ts and the shared src modules it imports (the alt-text
 * rule, the colour map, the model card schema).
 *
 * The bundle is the prebuilt one in dist/web/ (`npm run build:web`, part of `npm run build`) when it exists and
 * none of its sources changed since; otherwise esbuild builds it in memory, once per process, when the server
 * starts, so a clone runs without a build step. esbuild is imported only then: a production install without it
 * serves dist/web.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { PACKAGE_ROOT } from '../../pipeline/captioner.js';

export interface WebPluginOptions {
  /** Folder of the web app (index.html, styles.css, src/main.ts); default <package>/web. */
  webRoot?: string;
}

/** The package's web folder. */
export const WEB_ROOT = join(PACKAGE_ROOT, 'web');
/** Where `npm run build:web` writes the bundle of the package's web folder. */
export const WEB_DIST = join(PACKAGE_ROOT, 'dist', 'web');

const SCRIPT = 'app.js';
const SOURCE_MAP = `${SCRIPT}.map`;
/** Next to the bundle in dist/web: the files it was built from, to tell when it is out of date. */
const BUILD_INFO = 'build-info.json';
/** The prebuilt bundle as messages name it. */
const PREBUILT = relative(PACKAGE_ROOT, join(WEB_DIST, SCRIPT));

/** The page's script, ready to serve. */
export interface WebBundle {
  js: Buffer;
  map: Buffer;
  /** The files bundled, relative to the package root. */
  inputs: string[];
  /** Where it came from, for the log: the prebuilt file or the entry point built. */
  origin: string;
}

export async function webPlugin(app: FastifyInstance, options: WebPluginOptions): Promise<void> {
  const webRoot = resolve(options.webRoot ?? WEB_ROOT);
  if (!existsSync(join(webRoot, 'index.html'))) {
    app.log.warn({ webRoot }, 'no web app: index.html not found');
    return;
  }
  const bundle = await loadWebBundle(webRoot, app.log);
  app.log.info({ origin: bundle.origin, bytes: bundle.js.length }, 'web app script');

  // Its own context, so @fastify/static's reply.sendFile does not clash with another registration.
  await app.register(async (web) => {
    await web.register(fastifyStatic, { root: webRoot, serve: false, cacheControl: true, maxAge: 0 });
    const page = (_request: FastifyRequest, reply: FastifyReply) => reply.sendFile('index.html');
    web.get('/', page);
    web.get('/index.html', page);
    web.get('/styles.css', (_request, reply) => reply.sendFile('styles.css'));
    web.get(`/${SCRIPT}`, inMemoryAsset(bundle.js, 'text/javascript; charset=utf-8'));
    web.get(`/${SOURCE_MAP}`, inMemoryAsset(bundle.map, 'application/json; charset=utf-8'));
  });
}

/** The bundle for `webRoot`: the prebuilt one when it is current, else built in memory (once per process). */
async function loadWebBundle(webRoot: string, log: FastifyInstance['log']): Promise<WebBundle> {
  if (webRoot === resolve(WEB_ROOT) && existsSync(join(WEB_DIST, SCRIPT))) {
    const prebuilt = await readPrebuilt(WEB_DIST);
    const changed = newerInputs(prebuilt, join(WEB_DIST, SCRIPT));
    if (changed.length === 0) return prebuilt;
    log.warn({ changed: changed.slice(0, 5) }, `${PREBUILT} is older than its sources; building the page's script in memory (npm run build:web updates it)`);
    return builtOnce(webRoot).catch((err: unknown) => {
      log.warn({ err }, `could not rebuild the page's script; serving the older ${PREBUILT}`);
      return prebuilt;
    });
  }
  return builtOnce(webRoot);
}

const built = new Map<string, Promise<WebBundle>>();
function builtOnce(webRoot: string): Promise<WebBundle> {
  let bundle = built.get(webRoot);
  if (!bundle) {
    bundle = buildWebBundle(webRoot);
    built.set(webRoot, bundle);
    bundle.catch(() => built.delete(webRoot)); // a failed build is tried again by the next server
  }
  return bundle;
}

/**
 * Bundles `<webRoot>/src/main.ts` with esbuild: one minified ES module for current browsers and its source map.
 * Throws INTERNAL with what to do when esbuild is not installed or the build fails.
 */
export async function buildWebBundle(webRoot = WEB_ROOT): Promise<WebBundle> {
  const entry = join(webRoot, 'src', 'main.ts');
  if (!existsSync(entry)) {
    throw new PixelInfoError(ErrorCodes.INTERNAL, `the web app cannot be served: no prebuilt ${PREBUILT} and no ${entry} to build it from`, { subject: entry });
  }
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    throw new PixelInfoError(
      ErrorCodes.INTERNAL,
      `the web app cannot be served: there is no prebuilt ${PREBUILT} and esbuild, which builds it, is not installed (run npm run build:web where the dev dependencies are installed)`,
      { subject: entry, cause: err },
    );
  }
  try {
    const result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: PACKAGE_ROOT,
      outfile: join(PACKAGE_ROOT, SCRIPT), // names the output (nothing is written) and roots the map's sources: web/src/main.ts, src/…
      write: false,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      // onnxruntime-web's build that loads its WebAssembly glue from /ort/ (src/server/plugins/model-files.ts), so
      // its worker threads start from that file and not from this bundle.
      conditions: ['onnxruntime-web-use-extern-wasm'],
      target: 'es2022',
      minify: true,
      sourcemap: 'linked',
      metafile: true,
      legalComments: 'none',
      logLevel: 'silent',
    });
    const output = (suffix: string) => Buffer.from(result.outputFiles.find((f) => f.path.endsWith(suffix))!.contents);
    return { js: output(SCRIPT), map: output(SOURCE_MAP), inputs: Object.keys(result.metafile.inputs), origin: `built from ${relative(PACKAGE_ROOT, entry)}` };
  } catch (err) {
    const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors ?? [];
    const detail = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)).join('; ') || (err as Error).message;
    throw new PixelInfoError(ErrorCodes.INTERNAL, `the web app's script does not build: ${detail}`, { subject: entry, cause: err });
  }
}

/** Writes the bundle of the package's web folder to `outDir` (default dist/web), for `npm run build:web`. */
export async function writeWebBundle(outDir = WEB_DIST): Promise<WebBundle> {
  const bundle = await buildWebBundle(WEB_ROOT);
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, SCRIPT), bundle.js);
  await writeFile(join(outDir, SOURCE_MAP), bundle.map);
  await writeFile(join(outDir, BUILD_INFO), `${JSON.stringify({ inputs: bundle.inputs }, null, 1)}\n`);
  return bundle;
}

async function readPrebuilt(dir: string): Promise<WebBundle> {
  const info = JSON.parse(await readFile(join(dir, BUILD_INFO), 'utf8').catch(() => '{}')) as { inputs?: string[] };
  return {
    js: await readFile(join(dir, SCRIPT)),
    map: await readFile(join(dir, SOURCE_MAP)).catch(() => Buffer.from('{}')),
    inputs: info.inputs ?? [],
    origin: join(dir, SCRIPT),
  };
}

/** Sources of `bundle` changed after `file` was written; sources not present (an installed package) are skipped. */
function newerInputs(bundle: WebBundle, file: string): string[] {
  const builtAt = statSync(file).mtimeMs;
  return bundle.inputs.filter((input) => {
    const stat = statSync(join(PACKAGE_ROOT, input), { throwIfNoEntry: false });
    return stat !== undefined && stat.mtimeMs > builtAt;
  });
}

/** A route handler for an in-memory asset, revalidated by ETag on every use (the page asks for /app.js by that name). */
function inMemoryAsset(body: Buffer, type: string) {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('etag', etag).header('cache-control', 'no-cache').type(type);
    if (request.headers['if-none-match'] === etag) return reply.status(304).send();
    return reply.send(body);
  };
}
