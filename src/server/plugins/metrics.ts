/** GET /metrics: the server's Prometheus registry (request, batch, queue and library metrics, process metrics). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { documented } from '../openapi.js';

export const metricsPlugin: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics',
        description:
          'pixel_info_http_requests_total, pixel_info_http_request_duration_seconds (by method, route, status), pixel_info_encoder_batch_size, ' +
          'pixel_info_batch_duration_seconds, pixel_info_queue_depth, pixel_info_queue_wait_seconds, pixel_info_library_images, and process metrics.',
      },
      config: documented({ responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } }),
    },
    async (_request, reply) => {
      reply.type(app.metrics.registry.contentType);
      return app.metrics.registry.metrics();
    },
  );
};
