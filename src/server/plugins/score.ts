/** POST /v1/score: BLEU-1..4 and CIDEr-D of one caption against reference captions (for the web app). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { sentenceScores } from '../../metrics/sentence.js';
import { errorResponse, scoreBodySchema, scoreResponseSchema } from '../schemas.js';

export const scorePlugin: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/score',
    {
      bodyLimit: 256 * 1024,
      schema: {
        tags: ['score'],
        summary: 'BLEU-1..4 and CIDEr-D of one caption against reference captions',
        description: 'Indicative sentence-level scores: CIDEr-D takes its document frequencies from these references alone.',
        body: scoreBodySchema,
        response: { 200: scoreResponseSchema.describe('The scores'), 400: errorResponse('A bad or malformed body (the message names the field)') },
      },
    },
    async (request) => {
      const { references, candidate } = request.body;
      return { scores: sentenceScores(references, candidate), references: references.length };
    },
  );
};
