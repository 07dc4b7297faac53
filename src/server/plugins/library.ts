/**
 * The library of captioned images: search (by meaning with the image–text matcher: the query embedded and
 * compared with each image's stored embedding; or by words, full-text), one entry, its image bytes and its thumbnail
 * (GET /v1/library, /v1/library/:id, /v1/library/:id/image, /v1/library/:id/thumbnail), and removing an entry
 * (DELETE /v1/library/:id). Every route shows and changes only what `request.viewer` may see; an entry it may
 * not see is a 404, exactly as one that does not exist, so that no caller learns what another has stored.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { MIME_TYPES, type LibraryEntry } from '../../library/index.js';
import { calibrate } from '../../match/score.js';
import { routeMatcher } from '../engine.js';
import { BINARY, documented } from '../openapi.js';
import { bytesSchema, errorResponse, imageIdParamsSchema, libraryEntrySchema, libraryQuerySchema, librarySearchSchema, noContentSchema } from '../schemas.js';

/**
 * Stored images never change under their id (the SHA-256 of their bytes). `private`: who may fetch one depends on
 * the API key, so shared caches must not keep it.
 */
const IMMUTABLE = 'private, max-age=31536000, immutable';
/** Entries and searches change (new captions, deletions) and depend on the key: private, and asked again each time. */
const PRIVATE = 'private, no-cache';

/** Where a stored image and its thumbnail are served. */
export function libraryLinks(id: string): { imageUrl: string; thumbnailUrl: string } {
  return { imageUrl: `/v1/library/${id}/image`, thumbnailUrl: `/v1/library/${id}/thumbnail` };
}

export interface LibraryPluginOptions {
  /** How long a search with mode=meaning waits for the model to finish loading, ms. */
  timeoutMs: number;
}

export const libraryPlugin: FastifyPluginAsyncZod<LibraryPluginOptions> = async (app, { timeoutMs }) => {
  // every entry has `tags` in the API (the store leaves the field out for images stored without tags)
  const withLinks = (entry: LibraryEntry) => ({ ...entry, tags: entry.tags ?? [], ...libraryLinks(entry.id) });
  const badId = errorResponse('The id is not 64 hex digits');
  const notFound = errorResponse('No image with this id in the library');
  // Every answer of these routes is someone's library content (or says whether it exists): never in a shared cache.
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', PRIVATE);
  });

  app.get(
    '/v1/library',
    {
      schema: {
        tags: ['library'],
        summary: 'Search the captioned images',
        description:
          'By meaning (mode=meaning, the default when the server has an image–text matcher): q is embedded by the matcher and the images are ' +
          'ranked by the cosine of their stored embedding with it (each item has `match`: score, logit, cosine); images stored without an ' +
          'embedding of this matcher follow when their captions match the words of q. By words (mode=words): full-text search (SQLite FTS5, ' +
          'or PostgreSQL full-text search) over every caption of each stored image; every word must match, as a word prefix; common English ' +
          'words (a, the, with, ...) are left out. Empty q: newest first.',
        querystring: libraryQuerySchema,
        response: {
          200: librarySearchSchema.describe('Matches, best first'),
          400: errorResponse('A bad query parameter'),
          503: errorResponse('mode=meaning on a server without an image–text matcher (MODEL_NOT_FOUND), or the model failed to load'),
          504: errorResponse('mode=meaning: the model did not finish loading in time'),
        },
      },
    },
    async (request) => {
      const { q = '', limit = 24, mode: asked } = request.query;
      // Unasked, a search never waits for the model: while it loads, it is by words.
      const matcher = asked === 'words' ? undefined : await routeMatcher(app.engine, { required: asked === 'meaning', ms: timeoutMs, what: 'mode=meaning' });
      const embedding = matcher && q.trim() ? { model: matcher.id, vector: (await matcher.embedTexts([q]))[0] } : undefined;
      const [items, total] = await Promise.all([app.library.search({ q, limit, embedding }, request.viewer), app.library.count(request.viewer)]);
      return {
        query: q,
        mode: matcher ? ('meaning' as const) : ('words' as const),
        count: items.length,
        total,
        items: items.map(({ cosine, ...entry }) => ({
          ...withLinks(entry),
          ...(cosine !== undefined && matcher ? { match: { ...calibrate(cosine, matcher.calibration), cosine } } : {}),
        })),
      };
    },
  );

  app.get(
    '/v1/library/:id',
    {
      schema: {
        tags: ['library'],
        summary: 'One stored image',
        params: imageIdParamsSchema,
        response: { 200: libraryEntrySchema.describe('The entry'), 400: badId, 404: notFound },
      },
    },
    async (request) => {
      const entry = await app.library.get(request.params.id, request.viewer);
      if (!entry) throw notInLibrary(request.params.id);
      return withLinks(entry);
    },
  );

  app.get(
    '/v1/library/:id/image',
    {
      schema: { tags: ['library'], summary: 'The stored image, as uploaded', params: imageIdParamsSchema, response: { 200: bytesSchema, 400: badId, 404: notFound } },
      config: documented({ responses: { 200: { description: 'The image bytes', content: { 'image/*': { schema: BINARY } } } } }),
    },
    async (request, reply) => {
      const image = await app.library.image(request.params.id, request.viewer);
      if (!image) throw notInLibrary(request.params.id);
      return reply
        .type(MIME_TYPES[image.format] ?? 'application/octet-stream')
        .header('cache-control', IMMUTABLE)
        .send(image.bytes);
    },
  );

  app.get(
    '/v1/library/:id/thumbnail',
    {
      schema: {
        tags: ['library'],
        summary: 'A JPEG thumbnail of a stored image (longer side at most 256 px)',
        params: imageIdParamsSchema,
        response: { 200: bytesSchema, 400: badId, 404: notFound },
      },
      config: documented({ responses: { 200: { description: 'JPEG', content: { 'image/jpeg': { schema: BINARY } } } } }),
    },
    async (request, reply) => {
      const thumbnail = await app.library.thumbnail(request.params.id, request.viewer);
      if (!thumbnail) throw notInLibrary(request.params.id);
      return reply.type('image/jpeg').header('cache-control', IMMUTABLE).send(thumbnail);
    },
  );

  app.delete(
    '/v1/library/:id',
    {
      schema: {
        tags: ['library'],
        summary: 'Remove a stored image',
        description:
          "Removes the caller's entry. An image stored by several API keys stays for the others; the image, its thumbnail and its captions " +
          'are deleted once no key holds it (an admin key, or a server without keys, deletes it outright).',
        params: imageIdParamsSchema,
        response: { 204: noContentSchema.describe('Removed'), 400: badId, 404: notFound },
      },
    },
    async (request, reply) => {
      if (!(await app.library.delete(request.params.id, request.viewer))) throw notInLibrary(request.params.id);
      return reply.status(204).send(null);
    },
  );
};

function notInLibrary(id: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `no image ${id} in the library`, { subject: id });
}
