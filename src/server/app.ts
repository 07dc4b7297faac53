/**
 * The HTTP API and the web app, as a fastify instance: captioning through the micro-batcher, the model card,
 * health and readiness, Prometheus metrics, the OpenAPI document, sentence scores, and the library of
 * captioned images. Every error is JSON `{ "error": { "code", "message" } }` with a stable code.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';
import { PACKAGE_ROOT, type CaptionResult } from '../pipeline/captioner.js';
import { toAltText } from '../pipeline/format.js';
import { sentenceScores } from '../metrics/sentence.js';
import { MicroBatcher } from './batcher.js';
import { captionWorker, resolveSearchChoice, searchKey, type CaptionEngine, type CaptionJob } from './engine.js';
import { Library, MIME_TYPES, type LibraryEntry } from './library.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { captionOptionsSchema, imageIdSchema, libraryQuerySchema, parseOrThrow, scoreBodySchema } from './schemas.js';

export const SERVER_DEFAULTS = {
  maxBatch: 8,
  maxWaitMs: 10,
  maxQueue: 64,
  timeoutMs: 30_000,
  bodyLimit: 20 * 1024 * 1024,
} as const;

export interface ServerOptions {
  /** Loads the captioner; called once when the server is built. /readyz is 200 once it resolves. */
  loadEngine: () => Promise<CaptionEngine>;
  /** The library, or the path of its SQLite file. */
  library: Library | string;
  maxBatch?: number;
  maxWaitMs?: number;
  maxQueue?: number;
  /** Per captioning request, from the moment its body is read. */
  timeoutMs?: number;
  /** Largest request body (raw image or multipart file), bytes. */
  bodyLimit?: number;
  /** fastify's logger option: false, true, or pino options. Default: info-level JSON lines. */
  logger?: FastifyServerOptions['logger'];
  /** Folder of the web app; default <package>/web. */
  webRoot?: string;
}

export interface PixelInfoServer {
  app: FastifyInstance;
  batcher: MicroBatcher<CaptionJob, CaptionResult>;
  library: Library;
  metrics: ServerMetrics;
  /** Resolves with the engine once loaded; rejects with the load error. */
  engineReady: Promise<CaptionEngine>;
}

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  FILE_EMPTY: 422,
  NOT_AN_IMAGE: 422,
  UNSUPPORTED_FORMAT: 422,
  IMAGE_TRUNCATED: 422,
  IMAGE_TOO_LARGE: 422,
  DECODE_FAILED: 422,
  OVERLOADED: 503,
  MODEL_NOT_FOUND: 503,
  MODEL_CORRUPT: 503,
  TIMEOUT: 504,
};

/** Content types accepted as a raw image body (besides multipart/form-data). */
const RAW_IMAGE_TYPES = /^(?:image\/[\w.+-]+|application\/octet-stream)$/i;
const IMMUTABLE = 'public, max-age=31536000, immutable';

