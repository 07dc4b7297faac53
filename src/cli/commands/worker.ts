/**
 * `pixel-info worker`: a captioning worker of the distributed mode. It takes batch-job inputs (and interactive
 * requests of `serve --remote-captioning` replicas) from the queue in Redis, captions them in micro-batches
 * and writes the results to the shared library. Log lines are JSON on stdout; SIGTERM or SIGINT stops it
 * gracefully (held jobs finished, locks released, exit 0); a second signal exits at once.
 */
import type { EncoderPrecisionChoice } from '../../encoder/int8.js';
import { Option, type Command } from 'commander';
import { pino } from 'pino';
import { describeLibraryTarget, libraryTarget, matcherIdOf, modelIdOf, openLibrary } from '../../library/index.js';
import { Captioner } from '../../pipeline/captioner.js';
import { redactUrl, requireRedisUrl } from '../../queue/connection.js';
import { s3SettingsFrom } from '../../queue/s3.js';
import { createWorkerMetrics, serveMetrics } from '../../worker/metrics.js';
import { CaptionWorker, WORKER_DEFAULTS } from '../../worker/worker.js';
import { addModelOptions, modelOptionsFrom, parseNonNegativeInt, parsePositiveInt, type ModelFlags } from '../options.js';
import { addQueueOptions, type QueueCliOptions } from './jobs.js';

interface WorkerCliOptions extends QueueCliOptions, ModelFlags {
  concurrency: number;
  batchSize: number;
  maxWaitMs: number;
  threads?: number;
  /** undefined: the default ('auto', src/decoder/precision.ts). */
  int8Decoder?: boolean;
  encoderPrecision: EncoderPrecisionChoice;
  metricsPort?: number;
  metricsHost: string;
  lockMs: number;
  interactive: boolean;
  logLevel: string;
}

export function registerWorker(program: Command): void {
  const command = program
    .command('worker')
    .description('caption queued work (batch jobs, remote interactive requests) and store the results in the library');
  addQueueOptions(addModelOptions(command), { s3: true })
    .option('--concurrency <n>', 'queue jobs held at once (two batches keep the model busy)', parsePositiveInt, WORKER_DEFAULTS.concurrency)
    .option('--batch-size <n>', 'most images per encoder/decoder batch', parsePositiveInt, WORKER_DEFAULTS.batchSize)
    .option('--max-wait-ms <ms>', 'longest wait for a batch to fill', parseNonNegativeInt, WORKER_DEFAULTS.maxWaitMs)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--int8-decoder', 'int8 decoder weights even where the model card has no passed int8 gate')
    .option('--no-int8-decoder', 'fp32 decoder weights (default: int8 when the model card records that int8 passed its val quality gate)')
    .addOption(new Option('--encoder-precision <p>', 'encoder graph: fp32, int8, or auto = int8 where the int8 encoder passed its quality gate on this machine type (src/encoder/int8.ts)').choices(['auto', 'fp32', 'int8']).default('auto'))
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port (GET /metrics)', parseNonNegativeInt)
    .option('--metrics-host <address>', 'address of the metrics endpoint (0.0.0.0 for a scraper on another machine)', '127.0.0.1')
    .option('--lock-ms <ms>', "a killed worker's jobs go back to the queue this long after its last sign of life", parsePositiveInt, WORKER_DEFAULTS.lockDurationMs)
    .option('--no-interactive', 'take batch-job inputs only, no interactive requests')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .action(async (opts: WorkerCliOptions) => {
      const redisUrl = requireRedisUrl(opts.redis);
      const target = libraryTarget({ database: opts.database });
      const log = pino({ level: opts.logLevel, base: { pid: process.pid } });

      const modelId = await modelIdOf(opts.model, { int8Decoder: opts.int8Decoder, encoderPrecision: opts.encoderPrecision });
      const store = await openLibrary(target);
      let captioner: Captioner | undefined;
      let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
      let worker: CaptionWorker | undefined;
      const release = async () => {
        await worker?.close();
        await captioner?.release();
        await store.close();
        await new Promise<void>((resolve) => (metricsServer ? metricsServer.server.close(() => resolve()) : resolve()));
      };
      try {
        captioner = await Captioner.load({ ...modelOptionsFrom(opts), threads: opts.threads, batchSize: opts.batchSize, int8Decoder: opts.int8Decoder, encoderPrecision: opts.encoderPrecision });
        const metrics = createWorkerMetrics(opts.batchSize);
        if (opts.metricsPort !== undefined) {
          metricsServer = await serveMetrics(metrics.registry, opts.metricsPort, opts.metricsHost);
          log.info({ port: metricsServer.port }, `metrics on http://${opts.metricsHost}:${metricsServer.port}/metrics`);
        }
        worker = await CaptionWorker.start({
          redisUrl,
          store,
          engine: captioner,
          modelId,
          matcherId: captioner.matcherInfo ? await matcherIdOf(captioner.matcherInfo.dir) : undefined,
          concurrency: opts.concurrency,
          batchSize: opts.batchSize,
          maxWaitMs: opts.maxWaitMs,
          lockDurationMs: opts.lockMs,
          stalledIntervalMs: Math.min(opts.lockMs, WORKER_DEFAULTS.stalledIntervalMs),
          queues: { items: true, interactive: opts.interactive },
          s3: s3SettingsFrom(opts.s3Endpoint),
          metrics,
          logger: log,
          name: `pixel-info-worker-${process.pid}`,
        });
      } catch (err) {
        await release();
        throw err;
      }
      log.info({ redis: redactUrl(redisUrl), library: describeLibraryTarget(target), model: modelId }, 'ready; waiting for work');

      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) {
            log.warn({ signal }, `${signal} again: exiting without finishing the held jobs (they return to the queue when their locks expire)`);
            process.exit(1);
          }
          stopping = true;
          log.info({ signal, held: worker!.held }, 'shutting down: no new jobs, finishing the held ones');
          release().then(
            () => {
              log.info({}, 'stopped');
              process.exitCode = 0;
              // Everything is closed; if a stop that gave up on Redis left a client timer behind, do not linger.
              setTimeout(() => process.exit(), 2000).unref();
              resolve();
            },
            (err: unknown) => {
              log.error({ err }, 'error while stopping');
              process.exitCode = 1;
              resolve();
            },
          );
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      });
    });
}
