/**
 * What `pixel-info serve --redis URL` adds to the HTTP server (its `queue` option): the batch-job routes
 * (src/server/plugins/jobs.ts, over the server's own library store) and, with `--remote-captioning`, the
 * RemoteCaptionEngine in place of an in-process captioner, so that POST /v1/captions is captioned by the
 * worker pool. The server opens the connections when it is built and closes them when it stops.
 */
import { readModelDir } from '../decoder/model-dir.js';
import type { CaptionEngine } from '../server/engine.js';
import { RemoteCaptionEngine } from './remote.js';
import type { S3Settings } from './s3.js';
import { resolveModelSpec } from '../pipeline/models.js';

/** The server's `queue` option. */
export interface ServerQueue {
  redisUrl: string;
  /** Set with remote captioning: loads the engine the server uses instead of its own captioner. */
  remoteEngine?: () => Promise<CaptionEngine>;
  /** Where s3:// job inputs are listed; default the AWS environment variables. */
  s3?: S3Settings;
  /** How often a job's event stream reads its progress, ms (default 500). */
  eventsIntervalMs?: number;
}

export interface ServerQueueOptions {
  redisUrl: string;
  remoteCaptioning?: boolean;
  /** The model the workers run: with remote captioning its card is read here (decoding defaults, GET /v1/model). */
  modelDir: string;
  /** Longest wait for a worker's reply to one image, ms. */
  timeoutMs?: number;
  s3?: S3Settings;
}

export function serverQueue(options: ServerQueueOptions): ServerQueue {
  const { redisUrl, modelDir, timeoutMs } = options;
  const remoteEngine = options.remoteCaptioning
    ? async () => RemoteCaptionEngine.connect({ redisUrl, card: (await readModelDir(resolveModelSpec(modelDir)[0])).card, timeoutMs })
    : undefined;
  return { redisUrl, remoteEngine, s3: options.s3 };
}
