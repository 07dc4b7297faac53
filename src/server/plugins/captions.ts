/**
 * POST /v1/captions: one image, as multipart/form-data (file field `image`) or as the raw body with an image
 * content type, captioned through the micro-batcher and stored in the library as an entry of the caller's API
 * key (with `store=false`, nothing is kept). The multipart and raw-image body parsers are registered here, so
 * no other route accepts them.
 *
 * Before the body is read the request is admitted or refused (../uploads.ts: size, capacity, upload memory;
 * ../quota.ts: the library quota). A request whose client hangs up leaves the queue at once and nothing of it is
 * stored (counted and logged by the abandonment hook, ../hooks.ts). The stored original loses its metadata
 * unless `keepMetadata` (src/image/strip.ts). With an image–text matcher every caption has a `confidence`, and
 * the image's embedding is stored with it (library search by meaning).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import type { NewEntry } from '../../library/index.js';
import { stripMetadata } from '../../image/index.js';
import { toAltText } from '../../text/alt-text.js';
import { concurrencyLimit } from '../concurrency.js';
import { requestGeneration } from '../engine.js';
import { rerankByConfidence } from '../../pipeline/core.js';
import { BINARY, documented } from '../openapi.js';
import type { LibraryQuota } from '../quota.js';
import { captionOptionsSchema, captionResponseSchema, errorResponse, parseOrThrow } from '../schemas.js';
import { declaredLength, readBounded, readImagePart, type UploadAdmission } from '../uploads.js';
import { libraryLinks } from './library.js';

export interface CaptionsPluginOptions {
  /** Per request, from the moment its body is read, ms. */
  timeoutMs: number;
  /** Largest upload (raw body or multipart file), bytes. */
  bodyLimit: number;
  /** Decides, before the body is read, whether the request may upload at all. */
  admission: UploadAdmission;
  quota: LibraryQuota;
}

/** Library writes at once (each strips metadata and makes a thumbnail with sharp): bounded, like the batches. */
const STORE_CONCURRENCY = 2;

/** Content types taken as a raw image body (besides multipart/form-data). */
const RAW_IMAGE_TYPES = /^(?:image\/[\w.+-]+|application\/octet-stream)$/i;

