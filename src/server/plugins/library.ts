/**
 * The library of captioned images: full-text search, one entry, its image bytes and its thumbnail
 * (GET /v1/library, /v1/library/:id, /v1/library/:id/image, /v1/library/:id/thumbnail), and removing an entry
 * (DELETE /v1/library/:id). Every route shows and changes only what `request.viewer` may see; an entry it may
 * not see is a 404, exactly as one that does not exist, so that no caller learns what another has stored.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { MIME_TYPES, type LibraryEntry } from '../../library/index.js';
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

export const libraryPlugin: FastifyPluginAsyncZod = async (app) => {
  const withLinks = (entry: LibraryEntry) => ({ ...entry, ...libraryLinks(entry.id) });
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
          'Full-text search (SQLite FTS5, or PostgreSQL full-text search) over every caption of each stored image; every word must match, as a word prefix; common English words (a, the, with, ...) are left out. Empty q: newest first.',
        querystring: libraryQuerySchema,
        response: { 200: librarySearchSchema.describe('Matches, best first'), 400: errorResponse('A bad query parameter') },
      },
    },
    async (request) => {
      const { q = '', limit = 24 } = request.query;
      const [items, total] = await Promise.all([app.library.search({ q, limit }, request.viewer), app.library.count(request.viewer)]);
      return { query: q, count: items.length, total, items: items.map(withLinks) };
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
