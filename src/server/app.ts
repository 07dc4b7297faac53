/**
 * The HTTP API and the web app, composed as a fastify instance: zod schemas for validation, serialization and
 * the OpenAPI document; shared decorations (the engine, the micro-batcher, the library, the metrics); shared
 * hooks and the error format (`{ "error": { "code", "message" } }` with a stable code); then one plugin per
 * resource, under ./plugins.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { CaptionResult } from '../pipeline/captioner.js';
import { MicroBatcher } from './batcher.js';
import { captionWorker, EngineLoader, jobKey, type CaptionEngine, type CaptionJob } from './engine.js';
import { addGracefulClose, addRequestLog, addSecurityHeaders } from './hooks.js';
import { errorHandler, notFoundHandler } from './http-errors.js';
import { Library } from './library.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { openApiOptions } from './openapi.js';
import { captionsPlugin } from './plugins/captions.js';
import { docsPlugin } from './plugins/docs.js';
import { healthPlugin } from './plugins/health.js';
import { libraryPlugin } from './plugins/library.js';
import { metricsPlugin } from './plugins/metrics.js';
import { modelPlugin } from './plugins/model.js';
import { scorePlugin } from './plugins/score.js';
import { webPlugin } from './plugins/web.js';

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

/** What every plugin reads from the instance (decorated once, in buildServer). */
declare module 'fastify' {
  interface FastifyInstance {
    engine: EngineLoader;
    batcher: MicroBatcher<CaptionJob, CaptionResult>;
    library: Library;
    metrics: ServerMetrics;
  }
}

export async function buildServer(options: ServerOptions): Promise<PixelInfoServer> {
  const cfg = { ...SERVER_DEFAULTS, ...stripUndefined(options) };
  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    logController: new LogController({ disableRequestLogging: true }), // one line per request, from addRequestLog
    bodyLimit: cfg.bodyLimit,
    return503OnClosing: false, // answered by addGracefulClose, in the API's error format
    forceCloseConnections: 'idle',
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const library = typeof options.library === 'string' ? new Library(options.library) : options.library;
  const metrics = createMetrics({ maxBatch: cfg.maxBatch, libraryCount: () => library.size });
  const engine = new EngineLoader(options.loadEngine, (error) => app.log.error({ code: error.code }, error.message));
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
  addGracefulClose(app);
  addRequestLog(app, metrics);
  app.setErrorHandler(errorHandler(() => batcher.retryAfterSeconds()));
  app.setNotFoundHandler(notFoundHandler);

  // Before the routes: it collects them as they are added.
  await app.register(fastifySwagger, openApiOptions());
  await app.register(captionsPlugin, { timeoutMs: cfg.timeoutMs, bodyLimit: cfg.bodyLimit });
  await app.register(libraryPlugin);
  await app.register(scorePlugin);
  await app.register(modelPlugin, { timeoutMs: cfg.timeoutMs });
  await app.register(healthPlugin);
  await app.register(metricsPlugin);
  await app.register(docsPlugin);
  await webPlugin(app, { webRoot: options.webRoot });

  // Stop order: the HTTP server stops accepting and in-flight requests finish (fastify's own onClose runs
  // first), then the queue is drained, the model released and the database closed.
  app.addHook('onClose', async () => {
    await batcher.drain();
    await engine.release();
    library.close();
  });

  return { app, batcher, library, metrics, engineReady: engine.ready };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
