/**
 * The HTTP API and the web app, composed as a fastify instance: zod schemas for validation, serialization and
 * the OpenAPI document; shared decorations (the engine, the micro-batcher, the library, the metrics); shared
 * hooks and the error format (`{ "error": { "code", "message" } }` with a stable code); then one plugin per
 * resource, under ./plugins.
 *
 * Who is asking: every request carries `request.viewer` (src/library/types.ts), which the routes pass to the
 * library: EVERYONE without API keys, else the presented key's (./auth.ts); how often it may ask: ./rate-limit.ts.
 *
 * Hostile clients: only this server's host names are answered and browsers may change things only from its own
 * origin (./guards.ts); headers must arrive within headersTimeoutMs and uploads keep a minimum pace, and an upload
 * is admitted or refused before its body is read (./uploads.ts, ./quota.ts); requests whose client hangs up leave
 * the queue (./hooks.ts); scoring runs on worker threads (./worker-pool.ts); stopping has a deadline (./drain.ts).
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import { EVERYONE, openLibrary, type LibraryStore, type Viewer } from '../library/index.js';
import type { CaptionResult } from '../pipeline/captioner.js';
import { MicroBatcher } from './batcher.js';
import { captionWorker, EngineLoader, jobKey, type CaptionEngine, type CaptionJob } from './engine.js';
import { addAuthentication } from './auth.js';
import { addAbandonTracking, addGracefulClose, addRequestLog, addSecurityHeaders, clientErrorHandler } from './hooks.js';
import { addHostCheck, addOriginCheck, checkGuardOptions } from './guards.js';
import { BurstMemoryRelease } from './memory.js';
import { LibraryQuota } from './quota.js';
import { addUploadPace, PACE_DEFAULTS, UploadAdmission } from './uploads.js';
import { errorHandler, notFoundHandler } from './http-errors.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { openApiOptions } from './openapi.js';
import { addRateLimits, type RateLimitOptions } from './rate-limit.js';
import { captionsPlugin } from './plugins/captions.js';
import { docsPlugin } from './plugins/docs.js';
import { healthPlugin } from './plugins/health.js';
import { libraryPlugin } from './plugins/library.js';
import { metricsPlugin } from './plugins/metrics.js';
import { modelPlugin } from './plugins/model.js';
import { scorePlugin } from './plugins/score.js';
import { webPlugin } from './plugins/web.js';
import { modelFilesPlugin, type ModelFilesOptions } from './plugins/model-files.js';
import { jobsPlugin } from './plugins/jobs.js';
import { matchPlugin } from './plugins/match.js';
import type { ServerQueue } from '../queue/server-queue.js';

export const SERVER_DEFAULTS = {
  maxBatch: 8,
  maxWaitMs: 10,
  maxQueue: 64,
  timeoutMs: 30_000,
  bodyLimit: 20 * 1024 * 1024,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: PACE_DEFAULTS.windowMs,
  uploadMemory: 96 * 1024 * 1024,
  quotaBytes: 10 * 1024 ** 3,
  keyQuotaBytes: 1024 ** 3,
} as const;

/** Longest time to receive one whole request (headers and body) whatever its pace, ms. */
const REQUEST_RECEIVE_LIMIT_MS = 300_000;
/** How often Node checks the header and request timeouts, ms (its default, 30 s, would let a slow client stay 40 s). */
const TIMEOUT_CHECK_INTERVAL_MS = 1000;

export interface ServerOptions {
  /** Loads the captioner; called once when the server is built. /readyz is 200 once it resolves. */
  loadEngine: () => Promise<CaptionEngine>;
  /**
   * The library, or where it is: an SQLite file path or a postgres:// URL (see openLibrary). A store opened here
   * is closed with the server; a store passed in stays the caller's to close.
   */
  library: LibraryStore | string;
  maxBatch?: number;
  maxWaitMs?: number;
  maxQueue?: number;
  /** Per captioning request, from the moment its body is read. */
  timeoutMs?: number;
  /** Largest request body (raw image or multipart file), bytes. */
  bodyLimit?: number;
  /** Request headers must be complete within this, ms; else 408 and the connection is closed. */
  headersTimeoutMs?: number;
  /** An upload must deliver at least 16 KiB in every window of this many ms; else it is cut (./uploads.ts). */
  bodyTimeoutMs?: number;
  /** Most bytes of uploads admitted at once (being received, queued or captioned); beyond it 503 before reading. */
  uploadMemory?: number;
  /** Most bytes of stored originals in the library; 0: no limit (./quota.ts). */
  quotaBytes?: number;
  /** Most bytes of stored originals per API key, when keys exist; 0: no limit. */
  keyQuotaBytes?: number;
  /** Host names answered besides IP literals and localhost (./guards.ts); `*`: any. */
  allowedHosts?: readonly string[];
  /** Origins whose pages may send state-changing requests besides the server's own (./guards.ts); `*`: any. */
  allowedOrigins?: readonly string[];
  /** fastify's logger option: false, true, or pino options. Default: info-level JSON lines. */
  logger?: FastifyServerOptions['logger'];
  /** Folder of the web app; default <package>/web. */
  webRoot?: string;
  /** Serve the models for captioning in the browser (/models/, /ort/; src/server/plugins/model-files.ts). */
  deviceModel?: ModelFilesOptions;
  /** Distributed mode (`serve --redis`): the batch-job routes, and with remote captioning the worker pool as the engine. */
  queue?: ServerQueue;
  /** How long "does any API key exist?" is cached, ms (default 2000); 0: asked on every request. */
  keysCacheMs?: number;
  /** Per-key limits on /v1 requests (src/server/rate-limit.ts); none unless given (`serve` gives 120 captioning requests a minute). */
  rateLimit?: RateLimitOptions;
  /**
   * Redis for the rate-limit counters, shared by every replica (the caller's to close). Without it, a server with
   * `queue` keeps them in the queue's Redis, on a connection of its own; otherwise in this process.
   */
  rateLimitRedis?: Redis;
}

