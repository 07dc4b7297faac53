/**
 * Batch jobs over HTTP (registered when the server is given a Redis URL: `serve --redis URL`):
 *
 *   POST   /v1/jobs              { inputs: [...], options } → 202 and the job's status
 *   GET    /v1/jobs/:id          status: { id, state, total, done, failed, rate, eta }
 *   GET    /v1/jobs/:id/results  one row per input (format=json, paged; jsonl or csv, streamed)
 *   GET    /v1/jobs/:id/events   server-sent events: `progress` whenever it changes, `end` when the job ends
 *   DELETE /v1/jobs/:id          cancel
 *
 * Progress is read from the library store, so every replica answers for every job. A caller sees the jobs of
 * its own API key (an admin key, or no keys at all, sees every job). Inputs are paths the workers can read or
 * s3:// objects and prefixes; local paths and folders are taken only from admin callers, since the workers
 * would read any file they can reach on the caller's behalf.
 */
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { EVERYONE, type Viewer } from '../../library/types.js';
import { csvRow } from '../../pipeline/format.js';
import { jobIdSchema, type JobGenerationOptions } from '../../queue/definitions.js';
import { JobQueue } from '../../queue/job-queue.js';
import type { ServerQueue } from '../../queue/server-queue.js';
import { isS3Url, s3SettingsFrom, type S3Settings } from '../../queue/s3.js';
import { expandSources } from '../../queue/sources.js';
import { RESULT_CSV_COLUMNS, isFinished, jobResultSchema, jobResults, jobResultsPage, jobStatusSchema, resultCsvFields, type JobStatus } from '../../queue/status.js';
import { documented } from '../openapi.js';
import { LIMITS, errorResponse } from '../schemas.js';

/** The server's `queue` option (src/queue/server-queue.ts), plus how long an events stream may stay open. */
export interface JobsPluginOptions extends ServerQueue {
  /** An events stream ends after this long (the client's EventSource reconnects), ms. */
  eventsMaxMs?: number;
}

/** Arguments of one POST (each may expand to many images). */
const MAX_INPUTS = 10_000;
/** Images of one job after folders and prefixes are expanded. */
const MAX_IMAGES = 1_000_000;
const RESULTS_PAGE = { default: 1000, max: 10_000 };
const HEARTBEAT_MS = 15_000;

const jobOptionsSchema = z
  .object({
    beam: z.number().int().min(LIMITS.beam.min).max(LIMITS.beam.max).describe('Beam size; 1 = greedy search'),
    nbest: z.number().int().min(LIMITS.nbest.min).max(LIMITS.nbest.max).describe('Captions kept per image, at most beam'),
    maxLength: z.number().int().min(LIMITS.maxLength.min).max(LIMITS.maxLength.max).describe('Most words per caption'),
    lengthPenalty: z.number().min(0).max(10).describe('Rank by logProb / (words + 1)^lengthPenalty'),
  })
  .partial()
  .strict()
  .superRefine((o, ctx) => {
    if (o.beam !== undefined && o.nbest !== undefined && o.nbest > o.beam) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['nbest'], message: `must be at most beam (${o.beam}), got ${o.nbest}` });
    }
  })
  .describe("Decoding options for every image; what is left out comes from the model card. Images the model already captioned with its defaults are not captioned again.");

const submitBodySchema = z
  .object({
    inputs: z
      .array(z.string().min(1).max(4096), { required_error: 'is required (an array of s3:// URLs or paths the workers can read)' })
      .min(1, 'needs at least one input')
      .max(MAX_INPUTS, `at most ${MAX_INPUTS} inputs per request`)
      .describe('s3://bucket/key, s3://bucket/prefix (every image under it), or — for admin callers — files, folders and glob patterns the workers can read'),
    options: jobOptionsSchema.optional(),
  })
  .strict();

const jobLinksSchema = z.object({ status: z.string(), results: z.string(), events: z.string() });
const jobResponseSchema = jobStatusSchema.extend({ links: jobLinksSchema.describe('Where to follow the job') });
const jobParamsSchema = z.object({ id: jobIdSchema });
const resultsQuerySchema = z
  .object({
    format: z.enum(['json', 'jsonl', 'csv']).optional().describe('json (default, one page), jsonl or csv (every input, streamed)'),
    offset: z.coerce.number().int().min(0).optional().describe('json: first input of the page (default 0)'),
    limit: z.coerce.number().int().min(1).max(RESULTS_PAGE.max).optional().describe(`json: inputs per page (default ${RESULTS_PAGE.default})`),
  })
  .strict();
