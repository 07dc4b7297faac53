/** GET /healthz (liveness) and GET /readyz (readiness: the model is loaded), for orchestrators and load balancers. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { healthSchema, notReadySchema, readySchema } from '../schemas.js';

export const healthPlugin: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'Liveness: 200 while the process runs', response: { 200: healthSchema.describe('Alive') } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: 200 once the model is loaded',
        response: { 200: readySchema.describe('Ready'), 503: notReadySchema.describe('Still loading, or the model failed to load') },
      },
    },
    async (_request, reply) => {
      const state = app.engine.state;
      if (state.status === 'ready') return { status: 'ready' as const, model: state.engine.card.name ?? null, queueDepth: app.batcher.depth };
      reply.status(503);
      return state.status === 'failed' ? { status: 'failed' as const, error: state.error.toJSON() } : { status: 'loading' as const };
    },
  );
};