export interface PixelInfoServer {
  app: FastifyInstance;
  batcher: MicroBatcher<CaptionJob, CaptionResult>;
  library: LibraryStore;
  metrics: ServerMetrics;
  /** Resolves with the engine once loaded; rejects with the load error. */
  engineReady: Promise<CaptionEngine>;
}

/** What every plugin reads from the instance (decorated once, in buildServer). */
declare module 'fastify' {
  interface FastifyInstance {
    engine: EngineLoader;
    batcher: MicroBatcher<CaptionJob, CaptionResult>;
    library: LibraryStore;
    metrics: ServerMetrics;
  }
  interface FastifyRequest {
    /** Who is asking; what the library shows and changes depends on it. */
    viewer: Viewer;
  }
}

export async function buildServer(options: ServerOptions): Promise<PixelInfoServer> {
  const cfg = { ...SERVER_DEFAULTS, ...stripUndefined(options) };
  const guards = checkGuardOptions(options);
  // First: a library that cannot be opened stops the server before anything else starts.
  const ownsLibrary = typeof options.library === 'string';
  const library = typeof options.library === 'string' ? await openLibrary(options.library) : options.library;
  const metrics = createMetrics({ maxBatch: cfg.maxBatch, libraryCount: () => library.count(EVERYONE) });
  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    logController: new LogController({ disableRequestLogging: true }), // one line per request, from addRequestLog
    bodyLimit: cfg.bodyLimit,
    return503OnClosing: false, // answered by addGracefulClose, in the API's error format
    forceCloseConnections: 'idle',
    requestTimeout: REQUEST_RECEIVE_LIMIT_MS,
    http: { headersTimeout: cfg.headersTimeoutMs, requestTimeout: REQUEST_RECEIVE_LIMIT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS },
    clientErrorHandler: clientErrorHandler(metrics),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const engine = new EngineLoader(options.queue?.remoteEngine ?? options.loadEngine, (error) => app.log.error({ code: error.code }, error.message));
  const batcher = new MicroBatcher<CaptionJob, CaptionResult>({
    worker: captionWorker(() => engine.loaded),
    maxBatch: cfg.maxBatch,
    maxWaitMs: cfg.maxWaitMs,
    maxQueue: cfg.maxQueue,
    keyOf: jobKey,
    onBatch: ({ size, durationMs }) => {
      metrics.batchSize.observe(size);
      metrics.batchDuration.observe(durationMs / 1000);
    },
    onQueueDepth: (depth) => metrics.queueDepth.set(depth),
  });
  app.decorate('engine', engine).decorate('batcher', batcher).decorate('library', library).decorate('metrics', metrics);

  addSecurityHeaders(app);
  addHostCheck(app, guards.allowedHosts);
  addGracefulClose(app);
  addAbandonTracking(app, metrics);
  addUploadPace(app, metrics, { ...PACE_DEFAULTS, windowMs: cfg.bodyTimeoutMs });
  addAuthentication(app, { keysCacheMs: options.keysCacheMs });
  addOriginCheck(app, guards.allowedOrigins);
  addRequestLog(app, metrics);
  app.setErrorHandler(errorHandler(() => batcher.retryAfterSeconds()));
  app.setNotFoundHandler(notFoundHandler);

  // Before the routes: they hook and collect the routes as they are added.
  await addRateLimits(app, options.rateLimit, { redis: options.rateLimitRedis, redisUrl: options.queue?.redisUrl });
  await app.register(fastifySwagger, openApiOptions());
  const memoryRelease = new BurstMemoryRelease();
  app.addHook('onClose', async () => memoryRelease.stop());
  const admission = new UploadAdmission({
    bodyLimit: cfg.bodyLimit,
    maxAdmitted: cfg.maxQueue + cfg.maxBatch,
    uploadMemory: cfg.uploadMemory,
    retryAfterSeconds: () => batcher.retryAfterSeconds(),
    onHeld: (bytes) => memoryRelease.held(bytes),
  });
  const quota = new LibraryQuota(library, { totalBytes: cfg.quotaBytes, perKeyBytes: cfg.keyQuotaBytes });
  await app.register(captionsPlugin, { timeoutMs: cfg.timeoutMs, bodyLimit: cfg.bodyLimit, admission, quota });
  await app.register(libraryPlugin, { timeoutMs: cfg.timeoutMs });
  await app.register(matchPlugin, { timeoutMs: cfg.timeoutMs, bodyLimit: cfg.bodyLimit, admission });
  await app.register(scorePlugin);
  await app.register(modelPlugin, { timeoutMs: cfg.timeoutMs });
  await app.register(healthPlugin);
  await app.register(metricsPlugin);
  await app.register(docsPlugin);
  if (options.queue) await app.register(jobsPlugin, options.queue);
  if (options.deviceModel) await app.register(modelFilesPlugin, options.deviceModel);
  await webPlugin(app, { webRoot: options.webRoot });

  // Stop order: the HTTP server stops accepting and in-flight requests finish (fastify's own onClose runs
  // first), then the queue is drained, the model released and the database closed.
  app.addHook('onClose', async () => {
    await batcher.drain();
    await engine.release();
    if (ownsLibrary) await library.close();
  });

  return { app, batcher, library, metrics, engineReady: engine.ready };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
