/**
 * The library of captioned images: full-text search, one entry, its image bytes and its thumbnail
 * (GET /v1/library, /v1/library/:id, /v1/library/:id/image, /v1/library/:id/thumbnail).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { MIME_TYPES, type LibraryEntry } from '../library.js';
import { BINARY, documented } from '../openapi.js';
import { bytesSchema, errorResponse, imageIdParamsSchema, libraryEntrySchema, libraryQuerySchema, librarySearchSchema } from '../schemas.js';

/** Stored images never change under their id (the SHA-256 of their bytes). */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Where a stored image and its thumbnail are served. */
export function libraryLinks(id: string): { imageUrl: string; thumbnailUrl: string } {
  return { imageUrl: `/v1/library/${id}/image`, thumbnailUrl: `/v1/library/${id}/thumbnail` };
}

export const libraryPlugin: FastifyPluginAsyncZod = async (app) => {
  const withLinks = (entry: LibraryEntry) => ({ ...entry, ...libraryLinks(entry.id) });
  const badId = errorResponse('The id is not 64 hex digits');
  const notFound = errorResponse('No image with this id in the library');

  app.get(
    '/v1/library',
    {
      schema: {
        tags: ['library'],
        summary: 'Search the captioned images',
        description: 'Full-text search (SQLite FTS5) over every caption of each stored image; every word must match, as a word prefix. Empty q: newest first.',
        querystring: libraryQuerySchema,
        response: { 200: librarySearchSchema.describe('Matches, best first'), 400: errorResponse('A bad query parameter') },
      },
    },
    async (request) => {
      const { q = '', limit = 24 } = request.query;
      const items = app.library.search(q, limit);
      return { query: q, count: items.length, total: app.library.size, items: items.map(withLinks) };
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
      const entry = app.library.get(request.params.id);
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
      const image = app.library.image(request.params.id);
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
      const thumbnail = app.library.thumbnail(request.params.id);
      if (!thumbnail) throw notInLibrary(request.params.id);
      return reply.type('image/jpeg').header('cache-control', IMMUTABLE).send(thumbnail);
    },
  );
};

function notInLibrary(id: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `no image ${id} in the library`, { subject: id });
}
