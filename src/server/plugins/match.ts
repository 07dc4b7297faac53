/**
 * POST /v1/match: how well each of some sentences describes one image, by the image–text matcher (src/match):
 * per sentence a calibrated probability `score` (0..1), its `logit` and the embeddings' `cosine`, in the order
 * given. The image comes as a multipart form (file field `image`, sentences in `text` fields, one per sentence,
 * or one `texts` field holding a JSON array), or as JSON: `{"image": "<base64>", "texts": [...]}` or
 * `{"imageId": "<library id>", "texts": [...]}` for an image of the caller's library. Nothing is stored.
 *
 * It runs the encoder and the matcher, so it is admitted as a captioning upload is (../uploads.ts: size,
 * capacity, upload memory) and counts against the captioning rate limit (../rate-limit.ts). A server without a
 * matcher answers 503 MODEL_NOT_FOUND (before the body is read when the model has loaded).
 */
import type { FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { concurrencyLimit } from '../concurrency.js';
import { matcherOf, noMatcherError, routeMatcher } from '../engine.js';
import { BINARY, documented } from '../openapi.js';
import { errorResponse, LIMITS, matchJsonBodySchema, matchResponseSchema, matchTextsSchema, parseOrThrow } from '../schemas.js';
import { readImagePart, type UploadAdmission } from '../uploads.js';

export interface MatchPluginOptions {
  /** Per request, from the moment its body is read, ms. */
  timeoutMs: number;
  /** Largest upload (the multipart file, or the whole JSON body), bytes. */
  bodyLimit: number;
  admission: UploadAdmission;
}

/** Match requests computed at once (each one encoder and two matcher runs; more would only queue in onnxruntime). */
const MATCH_CONCURRENCY = 2;

export const matchPlugin: FastifyPluginAsyncZod<MatchPluginOptions> = async (app, { timeoutMs, bodyLimit, admission }) => {
  await app.register(multipart, {
    throwFileSizeLimit: true,
    // Sentences as `text` fields (one each) or one `texts` field (a JSON array of them).
    limits: { fileSize: bodyLimit, files: 1, fields: LIMITS.matchTexts + 1, fieldSize: LIMITS.matchTexts * LIMITS.sentenceChars * 4, parts: LIMITS.matchTexts + 2 },
  });
  const computing = concurrencyLimit(MATCH_CONCURRENCY);

  app.post(
    '/v1/match',
    {
      bodyLimit,
      schema: {
        tags: ['match'],
        summary: 'Score sentences against an image (image–text matcher)',
        description:
          'For each sentence, how well it describes the image: `score` is the matcher\'s calibrated probability (0..1) that people wrote ' +
          'the sentence for this image (see its model card, `calibration.meaning`), `logit` = a·cosine + b, `cosine` of the two ' +
          'embeddings. Results are in the order of the texts. Send a multipart form (file field `image`; the sentences as `text` fields, ' +
          'one per sentence, or one `texts` field holding a JSON array) or JSON: `{"image": "<base64>", "texts": [...]}`, or ' +
          `\`{"imageId": "<id>", "texts": [...]}\` for an image of your library. 1 to ${LIMITS.matchTexts} sentences of at most ` +
          `${LIMITS.sentenceChars} characters. Nothing is stored.`,
        response: {
          200: matchResponseSchema.describe('One result per text, in order'),
          400: errorResponse('No image or no texts, a bad field (the message names it), or a malformed body'),
          403: errorResponse('Sent by a web page of another origin (ORIGIN_NOT_ALLOWED)'),
          404: errorResponse('imageId: no such image in your library'),
          413: errorResponse('The body is over the size limit (PAYLOAD_TOO_LARGE)'),
          415: errorResponse('Neither multipart/form-data nor application/json'),
          422: errorResponse('Empty, not an image, an unsupported format, truncated, or too many pixels'),
          503: errorResponse('The server has no image–text matcher (MODEL_NOT_FOUND), no room for another upload (OVERLOADED), or the model failed to load'),
          504: errorResponse('Not done within the per-request timeout'),
        },
      },
      config: documented({
        body: {
          'multipart/form-data': {
            schema: {
              type: 'object',
              required: ['image'],
              properties: {
                image: { ...BINARY, description: 'The image file' },
                text: { type: 'array', items: { type: 'string' }, description: 'A sentence; repeat the field for each' },
                texts: { type: 'string', description: 'Instead of `text` fields: a JSON array of sentences' },
              },
            },
          },
          'application/json': {
            schema: {
              type: 'object',
              required: ['texts'],
              properties: {
                image: { type: 'string', format: 'byte', description: 'The image bytes, base64' },
                imageId: { type: 'string', description: 'Instead of image: the id (SHA-256) of an image of your library' },
                texts: { type: 'array', items: { type: 'string', maxLength: LIMITS.sentenceChars }, minItems: 1, maxItems: LIMITS.matchTexts },
              },
            },
          },
        },
        headers: { 503: { 'Retry-After': { type: 'integer', description: 'Seconds to wait before trying again' } } },
      }),
      // Before the body is read: a server known to have no matcher, or with no room, never reads the upload.
      onRequest: async (request, reply) => {
        const state = app.engine.state;
        if (state.status === 'ready' && !matcherOf(state.engine)) {
          reply.header('connection', 'close');
          throw noMatcherError('POST /v1/match');
        }
        admission.admit(request, reply);
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const remaining = () => Math.max(0, timeoutMs - (performance.now() - started));
      const { bytes, texts } = await readMatchRequest(request, bodyLimit, async (id) => {
        const stored = await app.library.image(id, request.viewer);
        if (!stored) throw new PixelInfoError(ErrorCodes.NOT_FOUND, `no image ${id} in the library`, { subject: id });
        return stored.bytes;
      });
      if (bytes.length === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, 'image: the upload is empty (0 bytes)');
      const matcher = (await routeMatcher(app.engine, { required: true, ms: remaining(), what: 'POST /v1/match' }))!;
      request.phase = 'queued';
      const results = await withTimeout(
        computing(async () => {
          request.phase = 'captioning';
          return matcher.match(bytes, texts);
        }),
        remaining(),
        () => new PixelInfoError(ErrorCodes.TIMEOUT, `the request did not finish within ${timeoutMs} ms`),
      ).catch((err: unknown) => {
        throw renameBufferSource(err);
      });
      request.phase = 'handling';
      reply.header('cache-control', 'no-store');
      return { matcher: matcher.name, results: results.map(({ text, score, logit, cosine }) => ({ text, score, logit, cosine })) };
    },
  );
};

/** The image bytes and the sentences of a match request, from a multipart form or a JSON body. */
async function readMatchRequest(
  request: FastifyRequest,
  bodyLimit: number,
  libraryImage: (id: string) => Promise<Buffer>,
): Promise<{ bytes: Buffer; texts: string[] }> {
  if (request.isMultipart()) {
    let bytes: Buffer | undefined;
    const single: string[] = [];
    let list: string | undefined;
    try {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          bytes = await readImagePart(request, part, bodyLimit);
        } else if (part.fieldname === 'text') {
          single.push(String(part.value));
        } else if (part.fieldname === 'texts') {
          if (list !== undefined) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'form field "texts" is given twice; give it once', { subject: 'texts' });
          list = String(part.value);
        } else {
          throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `unknown form field "${part.fieldname.slice(0, 40)}": send "image", and "text" fields or one "texts" field`, {
            subject: part.fieldname,
          });
        }
      }
    } catch (err) {
      throw formError(err);
    }
    if (!bytes) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'image: the form has no file field named "image"', { subject: 'image' });
    if (list !== undefined && single.length) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'give the sentences as "text" fields or as one "texts" field, not both', { subject: 'texts' });
    let texts: unknown = single;
    if (list !== undefined) {
      try {
        texts = JSON.parse(list);
      } catch {
        throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'form field "texts" must be a JSON array of strings', { subject: 'texts' });
      }
    }
    return { bytes, texts: parseOrThrow(matchTextsSchema, texts, 'form fields').map(String) };
  }
  const contentType = request.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(contentType)) {
    throw new PixelInfoError(
      ErrorCodes.INVALID_ARGUMENT,
      `content-type ${contentType || '(none)'} is not accepted here; send multipart/form-data (file field "image", "text" fields) or application/json {"image": "<base64>", "texts": [...]}`,
    );
  }
  const body = parseOrThrow(matchJsonBodySchema, request.body, 'body');
  if (body.imageId !== undefined) return { bytes: await libraryImage(body.imageId), texts: body.texts };
  const base64 = body.image!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(base64)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'invalid body: image: must be base64', { subject: 'image' });
  return { bytes: Buffer.from(base64, base64.includes('-') || base64.includes('_') ? 'base64url' : 'base64'), texts: body.texts };
}

