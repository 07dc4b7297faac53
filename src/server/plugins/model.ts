/** GET /v1/model: the model card (architecture, training data, metrics, version), once the model is loaded. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { modelCardSchema } from '../../decoder/model-card.js';
import { errorResponse } from '../schemas.js';

export interface ModelPluginOptions {
  /** How long a request waits for the model to finish loading, ms. */
  timeoutMs: number;
}

export const modelPlugin: FastifyPluginAsyncZod<ModelPluginOptions> = async (app, { timeoutMs }) => {
  app.get(
    '/v1/model',
    {
      schema: {
        tags: ['model'],
        summary: 'The model card (architecture, training data, metrics, version)',
        response: {
          200: modelCardSchema.describe('The model card'),
          503: errorResponse('The model failed to load'),
          504: errorResponse('The model did not finish loading in time'),
        },
      },
    },
    async () => (await app.engine.get(timeoutMs)).card,
  );
};