export const captionsPlugin: FastifyPluginAsyncZod<CaptionsPluginOptions> = async (app, { timeoutMs, bodyLimit, admission, quota }) => {
  await app.register(multipart, {
    throwFileSizeLimit: true,
    limits: { fileSize: bodyLimit, files: 1, fields: 8, fieldSize: 1024, parts: 10 },
  });
  app.addContentTypeParser(RAW_IMAGE_TYPES, { bodyLimit }, async (request: FastifyRequest, payload: Readable) => readBounded(payload, bodyLimit, declaredLength(request.raw)));
  const storing = concurrencyLimit(STORE_CONCURRENCY);

  app.post(
    '/v1/captions',
    {
      schema: {
        tags: ['captions'],
        summary: 'Caption one image',
        description:
          'Send the image as multipart/form-data (file field `image`; the options may also be form fields, which win over the query) or as the ' +
          'raw body with an image/* content type. Concurrent requests are micro-batched. The captioned image is stored in the library under ' +
          "its SHA-256 as an entry of the caller's API key, unless store=false: then nothing is kept.",
        querystring: captionOptionsSchema,
        response: {
          200: captionResponseSchema.describe('The captions'),
          400: errorResponse(
            'A bad option (the message names the field), an option given twice, a form without an `image` file or with more than one file, or a malformed multipart body',
          ),
          403: errorResponse('Sent by a web page of another origin (ORIGIN_NOT_ALLOWED)'),
          413: errorResponse('The body is over the size limit (PAYLOAD_TOO_LARGE), or storing it would pass a library quota (QUOTA_EXCEEDED)'),
          415: errorResponse('Neither multipart/form-data nor an image content type'),
          422: errorResponse('Empty, not an image, an unsupported format, truncated, or too many pixels'),
          503: errorResponse('No room for another upload, the queue is full or the server is stopping (OVERLOADED), or the model failed to load'),
          504: errorResponse('Not done within the per-request timeout'),
        },
      },
      config: documented(({ querystring }) => ({
        body: {
          'multipart/form-data': {
            schema: { type: 'object', required: ['image'], properties: { image: { ...BINARY, description: 'The image file' }, ...querystring?.properties } },
          },
          'image/*': { schema: BINARY },
          'application/octet-stream': { schema: BINARY },
        },
        headers: { 503: { 'Retry-After': { type: 'integer', description: 'Seconds to wait before trying again' } } },
      })),
      // Before the body is read: refused requests never cost their upload.
      onRequest: async (request, reply) => {
        admission.admit(request, reply);
        if (quota.enabled && !storeIsOff(request.query)) {
          const declared = declaredLength(request.raw) ?? bodyLimit;
          await quota.check(request.viewer, Math.min(declared, bodyLimit)).catch((err: unknown) => {
            reply.header('connection', 'close');
            throw err;
          });
        }
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const remaining = () => Math.max(0, timeoutMs - (performance.now() - started));
      const clientGone = request.clientGone;
      const { bytes, fields } = await readImageRequest(request, bodyLimit);
      const options = { ...request.query, ...parseOrThrow(captionOptionsSchema, fields, 'form fields') };
      if (bytes.length === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, 'image: the upload is empty (0 bytes)');

      const engine = await app.engine.get(remaining());
      const { card } = engine;
      const generation = requestGeneration(options, card);
      if (options.rerank === 'match' && !engine.matching) {
        throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, 'rerank=match needs the image–text matcher, and this server has none', { subject: 'rerank' });
      }
      const id = createHash('sha256').update(bytes).digest('hex');
      request.phase = 'queued';
      const done = await app.batcher
        .submit({ bytes, generation }, { timeoutMs: remaining(), signal: clientGone, onStart: () => (request.phase = 'captioning') })
        .catch((err: unknown) => {
          if (err instanceof PixelInfoError && err.code === ErrorCodes.TIMEOUT) {
            throw new PixelInfoError(ErrorCodes.TIMEOUT, `the request did not finish within ${timeoutMs} ms (queue depth ${app.batcher.depth})`);
          }
          throw err;
        });
      app.metrics.queueWait.observe(done.queuedMs / 1000);
      const { image, timings, embedding } = done.result;
      // batches are shared across requests, so the order is this request's own business
      const captions = options.rerank === 'match' ? rerankByConfidence([...done.result.captions]) : done.result.captions;
      const matching = engine.matching;

      let stored = false;
      if (options.store !== false && !clientGone.aborted) {
        request.phase = 'storing';
        stored = await storing(async () => {
          // Checked again now that the size is known (the check before the upload used its Content-Length); an
          // image the caller has already stored costs nothing more.
          const newForKey = quota.enabled && !(await app.library.get(id, request.viewer));
          if (newForKey) await quota.check(request.viewer, bytes.length);
          if (clientGone.aborted) return false;
          const entry = {
            id,
            bytes,
            ...image,
            captions: captions.map((c) => ({ text: c.text, score: c.score, ...(c.confidence === undefined ? {} : { confidence: c.confidence }) })),
            tags: (done.result.tags ?? []).map((t) => ({ word: t.word, probability: t.probability })),
            model: engine.modelId ?? card.name ?? '',
            owner: request.viewer.keyId,
            embedding: matching && embedding ? { model: matching.id, vector: embedding } : undefined,
          };
          const put = await storeInLibrary(app, request, entry, Boolean(options.keepMetadata));
          if (put) quota.record(request.viewer, put.bytes, { created: put.created, newForKey });
          return put !== undefined;
        });
      }
      request.phase = 'handling';
      reply.header('cache-control', 'no-store');
      return {
        id,
        model: card.name ?? null,
        image,
        captions: captions.map((c) => ({
          text: c.text,
          tokens: c.tokens,
          score: c.score,
          logProb: c.logProb,
          ...(options.attention && c.attention ? { attention: c.attention.map(toGrid) } : {}),
          ...(c.confidence === undefined ? {} : { confidence: c.confidence }),
        })),
        tags: done.result.tags ?? [],
        altText: toAltText(captions[0]?.text ?? ''),
        options: { beam: generation.beamSize, nbest: generation.nBest, maxLength: generation.maxLength, attention: Boolean(options.attention), rerank: options.rerank ?? 'score' },
        timings: { ...timings, queueMs: round1(done.queuedMs), requestMs: round1(performance.now() - started), batchSize: done.batchSize },
        library: stored ? libraryLinks(id) : null,
        matcher: matching?.name ?? null,
      };
    },
  );
};

