/** `pixel-info serve`: the HTTP API and the web app (see docs/api.md). */
import type { EncoderPrecisionChoice } from '../../encoder/int8.js';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { describeLibraryTarget, libraryTarget } from '../../library/index.js';
import { SERVER_DEFAULTS, SERVER_MAX_PIXELS, startServer } from '../../server/index.js';
import { addModelOptions, modelOptionsFrom, parsePositiveInt, type ModelFlags } from '../options.js';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { redisUrlFrom, REDIS_URL_ENV } from '../../queue/connection.js';
import { serverQueue } from '../../queue/server-queue.js';
import { RATE_LIMIT_DEFAULTS } from '../../server/rate-limit.js';
import { closeWithin, DEFAULT_DRAIN_TIMEOUT_MS } from '../../server/drain.js';
import { refuseOpenServer } from './keys.js';

interface ServeCliOptions extends ModelFlags {
  /** undefined: the default ('auto', src/decoder/precision.ts). */
  int8Decoder?: boolean;
  encoderPrecision: EncoderPrecisionChoice;
  /** A directory, or false with --no-matcher; undefined: the default matcher when it exists. */
  matcher?: string | false;
  port: number;
  host: string;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  timeoutMs: number;
  bodyLimit: number;
  maxPixels: number;
  library?: string;
  database?: string;
  threads?: number;
  logLevel: string;
  redis?: string;
  remoteCaptioning: boolean;
  /** false with --no-auth. */
  auth: boolean;
  rateLimit: number;
  rateWindow: number;
  drainTimeout: number;
  headerTimeout: number;
  bodyTimeout: number;
  uploadMemory: number;
  quotaBytes: number;
  keyQuotaBytes: number;
  allowedHosts?: string[];
  allowedOrigins?: string[];
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function registerServe(program: Command): void {
  addModelOptions(program
    .command('serve')
    .description('serve the captioning HTTP API and the web app (POST /v1/captions, GET /, /openapi.json, /metrics)')
    .option('--port <n>', 'TCP port; 0 picks a free one', parsePort, 8080)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1'))
    .option('--max-batch <n>', 'most images per encoder/decoder batch', parsePositiveInt, SERVER_DEFAULTS.maxBatch)
    .option('--max-wait-ms <ms>', 'longest wait for a batch to fill', parseNonNegativeInt, SERVER_DEFAULTS.maxWaitMs)
    .option('--max-queue <n>', 'most images waiting; beyond it requests get 503 OVERLOADED', parsePositiveInt, SERVER_DEFAULTS.maxQueue)
    .option('--timeout-ms <ms>', 'per-request limit; beyond it 504 TIMEOUT', parsePositiveInt, SERVER_DEFAULTS.timeoutMs)
    .option('--body-limit <size>', 'largest upload, e.g. 20MB, 512KB, 1000000', parseSize, SERVER_DEFAULTS.bodyLimit)
    .option('--max-pixels <n>', 'largest image (width × height), checked from the header before decoding', parsePositiveInt, SERVER_MAX_PIXELS)
    .option('--library <path>', 'SQLite file of captioned images (default $PIXEL_INFO_LIBRARY, else ./pixel-info-library.sqlite)')
    .option('--database <url>', 'PostgreSQL library shared by replicas and workers, postgres://user:password@host:port/db (default $PIXEL_INFO_DATABASE_URL)')
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--int8-decoder', 'int8 decoder weights even where the model card has no passed int8 gate')
    .option('--no-int8-decoder', 'fp32 decoder weights (default: int8 when the model card records that int8 passed its val quality gate)')
    .addOption(new Option('--encoder-precision <p>', 'encoder graph: fp32, int8, or auto = int8 where the int8 encoder passed its quality gate on this machine type (src/encoder/int8.ts)').choices(['auto', 'fp32', 'int8']).default('auto'))
    .option('--matcher <dir>', 'image–text matcher model directory: caption confidence, POST /v1/match, library search by meaning (default: models/flickr8k-match when present)')
    .option('--no-matcher', 'load no matcher: no confidence, no /v1/match, library search by words only')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, parseLogLevel, 'info')
    .option('--redis <url>', `distributed mode: the job queue's Redis, redis://host:port (default $${REDIS_URL_ENV}); adds /v1/jobs`)
    .option('--remote-captioning', 'caption on the worker pool (`pixel-info worker`) instead of in this process; needs --redis', false)
    .option('--no-auth', 'serve on a non-loopback --host even though the library has no API keys (anyone reaching it sees every image)')
    .option('--rate-limit <n>', 'captioning requests per API key (or address) per window, other /v1 requests 10x; 0: none', parseNonNegativeInt, RATE_LIMIT_DEFAULTS.max)
    .addOption(new Option('--rate-window <duration>', 'the rate-limit window: 1m, 30s, 1h, 500ms').argParser(parseDuration).default(RATE_LIMIT_DEFAULTS.windowMs, '1m'))
    .option('--allowed-hosts <names>', 'host names served besides IP addresses and localhost, comma-separated (.example.com: with subdomains; *: any)', parseList)
    .option('--allowed-origins <origins>', 'origins whose web pages may POST/DELETE besides this server\'s own, comma-separated (https://app.example.com; *: any)', parseList)
    .addOption(new Option('--header-timeout <duration>', 'request headers must arrive within this (else 408)').argParser(parseDuration).default(SERVER_DEFAULTS.headersTimeoutMs, '10s'))
    .addOption(
      new Option('--body-timeout <duration>', 'an upload that sends less than 16 KiB in this long is cut (408)').argParser(parseDuration).default(SERVER_DEFAULTS.bodyTimeoutMs, '10s'),
    )
    .addOption(
      new Option('--upload-memory <size>', 'most bytes of uploads held at once (received, queued or captioned); beyond it 503 before the body is read')
        .argParser(parseSize)
        .default(SERVER_DEFAULTS.uploadMemory, '96MB'),
    )
    .addOption(new Option('--quota-bytes <size>', 'most bytes of stored originals in the library; 0: no limit').argParser(parseSizeOrZero).default(SERVER_DEFAULTS.quotaBytes, '10GB'))
    .addOption(
      new Option('--key-quota-bytes <size>', 'most bytes of stored originals per API key (when keys exist); 0: no limit')
        .argParser(parseSizeOrZero)
        .default(SERVER_DEFAULTS.keyQuotaBytes, '1GB'),
    )
    .addOption(
      new Option('--drain-timeout <duration>', 'on SIGTERM/SIGINT, longest wait for requests in flight before their connections are closed')
        .argParser(parseDuration)
        .default(DEFAULT_DRAIN_TIMEOUT_MS, '10s'),
    )
    .action(async (opts: ServeCliOptions) => {
      // Distributed mode (src/queue/server-queue.ts): batch jobs over HTTP and, optionally, captioning on the workers.
      const redisUrl = redisUrlFrom(opts.redis);
      if (opts.remoteCaptioning && !redisUrl) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `--remote-captioning needs --redis URL (or $${REDIS_URL_ENV})`);
      const queue = redisUrl ? serverQueue({ redisUrl, remoteCaptioning: opts.remoteCaptioning, modelDir: opts.model, timeoutMs: opts.timeoutMs }) : undefined;
      const library = libraryTarget({ database: opts.database, library: opts.library });
      if (opts.auth) await refuseOpenServer(opts.host, library);
      const { server, url } = await startServer({
        port: opts.port,
        host: opts.host,
        ...modelOptionsFrom(opts),
        maxBatch: opts.maxBatch,
        maxWaitMs: opts.maxWaitMs,
        maxQueue: opts.maxQueue,
        timeoutMs: opts.timeoutMs,
        bodyLimit: opts.bodyLimit,
        maxPixels: opts.maxPixels,
        library,
        threads: opts.threads,
        int8Decoder: opts.int8Decoder,
        encoderPrecision: opts.encoderPrecision,
        ...(typeof opts.matcher === 'string' ? { matcherDir: opts.matcher } : opts.matcher === false ? { matcher: false } : {}),
        logger: { level: opts.logLevel },
        queue,
        rateLimit: { max: opts.rateLimit, windowMs: opts.rateWindow },
        headersTimeoutMs: opts.headerTimeout,
        bodyTimeoutMs: opts.bodyTimeout,
        uploadMemory: opts.uploadMemory,
        quotaBytes: opts.quotaBytes,
        keyQuotaBytes: opts.keyQuotaBytes,
        allowedHosts: opts.allowedHosts,
        allowedOrigins: opts.allowedOrigins,
      });
      const { app } = server;
      app.log.info({ url, library: describeLibraryTarget(library), model: opts.model }, `pixel-info serving on ${url}`);

      let stopping: Promise<void> | undefined;
      const stop = (signal: string, exitCode: number) => {
        if (stopping) {
          app.log.warn(`${signal} again: exiting without waiting for in-flight requests`);
          process.exit(1);
        }
        app.log.info(
          { signal, inFlight: server.batcher.depth + (server.batcher.busy ? 1 : 0), drainTimeoutMs: opts.drainTimeout },
          'shutting down: no new connections, finishing in-flight requests',
        );
        // Past the drain deadline, whatever is still open is cut; should stopping itself hang after that (a
        // database that does not answer), the process exits anyway.
        setTimeout(() => {
          app.log.error('not stopped 10 s after the drain deadline: exiting');
          process.exit(1);
        }, opts.drainTimeout + 10_000).unref();
        stopping = closeWithin(app, opts.drainTimeout).then(
          () => {
            app.log.info('stopped');
            process.exitCode = exitCode;
          },
          (err: unknown) => {
            app.log.error({ err }, 'error while stopping');
            process.exitCode = 1;
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM', 0));
      process.on('SIGINT', () => stop('SIGINT', 0));

      try {
        const engine = await server.engineReady;
        app.log.info({ model: engine.card.name }, 'model loaded; ready');
      } catch {
        // logged by the server; a server that cannot caption is of no use
        stop('model load failure', 1);
      }
      await new Promise<void>((resolve) => app.server.once('close', resolve));
      await stopping;
    });
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port number 0-65535, got "${value}"`);
  return n;
}

function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected an integer >= 0, got "${value}"`);
  return n;
}

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, kib: 1024, mb: 1024 ** 2, m: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3, gib: 1024 ** 3 };

/** "20MB" → 20 × 1024 × 1024 (KB/MB/GB are binary here, as in most HTTP servers' body limits). */
export function parseSize(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError(`expected a size such as 20MB, 512KB or 1000000, got "${value}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1) throw new InvalidArgumentError(`size must be at least 1 byte, got "${value}"`);
  return bytes;
}

/** "0" → 0, else a size as parseSize. */
function parseSizeOrZero(value: string): number {
  return /^\s*0+\s*$/.test(value) ? 0 : parseSize(value);
}

/** "a.example, b.example" → ["a.example", "b.example"]; given twice, the lists add up. */
function parseList(value: string, previous: string[] = []): string[] {
  const items = value.split(',').map((v) => v.trim()).filter(Boolean);
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return [...previous, ...items];
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "1m" → 60000, "30s" → 30000, "500ms" → 500 (milliseconds; a bare number is seconds). */
export function parseDuration(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(value);
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[(m[2] ?? 's').toLowerCase()]) : NaN;
  if (!(ms >= 1)) throw new InvalidArgumentError(`expected a duration such as 1m, 30s or 500ms, got "${value}"`);
  return ms;
}

function parseLogLevel(value: string): string {
  if (!LOG_LEVELS.includes(value)) throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  return value;
}
