/** Prometheus metrics of one server, in its own registry (several servers in one process do not collide). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  requestDuration: Histogram<'method' | 'route' | 'status'>;
  batchSize: Histogram<string>;
  batchDuration: Histogram<string>;
  queueDepth: Gauge<string>;
  queueWait: Histogram<string>;
  libraryImages: Gauge<string>;
  /** Requests whose client closed the connection before the answer, by route and how far they had got. */
  abandoned: Counter<'route' | 'stage'>;
  /** Connections closed because the client sent its request too slowly (`headers` or `body`). */
  slowClients: Counter<'phase'>;
}

export interface MetricsOptions {
  maxBatch: number;
  /** Images in the library, read at each scrape (the library may be a database shared by several servers). */
  libraryCount?: () => Promise<number>;
}

export function createMetrics(options: MetricsOptions): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pixel_info_' });
  const sizeBuckets = Array.from(new Set([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, options.maxBatch])).sort((a, b) => a - b);
  const libraryCount = options.libraryCount;
  return {
    registry,
    requests: new Counter({
      name: 'pixel_info_http_requests_total',
      help: 'HTTP requests by method, route (pattern) and status code',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'pixel_info_http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'pixel_info_encoder_batch_size',
      help: 'Images per encoder + decoder batch',
      buckets: sizeBuckets,
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'pixel_info_batch_duration_seconds',
      help: 'Time to caption one batch (decode, encoder, beam search)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'pixel_info_queue_depth',
      help: 'Images waiting for a batch',
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'pixel_info_queue_wait_seconds',
      help: 'Time an image waited in the queue before its batch started',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    abandoned: new Counter({
      name: 'pixel_info_requests_abandoned_total',
      help: 'Requests whose client closed the connection before the answer, by route and stage (upload, queued, captioning, storing, handling)',
      labelNames: ['route', 'stage'],
      registers: [registry],
    }),
    slowClients: new Counter({
      name: 'pixel_info_slow_clients_total',
      help: 'Connections closed because the client sent its request too slowly, by phase (headers, body)',
      labelNames: ['phase'],
      registers: [registry],
    }),
    libraryImages: new Gauge({
      name: 'pixel_info_library_images',
      help: 'Images stored in the library',
      registers: [registry],
      async collect() {
        if (!libraryCount) return;
        // A database that does not answer must not fail the whole scrape: the gauge keeps its last value.
        const count = await libraryCount().catch(() => undefined);
        if (count !== undefined) this.set(count);
      },
    }),
  };
}