const resultsPageSchema = z.object({
  id: z.string(),
  offset: z.number().int(),
  count: z.number().int().describe('Rows in this page'),
  total: z.number().int().describe('Inputs of the job'),
  items: z.array(jobResultSchema),
});

export const jobsPlugin: FastifyPluginAsyncZod<JobsPluginOptions> = async (app, options) => {
  // The routes' queue, over the server's library store; its Redis connection closes with the server.
  const jobs = await JobQueue.open(options.redisUrl, app.library);
  app.addHook('onClose', () => jobs.close());
  const s3 = options.s3 ?? s3SettingsFrom();
  const intervalMs = options.eventsIntervalMs ?? 500;
  const maxStreamMs = options.eventsMaxMs ?? 3_600_000;
  const streams = new Set<FastifyReply>();
  const notFound = errorResponse('No job with this id (for this caller)');
  const badId = errorResponse('The id is not a job id');
  const withLinks = (status: JobStatus) => ({ ...status, links: jobLinks(status.id) });
  const requireStatus = async (id: string, viewer: Viewer) => {
    const status = await jobs.status(id, viewer);
    if (!status) throw noSuchJob(id);
    return status;
  };

  // Open event streams end when the server stops, so that it can.
  app.addHook('preClose', async () => {
    for (const reply of streams) reply.raw.end();
    streams.clear();
  });

  app.post(
    '/v1/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Submit a batch captioning job',
        description: 'Records the job and queues one item per image for the worker pool. Follow it with GET /v1/jobs/:id, its events or its results.',
        body: submitBodySchema,
        response: {
          202: jobResponseSchema.describe('The job, as recorded'),
          400: errorResponse('A bad body (the message names the field), or no images found'),
          403: errorResponse('Local paths from a caller without an admin key (FORBIDDEN)'),
          404: errorResponse('An S3 bucket that does not exist'),
          503: errorResponse('The job queue is unreachable (OVERLOADED); retry later'),
        },
      },
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const { inputs, options = {} } = request.body;
      const local = inputs.filter((input) => !isS3Url(input));
      if (local.length > 0 && !viewer.admin) {
        throw new PixelInfoError(ErrorCodes.FORBIDDEN, `inputs: local paths (${local[0]}) need an admin key; submit s3:// inputs`, { subject: 'inputs' });
      }
      const { sources, empty } = await expandSources(inputs, s3);
      if (sources.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `inputs: no images found in ${empty.join(', ')}`, { subject: 'inputs' });
      if (sources.length > MAX_IMAGES) {
        throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `inputs: ${sources.length} images is more than ${MAX_IMAGES} per job; split the job`, { subject: 'inputs' });
      }
      const job = await jobs.submit(sources, { owner: viewer.keyId, options: toJobOptions(options) });
      const status = await requireStatus(job.id, viewer);
      return reply.status(202).header('location', `/v1/jobs/${job.id}`).send(withLinks(status));
    },
  );

  app.get(
    '/v1/jobs/:id',
    {
      schema: { tags: ['jobs'], summary: "A job's progress", params: jobParamsSchema, response: { 200: jobResponseSchema.describe('The job'), 400: badId, 404: notFound } },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return withLinks(await requireStatus(request.params.id, viewerOf(request)));
    },
  );

  app.get(
    '/v1/jobs/:id/results',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's captions and errors, one row per input in input order",
        params: jobParamsSchema,
        querystring: resultsQuerySchema,
        response: { 200: resultsPageSchema.describe('format=json: one page of rows'), 400: badId, 404: notFound },
      },
      config: documented((converted) => ({
        responses: {
          200: {
            description: 'format=json: one page of rows; jsonl: one row per line; csv: a header, then one row per line',
            content: {
              'application/json': { schema: converted.response?.['200'] ?? {} },
              'application/x-ndjson': { schema: { type: 'string' } },
              'text/csv': { schema: { type: 'string' } },
            },
          },
        },
      })),
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const { id } = request.params;
      const status = await requireStatus(id, viewer);
      const { format = 'json', offset = 0, limit = RESULTS_PAGE.default } = request.query;
      if (format === 'json') {
        const items = await jobResultsPage(jobs.store, id, viewer, { offset, limit });
        return { id, offset, count: items.length, total: status.total, items };
      }
      const lines = async function* () {
        if (format === 'csv') yield `${csvRow([...RESULT_CSV_COLUMNS])}\n`;
        for await (const row of jobResults(jobs.store, id, viewer)) yield format === 'csv' ? `${csvRow(resultCsvFields(row))}\n` : `${JSON.stringify(row)}\n`;
      };
      // A stream skips the response schema (it is the JSON page's); fastify pipes it as it is.
      const untyped: FastifyReply = reply;
      return untyped.type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8').send(Readable.from(lines()));
    },
  );

  app.get(
    '/v1/jobs/:id/events',
    {
      schema: { tags: ['jobs'], summary: "A job's progress as server-sent events", params: jobParamsSchema, response: { 400: badId, 404: notFound } },
      config: documented({
        responses: {
          200: {
            description:
              '`event: progress` with the job status (as GET /v1/jobs/:id) at once and whenever it changes; `event: end` with the final status, then the stream closes',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
        },
      }),
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const { id } = request.params;
      let status = await requireStatus(id, viewer); // 404 as JSON, before the stream starts
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      streams.add(reply);
      let open = true;
      raw.on('close', () => {
        open = false;
        streams.delete(reply);
      });
      const send = (event: string, data: JobStatus) => raw.write(`event: ${event}\ndata: ${JSON.stringify(withLinks(data))}\n\n`);
      const started = Date.now();
      let last = '';
      let lastWrite = Date.now();
      try {
        while (open && Date.now() - started < maxStreamMs) {
          const key = JSON.stringify([status.state, status.done, status.failed]);
          if (isFinished(status.state)) {
            send('end', status);
            break;
          }
          if (key !== last) {
            send('progress', status);
            last = key;
            lastWrite = Date.now();
          } else if (Date.now() - lastWrite >= HEARTBEAT_MS) {
            raw.write(': keep-alive\n\n');
            lastWrite = Date.now();
          }
          await new Promise((resolve) => setTimeout(resolve, intervalMs));
          if (!open) break;
          status = (await jobs.status(id, viewer)) ?? status;
        }
      } catch (err) {
        request.log.warn({ err, id }, 'job events stream stopped');
        if (open) raw.write(`event: error\ndata: ${JSON.stringify({ error: { code: ErrorCodes.OVERLOADED, message: 'progress is unavailable; reconnect later' } })}\n\n`);
      } finally {
        streams.delete(reply);
        if (open) raw.end();
      }
    },
  );

  app.delete(
    '/v1/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job',
        description: 'Inputs not yet taken by a worker are dropped; those being captioned finish. A job that already ended is left as it is.',
        params: jobParamsSchema,
        response: { 200: jobResponseSchema.describe('The job after cancelling'), 400: badId, 404: notFound, 503: errorResponse('The job queue is unreachable; retry later') },
      },
    },
    async (request) => {
      const status = await jobs.cancel(request.params.id, viewerOf(request));
      if (!status) throw noSuchJob(request.params.id);
      return withLinks(status);
    },
  );
};

/** The caller: set by the API-key hook when keys are in use; without keys everyone sees everything. */
function viewerOf(request: object): Viewer {
  return (request as { viewer?: Viewer }).viewer ?? EVERYONE;
}

export function jobLinks(id: string): { status: string; results: string; events: string } {
  return { status: `/v1/jobs/${id}`, results: `/v1/jobs/${id}/results`, events: `/v1/jobs/${id}/events` };
}

function toJobOptions(o: z.infer<typeof jobOptionsSchema>): JobGenerationOptions {
  const options: JobGenerationOptions = {};
  if (o.beam !== undefined) options.beamSize = o.beam;
  if (o.nbest !== undefined) options.nBest = o.nbest;
  if (o.maxLength !== undefined) options.maxLength = o.maxLength;
  if (o.lengthPenalty !== undefined) options.lengthPenalty = o.lengthPenalty;
  return options;
}

function noSuchJob(id: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `no job ${id}`, { subject: id });
}