/**
 * Stores a captioned image, without its metadata unless `keepMetadata` (the id stays the SHA-256 of the upload).
 * A library that fails is logged and the captions are still answered (`library: null`).
 */
async function storeInLibrary(
  app: FastifyInstance,
  request: FastifyRequest,
  entry: NewEntry,
  keepMetadata: boolean,
): Promise<{ created: boolean; bytes: number } | undefined> {
  try {
    // The image decoded at this size for captioning: the same bound holds for re-encoding it.
    const kept = keepMetadata ? entry.bytes : (await stripMetadata(entry.bytes, Math.max(1, entry.width * entry.height))).bytes;
    const { created } = await app.library.put({ ...entry, bytes: kept });
    return { created, bytes: kept.length };
  } catch (err) {
    request.log.warn({ err, id: entry.id }, 'could not store the image in the library');
    return undefined;
  }
}

/** Whether the query says store=false (read before validation, in the admission hook: then no quota applies). */
function storeIsOff(query: unknown): boolean {
  const parsed = captionOptionsSchema.safeParse(query ?? {});
  return parsed.success && parsed.data.store === false;
}

/**
 * The image bytes and any multipart fields of a captioning request. A form must hold exactly one file (field
 * `image`) and each option at most once; a body that is not well-formed multipart is INVALID_ARGUMENT.
 */
async function readImageRequest(request: FastifyRequest, bodyLimit: number): Promise<{ bytes: Buffer; fields: Record<string, string> }> {
  const fields: Record<string, string> = {};
  if (request.isMultipart()) {
    let bytes: Buffer | undefined;
    try {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          bytes = await readImagePart(request, part, bodyLimit);
        } else {
          if (Object.hasOwn(fields, part.fieldname)) {
            throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `form field "${part.fieldname.slice(0, 40)}" is given twice; give each option once`, { subject: part.fieldname });
          }
          fields[part.fieldname] = String(part.value);
        }
      }
    } catch (err) {
      throw malformedForm(err);
    }
    if (!bytes) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'image: the form has no file field named "image"', { subject: 'image' });
    return { bytes, fields };
  }
  const body = request.body;
  if (Buffer.isBuffer(body)) return { bytes: body, fields };
  if (body === undefined || body === null || body === '') {
    throw new PixelInfoError(ErrorCodes.FILE_EMPTY, 'image: the request has no body; send an image as multipart/form-data (field "image") or as the body with an image/* content type');
  }
  throw new PixelInfoError(
    ErrorCodes.INVALID_ARGUMENT,
    `content-type ${request.headers['content-type'] ?? '(none)'} is not accepted here; send multipart/form-data with a file field "image", or the image bytes with an image/* content type`,
  );
}

/**
 * What reading a multipart body can fail with, as a client error: our own checks and fastify's limits pass
 * through (a second file is 400, not 413); anything the multipart parser says (no boundary, cut before its
 * closing boundary, a malformed part header) is 400 INVALID_ARGUMENT naming the problem.
 */
function malformedForm(err: unknown): unknown {
  if (err instanceof PixelInfoError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e?.code === 'FST_FILES_LIMIT') {
    return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'the form holds more than one file; send one image, in the file field "image"', { subject: 'image' });
  }
  if (e?.code === 'FST_PARTS_LIMIT' || e?.code === 'FST_FIELDS_LIMIT') {
    return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'the form has too many fields; send the image and at most the documented options', { subject: 'form' });
  }
  if (typeof e?.statusCode === 'number' && e.statusCode < 500) return err;
  const what = typeof e?.message === 'string' ? e.message.replace(/^Multipart:\s*/i, '').slice(0, 120) : 'unreadable';
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `malformed multipart/form-data body (${what}); send a form with a file field "image"`, { subject: 'form', cause: err });
}

/** 49 weights (row-major 7x7) → 7 rows of 7, rounded to 5 decimals (plenty for a heat-map, a third of the JSON). */
function toGrid(weights: number[]): number[][] {
  const side = Math.round(Math.sqrt(weights.length));
  const rows: number[][] = [];
  for (let r = 0; r < side; r++) rows.push(weights.slice(r * side, (r + 1) * side).map((w) => Math.round(w * 1e5) / 1e5));
  return rows;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
