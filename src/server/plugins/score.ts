/**
 * POST /v1/score: BLEU-1..4 and CIDEr-D of one caption against reference captions (for the web app).
 *
 * A worst-case body (50 references of 2000 characters) takes ~100 ms of CPU: computed on a small pool of worker
 * threads (../worker-pool.ts), never on the event loop, so that scoring load cannot delay /healthz or uploads.
 * Requests beyond the pool's queue get 503 OVERLOADED; a computation past its time limit, 504 TIMEOUT.
 */
import { availableParallelism } from 'node:os';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { SentenceScores } from '../../metrics/sentence.js';
import type { ScoreInput } from '../score-worker.js';
import { WorkerPool } from '../worker-pool.js';
import { errorResponse, scoreBodySchema, scoreResponseSchema } from '../schemas.js';

export const SCORE_POOL = {
  /** Threads: one per spare core, at most two (the model already takes every core while it runs). */
  size: Math.max(1, Math.min(2, availableParallelism() - 1)),
  maxPending: 32,
  timeoutMs: 5000,
} as const;

export const scorePlugin: FastifyPluginAsyncZod = async (app) => {
  const pool = new WorkerPool<ScoreInput, SentenceScores>({ ...SCORE_POOL, entry: new URL('../score-worker' + extname(import.meta.url), import.meta.url), name: 'scoring' });
  app.addHook('onClose', () => pool.close());

  app.post(
    '/v1/score',
    {
      bodyLimit: 256 * 1024,
      schema: {
        tags: ['score'],
        summary: 'BLEU-1..4 and CIDEr-D of one caption against reference captions',
        description: 'Indicative sentence-level scores: CIDEr-D takes its document frequencies from these references alone.',
        body: scoreBodySchema,
        response: {
          200: scoreResponseSchema.describe('The scores'),
          400: errorResponse('A bad or malformed body (the message names the field)'),
          503: errorResponse('Too many scoring requests waiting (OVERLOADED)'),
          504: errorResponse('The scores took longer than the time limit (TIMEOUT)'),
        },
      },
    },
    async (request) => {
      const { references, candidate } = request.body;
      return { scores: await pool.run({ references, candidate }), references: references.length };
    },
  );
};

/** `.ts` when run from the sources, `.js` when built. */
function extname(url: string): string {
  return url.endsWith('.ts') ? '.ts' : '.js';
}
