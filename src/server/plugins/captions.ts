/**
 * POST /v1/captions: one image, as multipart/form-data (file field `image`) or as the raw body with an image
 * content type, captioned through the micro-batcher and stored in the library as an entry of the caller's API
 * key (with `store=false`, nothing is kept). The multipart and raw-image body parsers are registered here, so
 * no other route accepts them.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import type { NewEntry } from '../../library/index.js';
import { toAltText } from '../../text/alt-text.js';
import { requestGeneration } from '../engine.js';
import { BINARY, documented } from '../openapi.js';
import { captionOptionsSchema, captionResponseSchema, errorResponse, parseOrThrow } from '../schemas.js';
import { libraryLinks } from './library.js';

export interface CaptionsPluginOptions {
  /** Per request, from the moment its body is read, ms. */
  timeoutMs: number;
  /** Largest upload (raw body or multipart file), bytes. */
  bodyLimit: number;
}

/** Content types taken as a raw image body (besides multipart/form-data). */
const RAW_IMAGE_TYPES = /^(?:image\/[\w.+-]+|application\/octet-stream)$/i;

export const captionsPlugin: FastifyPluginAsyncZod<CaptionsPluginOptions> = async (app, { timeoutMs, bodyLimit }) => {
  await app.register(multipart, {
    throwFileSizeLimit: true,
    limits: { fileSize: bodyLimit, files: 1, fields: 8, fieldSize: 1024, parts: 10 },
  });
  app.addContentTypeParser(RAW_IMAGE_TYPES, { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));

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
          400: errorResponse('A bad option (the message names the field), or a form without an `image` file'),
          413: errorResponse('The body is over the size limit'),
          415: errorResponse('Neither multipart/form-data nor an image content type'),
          422: errorResponse('Empty, not an image, an unsupported format, truncated, or too many pixels'),
          503: errorResponse('The queue is full or the server is stopping (OVERLOADED), or the model failed to load'),
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
    },
    async (request, reply) => {
      const started = performance.now();
      const remaining = () => Math.max(0, timeoutMs - (performance.now() - started));
      const { bytes, fields } = await readImageRequest(request);
      const options = { ...request.query, ...parseOrThrow(captionOptionsSchema, fields, 'form fields') };
      if (bytes.length === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, 'image: the upload is empty (0 bytes)');

      const engine = await app.engine.get(remaining());
      const { card } = engine;
      const generation = requestGeneration(options, card);
      const id = createHash('sha256').update(bytes).digest('hex');
      const done = await app.batcher.submit({ bytes, generation }, { timeoutMs: remaining() }).catch((err: unknown) => {
        if (err instanceof PixelInfoError && err.code === ErrorCodes.TIMEOUT) {
          throw new PixelInfoError(ErrorCodes.TIMEOUT, `the request did not finish within ${timeoutMs} ms (queue depth ${app.batcher.depth})`);
        }
        throw err;
      });
      app.metrics.queueWait.observe(done.queuedMs / 1000);
      const { image, captions, timings } = done.result;

      let stored = false;
      if (options.store !== false) {
        stored = await storeInLibrary(app, request, {
          id,
          bytes,
          ...image,
          captions: captions.map((c) => ({ text: c.text, score: c.score })),
          model: engine.modelId ?? card.name ?? '',
          owner: request.viewer.keyId,
        });
      }
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
        })),
        altText: toAltText(captions[0]?.text ?? ''),
        options: { beam: generation.beamSize, nbest: generation.nBest, maxLength: generation.maxLength, attention: Boolean(options.attention) },
        timings: { ...timings, queueMs: round1(done.queuedMs), requestMs: round1(performance.now() - started), batchSize: done.batchSize },
        library: stored ? libraryLinks(id) : null,
      };
    },
  );
};

/** Stores a captioned image; a library that fails is logged and the captions are still answered (`library: null`). */
async function storeInLibrary(app: FastifyInstance, request: FastifyRequest, entry: NewEntry): Promise<boolean> {
  try {
    await app.library.put(entry);
    return true;
  } catch (err) {
    request.log.warn({ err, id: entry.id }, 'could not store the image in the library');
    return false;
  }
}

/** The image bytes and any multipart fields of a captioning request. */
async function readImageRequest(request: FastifyRequest): Promise<{ bytes: Buffer; fields: Record<string, string> }> {
  const fields: Record<string, string> = {};
  if (request.isMultipart()) {
    let bytes: Buffer | undefined;
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname === 'image' && !bytes) bytes = await part.toBuffer();
        else part.file.resume(); // not ours: drain it so the rest of the form can be read
      } else {
        fields[part.fieldname] = String(part.value);
      }
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