/** A multipart failure as a client error: our own pass through, the parser's limits and complaints become 400. */
function formError(err: unknown): unknown {
  if (err instanceof PixelInfoError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e?.code === 'FST_FILES_LIMIT') return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'the form holds more than one file; send one image, in the file field "image"', { subject: 'image' });
  if (e?.code === 'FST_PARTS_LIMIT' || e?.code === 'FST_FIELDS_LIMIT') {
    return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `the form has too many fields; send the image and at most ${LIMITS.matchTexts} sentences`, { subject: 'form' });
  }
  if (typeof e?.statusCode === 'number' && e.statusCode < 500) return err;
  const what = typeof e?.message === 'string' ? e.message.replace(/^Multipart:\s*/i, '').slice(0, 120) : 'unreadable';
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `malformed multipart/form-data body (${what}); send a form with a file field "image"`, { subject: 'form', cause: err });
}

/** The Captioner names a buffer "<buffer>"; to an API client the one image it sent is "image". */
function renameBufferSource(err: unknown): unknown {
  if (!(err instanceof PixelInfoError) || !/^<buffer(?: \d+)?>/.test(err.message)) return err;
  return new PixelInfoError(err.code, err.message.replace(/^<buffer(?: \d+)?>/, 'image'), { subject: 'image', cause: err });
}

function withTimeout<T>(work: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
