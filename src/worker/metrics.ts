/**
 * A worker's Prometheus metrics, in its own registry, and the small HTTP endpoint that serves them
 * (`pixel-info worker --metrics-port P` → GET /metrics).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How an input ended: captioned now, already captioned by this model (not recomputed), or a per-image error. */
export type ItemOutcome = 'captioned' | 'reused' | 'failed';

export interface WorkerMetrics {
  registry: Registry;
  items: Counter<'outcome'>;
  retries: Counter<string>;
  interactive: Counter<'outcome'>;
  batchSize: Histogram<string>;
  batchDuration: Histogram<string>;
  queueWait: Histogram<string>;
  held: Gauge<string>;
}

export function createWorkerMetrics(maxBatch: number): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pixel_info_worker_' });
  const sizeBuckets = Array.from(new Set([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, maxBatch])).sort((a, b) => a - b);
  return {
    registry,
    items: new Counter({
      name: 'pixel_info_worker_items_total',
      help: 'Batch-job inputs finished, by outcome: captioned, reused (already captioned by this model) or failed (a per-image error)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'pixel_info_worker_item_retries_total',
      help: 'Batch-job inputs handed back to the queue after a transient error (store, S3 or Redis unreachable)',
      registers: [registry],
    }),
    interactive: new Counter({
      name: 'pixel_info_worker_interactive_total',
      help: 'Interactive captioning requests answered, by outcome (captioned or failed)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'pixel_info_worker_batch_size',
      help: 'Images per encoder + decoder batch',
      buckets: sizeBuckets,
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'pixel_info_worker_batch_duration_seconds',
      help: 'Time to caption one batch (decode, encoder, beam search)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'pixel_info_worker_queue_wait_seconds',
      help: 'Time from an input being queued to a worker taking it',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600],
      registers: [registry],
    }),
    held: new Gauge({
      name: 'pixel_info_worker_jobs_held',
      help: 'Batch-job inputs this worker holds (being read, captioned or stored)',
      registers: [registry],
    }),
  };
}

/** Serves GET /metrics on `host`:`port` (port 0: a free one). */
export async function serveMetrics(registry: Registry, port: number, host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url?.split('?')[0] === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as { port: number }).port };
}
