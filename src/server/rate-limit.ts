/**
 * Per-key rate limits on the `/v1` routes (@fastify/rate-limit), counted per API key id, or per client
 * address when no keys are configured. Two budgets per key and window:
 *
 *   captioning   POST /v1/captions, /v1/jobs and /v1/match (model time)  `max` (default 120 a minute)
 *   other        every other /v1 request (search, entries, thumbnails...)  `readMax` (default 10 × max)
 *
 * Past its budget a request gets 429 RATE_LIMITED with `Retry-After` (seconds until the window ends); every
 * counted response carries `X-RateLimit-Limit`, `-Remaining` and `-Reset`. A budget of 0 turns it off.
 * Health, readiness, metrics, the OpenAPI document and the web page are never limited.
 *
 * The counters live in this process, or, given a Redis client (distributed mode), in Redis, so that every
 * replica behind a load balancer counts against the same budget. When Redis cannot be reached requests are
 * let through: a limiter outage must not take the API down with it.
 *
 * The limit runs after authentication (its hook is a route-level onRequest hook, which fastify runs after the
 * root instance's), so it counts the caller's key, never a key it merely claims.
 */
import { once } from 'node:events';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fastifyRateLimit from '@fastify/rate-limit';
import { Redis } from 'ioredis';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { closeRedis } from '../queue/connection.js';
import { isApiPath } from './auth.js';

export const RATE_LIMIT_DEFAULTS = {
  /** Captioning requests per key per window. */
  max: 120,
  /** One minute. */
  windowMs: 60_000,
  /** Other /v1 requests per key per window, as a multiple of `max` (a search shows dozens of thumbnails). */
  readsPerCaption: 10,
} as const;

/** Routes that run the model: the captioning budget. */
const CAPTIONING_ROUTES = new Set(['POST /v1/captions', 'POST /v1/jobs', 'POST /v1/match']);

/** Where the counters of every replica are kept, in Redis. */
const REDIS_NAMESPACE = 'pixel-info:rate-limit:';
/** Longest wait for the server's own Redis client at start, ms. */
const CONNECT_WAIT_MS = 5000;

export interface RateLimitOptions {
  /** Captioning requests per key per window; 0: unlimited. */
  max?: number;
  /** Other /v1 requests per key per window; 0: unlimited. Default `max` × 10 (unlimited when `max` is 0). */
  readMax?: number;
  /** The window, ms. */
  windowMs?: number;
}

export interface RateLimitStore {
  /** A client of the shared Redis: the caller's, left open when the server closes. */
  redis?: Redis;
  /** Else a Redis URL: the server opens its own client and closes it with the server. */
  redisUrl?: string;
}

type Budget = 'captioning' | 'other';

/**
 * Registers the limiter (before the routes: it hooks each /v1 route as it is added). Nothing without `options`
 * (a server built in code, a benchmark, a test) or when both budgets are 0; an unset field takes its default.
 */
export async function addRateLimits(app: FastifyInstance, options: RateLimitOptions | undefined, store: RateLimitStore = {}): Promise<void> {
  if (!options) return;
  const max = options.max ?? RATE_LIMIT_DEFAULTS.max;
  const readMax = options.readMax ?? max * RATE_LIMIT_DEFAULTS.readsPerCaption;
  const windowMs = options.windowMs ?? RATE_LIMIT_DEFAULTS.windowMs;
  if (max === 0 && readMax === 0) return;
  const limitOf = (request: FastifyRequest) => (budgetOf(request) === 'captioning' ? max : readMax);

  const redis = store.redis ?? (store.redisUrl ? await ownRedisClient(app, store.redisUrl) : undefined);
  await app.register(fastifyRateLimit, {
    global: true,
    hook: 'onRequest',
    timeWindow: windowMs,
    max: (request) => limitOf(request),
    keyGenerator: (request) => `${budgetOf(request)}:${callerOf(request)}`,
    allowList: (request) => !isApiPath(request.routeOptions.url ?? '') || limitOf(request) === 0,
    redis,
    nameSpace: REDIS_NAMESPACE,
    skipOnError: true,
    errorResponseBuilder: (request, context) => {
      const what = budgetOf(request) === 'captioning' ? 'captioning requests' : 'requests';
      return new PixelInfoError(ErrorCodes.RATE_LIMITED, `too many ${what}: at most ${context.max} per ${formatWindow(windowMs)}; retry in ${context.after}`);
    },
  });
}

/** Who is counted: the API key, else the client's address (behind a proxy, configure fastify's trustProxy). */
function callerOf(request: FastifyRequest): string {
  return request.viewer.keyId ? `key:${request.viewer.keyId}` : `ip:${request.ip}`;
}

function budgetOf(request: FastifyRequest): Budget {
  return CAPTIONING_ROUTES.has(`${request.method} ${request.routeOptions.url}`) ? 'captioning' : 'other';
}

/** 60000 → "minute", 1000 → "second", 90000 → "90 s". */
function formatWindow(ms: number): string {
  if (ms === 60_000) return 'minute';
  if (ms === 3_600_000) return 'hour';
  if (ms === 1000) return 'second';
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * The server's own Redis client for the counters, closed with the server. It waits up to `CONNECT_WAIT_MS` for
 * Redis and never fails the start: while Redis is away a count fails at once and the request is let through;
 * ioredis reconnects in the background.
 */
async function ownRedisClient(app: FastifyInstance, url: string): Promise<Redis> {
  const client = new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: CONNECT_WAIT_MS,
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
  let reported = false;
  client.on('error', (err: Error) => {
    if (!reported) app.log.warn({ err: err.message }, 'rate limits: Redis unreachable; requests are not limited until it is back');
    reported = true;
  });
  client.on('ready', () => (reported = false));
  app.addHook('onClose', async () => closeRedis(client));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([once(client, 'ready'), new Promise((resolve) => (timer = setTimeout(resolve, CONNECT_WAIT_MS)))]).finally(() => clearTimeout(timer));
  return client;
}
