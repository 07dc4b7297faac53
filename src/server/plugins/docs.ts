/**
 * GET /openapi.json: the OpenAPI document @fastify/swagger generates from the route schemas (see
 * src/server/openapi.ts; @fastify/swagger itself is registered on the root instance, before the routes, so that
 * it sees them all).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { openApiDocumentSchema } from '../schemas.js';

export const docsPlugin: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/openapi.json',
    { schema: { tags: ['docs'], summary: 'This document', response: { 200: openApiDocumentSchema.describe('OpenAPI 3.0') } } },
    async () => app.swagger() as z.input<typeof openApiDocumentSchema>,
  );
};