export async function buildServer(options: ServerOptions): Promise<PixelInfoServer> {
  const cfg = { ...SERVER_DEFAULTS, ...stripUndefined(options) };
  const library = typeof options.library === 'string' ? new Library(options.library) : options.library;
  const metrics = createMetrics({ maxBatch: cfg.maxBatch, libraryCount: () => library.size });

  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    logController: new LogController({ disableRequestLogging: true }), // one line per request, written in onResponse below
    bodyLimit: cfg.bodyLimit,
    return503OnClosing: false, // answered below, in the API's error format
    forceCloseConnections: 'idle',
  });

  let engine: CaptionEngine | undefined;
  let loadError: PixelInfoError | undefined;
  const engineReady = options.loadEngine().then(
    (e) => (engine = e),
    (err: unknown) => {
      loadError = err instanceof PixelInfoError ? err : new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `the model failed to load: ${(err as Error)?.message ?? err}`, { cause: err });
      app.log.error({ code: loadError.code }, loadError.message);
      throw loadError;
    },
  );
  engineReady.catch(() => {}); // reported through loadError; awaiting callers see the rejection

  const batcher = new MicroBatcher<CaptionJob, CaptionResult>({
    worker: captionWorker(() => engine!),
    maxBatch: cfg.maxBatch,
    maxWaitMs: cfg.maxWaitMs,
    maxQueue: cfg.maxQueue,
    keyOf: searchKey,
    onBatch: ({ size, durationMs }) => {
      metrics.batchSize.observe(size);
      metrics.batchDuration.observe(durationMs / 1000);
    },
    onQueueDepth: (depth) => metrics.queueDepth.set(depth),
  });

  /** The engine, waiting for it to load for at most `ms`. */
  const waitForEngine = async (ms: number): Promise<CaptionEngine> => {
    if (engine) return engine;
    if (loadError) throw loadError;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PixelInfoError(ErrorCodes.TIMEOUT, `the model did not finish loading within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([engineReady, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  await app.register(multipart, {
    throwFileSizeLimit: true,
    limits: { fileSize: cfg.bodyLimit, files: 1, fields: 8, fieldSize: 1024, parts: 10 },
  });
  app.addContentTypeParser(RAW_IMAGE_TYPES, { parseAs: 'buffer', bodyLimit: cfg.bodyLimit }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header(
      'content-security-policy',
      "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    );
  });
  // While stopping, in-flight responses close their connection: an idle keep-alive socket would otherwise hold
  // the server open until keepAliveTimeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('retry-after', '5');
    return reply.status(503).send({ error: { code: ErrorCodes.OVERLOADED, message: 'the server is shutting down' } });
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, reply.elapsedTime / 1000);
    request.log.info({ method: request.method, url: request.url, route, status: reply.statusCode, ms: round1(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((err: FastifyError | PixelInfoError, request, reply) => {
    const { status, code, message } = toHttpError(err);
    if (status >= 500 && code !== ErrorCodes.OVERLOADED && code !== ErrorCodes.TIMEOUT) request.log.error({ err }, message);
    if (code === ErrorCodes.OVERLOADED) reply.header('retry-after', String(batcher.retryAfterSeconds()));
    return reply.status(status).send({ error: { code, message } });
  });
  app.setNotFoundHandler((request, reply) => {
    return reply.status(404).send({ error: { code: ErrorCodes.NOT_FOUND, message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });

  // --- captioning ---------------------------------------------------------------------------------------------

  app.post('/v1/captions', async (request, reply) => {
    const started = performance.now();
    const { bytes, fields } = await readImageRequest(request);
    const query = parseOrThrow(captionOptionsSchema, request.query, 'query');
    const opts = { ...query, ...parseOrThrow(captionOptionsSchema, fields, 'form fields') };
    if (bytes.length === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, 'image: the upload is empty (0 bytes)');

    const remaining = () => Math.max(0, cfg.timeoutMs - (performance.now() - started));
    const card = (await waitForEngine(remaining())).card;
    const search = resolveSearchChoice(opts, card);
    const id = createHash('sha256').update(bytes).digest('hex');
    const done = await batcher.submit({ bytes, search }, { timeoutMs: remaining() }).catch((err: unknown) => {
      if (err instanceof PixelInfoError && err.code === ErrorCodes.TIMEOUT) {
        throw new PixelInfoError(ErrorCodes.TIMEOUT, `the request did not finish within ${cfg.timeoutMs} ms (queue depth ${batcher.depth})`);
      }
      throw err;
    });
    metrics.queueWait.observe(done.queuedMs / 1000);
    const result = done.result;

    let stored = false;
    try {
      await library.put({ id, bytes, ...result.image, captions: result.captions.map((c) => ({ text: c.text, score: c.score })) });
      stored = true;
    } catch (err) {
      request.log.warn({ err, id }, 'could not store the image in the library');
    }
    reply.header('cache-control', 'no-store');
    return {
      id,
      model: card.name ?? null,
      image: result.image,
      captions: result.captions.map((c) => ({
        text: c.text,
        tokens: c.tokens,
        score: c.score,
        logProb: c.logProb,
        ...(opts.attention && c.attention ? { attention: c.attention.map(toGrid) } : {}),
      })),
      altText: toAltText(result.captions[0]?.text ?? ''),
      options: { beam: search.beamSize, nbest: search.nBest, maxLength: search.maxLength, attention: Boolean(opts.attention) },
      timings: { ...result.timings, queueMs: round1(done.queuedMs), requestMs: round1(performance.now() - started), batchSize: done.batchSize },
      library: stored ? libraryLinks(id) : null,
    };
  });

  app.post('/v1/score', { bodyLimit: 256 * 1024 }, async (request) => {
    if (!request.body || typeof request.body !== 'object') {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'send a JSON body {"references": ["..."], "candidate": "..."} with content-type application/json');
    }
    const { references, candidate } = parseOrThrow(scoreBodySchema, request.body, 'body');
    return { scores: sentenceScores(references, candidate), references: references.length };
  });

  // --- model, health, metrics, docs ---------------------------------------------------------------------------

  app.get('/v1/model', async () => (await waitForEngine(cfg.timeoutMs)).card);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (engine) return { status: 'ready', model: engine.card.name ?? null, queueDepth: batcher.depth };
    reply.status(503);
    if (loadError) return { status: 'failed', error: loadError.toJSON() };
    return { status: 'loading' };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/openapi.json', async () => openApiDocument);

  // --- library --------------------------------------------------------------------------------------------------

  app.get('/v1/library', async (request) => {
    const { q = '', limit = 24 } = parseOrThrow(libraryQuerySchema, request.query, 'query');
    const items = library.search(q, limit);
    return { query: q, count: items.length, total: library.size, items: items.map(withLinks) };
  });
  app.get<{ Params: { id: string } }>('/v1/library/:id', async (request) => {
    const id = parseOrThrow(imageIdSchema, request.params.id, 'id');
    const entry = library.get(id);
    if (!entry) throw notInLibrary(id);
    return withLinks(entry);
  });
  app.get<{ Params: { id: string } }>('/v1/library/:id/image', async (request, reply) => {
    const id = parseOrThrow(imageIdSchema, request.params.id, 'id');
    const image = library.image(id);
    if (!image) throw notInLibrary(id);
    return reply.type(MIME_TYPES[image.format] ?? 'application/octet-stream').header('cache-control', IMMUTABLE).send(image.bytes);
  });
  app.get<{ Params: { id: string } }>('/v1/library/:id/thumbnail', async (request, reply) => {
    const id = parseOrThrow(imageIdSchema, request.params.id, 'id');
    const thumbnail = library.thumbnail(id);
    if (!thumbnail) throw notInLibrary(id);
    return reply.type('image/jpeg').header('cache-control', IMMUTABLE).send(thumbnail);
  });

  // --- web app -------------------------------------------------------------------------------------------------

  const webRoot = options.webRoot ?? join(PACKAGE_ROOT, 'web');
  if (existsSync(webRoot)) await app.register(fastifyStatic, { root: webRoot, prefix: '/', index: 'index.html', cacheControl: true, maxAge: 0 });

  // Stop order: the HTTP server stops accepting and in-flight requests finish (fastify's own onClose runs
  // first), then the queue is drained, the model released and the database closed.
  app.addHook('onClose', async () => {
    await batcher.drain();
    await engineReady.then((e) => e.release(), () => {});
    library.close();
  });

  return { app, batcher, library, metrics, engineReady };
}

/** The image bytes and any multipart fields of a captioning request. */
async function readImageRequest(request: FastifyRequest): Promise<{ bytes: Buffer; fields: Record<string, string> }> {
  const fields: Record<string, string> = {};
  if (request.isMultipart()) {
    let bytes: Buffer | undefined;
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname === 'image' && !bytes) bytes = await part.toBuffer();
        else part.file.resume(); // not ours: drain it so the rest of the form can be read
      } else {
        fields[part.fieldname] = String(part.value);
      }
    }
    if (!bytes) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'image: the form has no file field named "image"', { subject: 'image' });
    return { bytes, fields };
  }
  const body = request.body;
  if (Buffer.isBuffer(body)) return { bytes: body, fields };
  if (body === undefined || body === null || body === '') {
    throw new PixelInfoError(ErrorCodes.FILE_EMPTY, 'image: the request has no body; send an image as multipart/form-data (field "image") or as the body with an image/* content type');
  }
  throw new PixelInfoError(
    ErrorCodes.INVALID_ARGUMENT,
    `content-type ${request.headers['content-type'] ?? '(none)'} is not accepted here; send multipart/form-data with a file field "image", or the image bytes with an image/* content type`,
  );
}

/** Any thrown error → status, stable code and a message safe to show a client. */
export function toHttpError(err: unknown): { status: number; code: ErrorCode; message: string } {
  if (err instanceof PixelInfoError) return { status: HTTP_STATUS[err.code] ?? 500, code: err.code, message: err.message };
  const e = err as FastifyError;
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) {
    return { status: 413, code: ErrorCodes.PAYLOAD_TOO_LARGE, message: `the request is too large (${e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FIELDS_LIMIT' ? e.message : 'over the body size limit'})` };
  }
  if (status === 415) return { status, code: ErrorCodes.INVALID_ARGUMENT, message: `unsupported content type: ${e.message}` };
  if (status === 503) return { status, code: ErrorCodes.OVERLOADED, message: e.message || 'the server is unavailable' };
  if (status >= 400 && status < 500) return { status, code: ErrorCodes.INVALID_ARGUMENT, message: e.message };
  return { status: 500, code: ErrorCodes.INTERNAL, message: 'internal error (see the server log)' };
}

function notInLibrary(id: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `no image ${id} in the library`, { subject: id });
}

function libraryLinks(id: string): { imageUrl: string; thumbnailUrl: string } {
  return { imageUrl: `/v1/library/${id}/image`, thumbnailUrl: `/v1/library/${id}/thumbnail` };
}

function withLinks(entry: LibraryEntry) {
  return { ...entry, ...libraryLinks(entry.id) };
}

/** 49 weights (row-major 7x7) → 7 rows of 7, rounded to 5 decimals (plenty for a heat-map, a third of the JSON). */
function toGrid(weights: number[]): number[][] {
  const side = Math.round(Math.sqrt(weights.length));
  const rows: number[][] = [];
  for (let r = 0; r < side; r++) rows.push(weights.slice(r * side, (r + 1) * side).map((w) => Math.round(w * 1e5) / 1e5));
  return rows;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
