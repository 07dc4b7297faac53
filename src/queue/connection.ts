/**
 * Connections to Redis, the queue's broker: the URL from `--redis` or PIXEL_INFO_REDIS_URL, and ioredis clients
 * set up for their role. BullMQ is given ready-made ioredis clients (it cannot load ioredis itself from an ES
 * module), so whoever opens a client here also closes it.
 *
 *   worker    BullMQ Workers and QueueEvents block on Redis and must ride out a restart: commands wait and are
 *             retried until Redis is back (`maxRetriesPerRequest: null`, as BullMQ requires).
 *   producer  the CLI and the HTTP API add and read jobs: while Redis is unreachable a command fails at once,
 *             so a request gets a clear 503 instead of hanging; the client reconnects in the background.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const REDIS_URL_ENV = 'PIXEL_INFO_REDIS_URL';

export type RedisRole = 'worker' | 'producer';

/** `--redis` if given, else $PIXEL_INFO_REDIS_URL; undefined when neither is set. */
export function redisUrlFrom(option?: string): string | undefined {
  const url = option?.trim() || process.env[REDIS_URL_ENV]?.trim();
  return url || undefined;
}

/** Like redisUrlFrom, but the URL is required: INVALID_ARGUMENT naming the option and the variable when missing. */
export function requireRedisUrl(option?: string): string {
  const url = redisUrlFrom(option);
  if (!url) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `no Redis URL: pass --redis redis://HOST:PORT or set ${REDIS_URL_ENV}`, { subject: 'redis' });
  checkRedisUrl(url);
  return url;
}

/** Throws INVALID_ARGUMENT unless `url` is a redis:// or rediss:// URL. */
export function checkRedisUrl(url: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['redis:', 'rediss:'].includes(parsed.protocol)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `not a Redis URL: "${redactUrl(url)}" (expected redis://[user:password@]host:port[/db])`, { subject: 'redis' });
  }
}

/** The URL with any password replaced by ***, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

const ROLE_OPTIONS: Record<RedisRole, RedisOptions> = {
  worker: { maxRetriesPerRequest: null, enableOfflineQueue: true },
  producer: { maxRetriesPerRequest: 1, enableOfflineQueue: false },
};

export interface ConnectOptions {
  /** How long to wait for the first connection, ms. */
  timeoutMs?: number;
  /** Asked before every reconnection attempt: true ends the client (and its copies) instead. */
  stopReconnecting?: () => boolean;
}

/**
 * An ioredis client for `role`, connected: resolves once Redis answers, or fails with OVERLOADED naming the
 * (redacted) URL after `timeoutMs` — the client is closed then. Reconnection after a later loss is automatic.
 */
export async function connectRedis(url: string, role: RedisRole, options: ConnectOptions = {}): Promise<Redis> {
  const { timeoutMs = 5000, stopReconnecting } = options;
  checkRedisUrl(url);
  const client = new Redis(url, {
    ...ROLE_OPTIONS[role],
    lazyConnect: true,
    connectTimeout: Math.min(timeoutMs, 10_000),
    // Back off to 2 s between attempts; give up only when told to (a worker outlives a Redis restart). Copies of
    // the client (BullMQ's blocking connections) share this strategy, so they stop reconnecting too.
    retryStrategy: (times) => (stopReconnecting?.() ? null : Math.min(times * 100, 2000)),
  });
  let lastError: Error | undefined;
  const onError = (err: Error) => (lastError = err);
  client.on('error', onError); // ioredis reports every failed attempt here; without a listener Node would throw
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
      }),
    ]);
    return client;
  } catch (err) {
    client.disconnect();
    const why = lastError?.message ?? (err as Error).message;
    throw new PixelInfoError(ErrorCodes.OVERLOADED, `cannot reach Redis at ${redactUrl(url)} (${why})`, { subject: 'redis', cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a client politely (QUIT), or drops it when Redis is unreachable. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  await client.quit().catch(() => client.disconnect());
}

/** Errors that mean "Redis is not reachable right now" (retry later), as opposed to a bad command. */
export function isConnectionError(err: unknown): boolean {
  const message = (err as Error)?.message ?? '';
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code) ||
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|max retries per request|ECONNREFUSED|ECONNRESET/i.test(message)
  );
}

/** A connection failure of a producer as a typed error: OVERLOADED (HTTP 503, try again later). */
export function queueUnavailable(err: unknown, url?: string): PixelInfoError {
  const where = url ? ` at ${redactUrl(url)}` : '';
  return new PixelInfoError(ErrorCodes.OVERLOADED, `the job queue (Redis${where}) is unreachable: ${(err as Error)?.message ?? err}; retry later`, {
    subject: 'redis',
    cause: err,
  });
}
