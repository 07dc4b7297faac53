/**
 * Errors on the wire: anything a route, a hook or fastify itself throws becomes JSON
 * `{ "error": { "code", "message" } }` with a stable code (src/errors.ts) and the HTTP status of that code.
 * Server faults (500) say only that: what a library, a database or the file system said stays in the log.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';
import { invalidArgument } from './schemas.js';

export const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  ORIGIN_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  QUOTA_EXCEEDED: 413,
  HOST_NOT_ALLOWED: 421,
  RATE_LIMITED: 429,
  FILE_EMPTY: 422,
  NOT_AN_IMAGE: 422,
  UNSUPPORTED_FORMAT: 422,
  IMAGE_TRUNCATED: 422,
  IMAGE_TOO_LARGE: 422,
  DECODE_FAILED: 422,
  OVERLOADED: 503,
  MODEL_NOT_FOUND: 503,
  MODEL_CORRUPT: 503,
  TIMEOUT: 504,
  // Never seen by the client, which has gone; the status is what the request log says (as nginx does).
  CLIENT_CLOSED: 499,
};

const INTERNAL_MESSAGE = 'internal error (see the server log)';

/** What the request part that failed a route schema is called in the message ("invalid query: beam: ..."). */
const REQUEST_PARTS: Record<string, string> = { querystring: 'query', params: 'path', body: 'body', headers: 'headers' };

/** Any thrown error → status, stable code and a message safe to show a client. */
export function toHttpError(err: unknown): { status: number; code: ErrorCode; message: string } {
  if (err instanceof PixelInfoError) {
    const status = HTTP_STATUS[err.code];
    // INTERNAL, IO_ERROR and the like: their messages name paths, SQL, hosts. Not for clients.
    if (status === undefined) return { status: 500, code: ErrorCodes.INTERNAL, message: INTERNAL_MESSAGE };
    return { status, code: err.code, message: err.message };
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => v.params.issue as z.ZodIssue);
    const where = REQUEST_PARTS[(err as FastifyError).validationContext ?? ''] ?? 'request';
    return { status: 400, code: ErrorCodes.INVALID_ARGUMENT, message: invalidArgument(where, issues).message };
  }
  const e = err as FastifyError;
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FIELDS_LIMIT') {
    return { status: 400, code: ErrorCodes.INVALID_ARGUMENT, message: `the form has too many parts (${e.message}); send one file, "image", and the documented options` };
  }
  if (status === 413) return { status: 413, code: ErrorCodes.PAYLOAD_TOO_LARGE, message: 'the request is too large (over the body size limit)' };
  if (status === 415) return { status, code: ErrorCodes.INVALID_ARGUMENT, message: `unsupported content type: ${e.message}` };
  if (status === 503) return { status, code: ErrorCodes.OVERLOADED, message: e.message || 'the server is unavailable' };
  if (status >= 400 && status < 500) return { status, code: ErrorCodes.INVALID_ARGUMENT, message: e.message };
  return { status: 500, code: ErrorCodes.INTERNAL, message: INTERNAL_MESSAGE };
}

/**
 * The server's error handler. Server faults are logged (a full queue and timeouts are load, not faults, and
 * neither is a request whose connection closed under it); OVERLOADED answers carry Retry-After, in seconds, from
 * `retryAfterSeconds`.
 */
export function errorHandler(retryAfterSeconds: () => number) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    // The connection is gone (the client hung up, or an upload was cut for its pace): whatever failed because
    // of it is no fault of the server, and there is nobody to answer. Logged where it was noticed (hooks.ts).
    if (request.clientGone?.aborted || reply.raw.destroyed || (request.raw.destroyed && !request.raw.complete)) {
      return reply.status(499).send({ error: { code: ErrorCodes.CLIENT_CLOSED, message: 'the connection was closed before the answer' } });
    }
    const { status, code, message } = toHttpError(err);
    if (status >= 500 && code !== ErrorCodes.OVERLOADED && code !== ErrorCodes.TIMEOUT) request.log.error({ err }, message);
    if (code === ErrorCodes.OVERLOADED) reply.header('retry-after', String(retryAfterSeconds()));
    return reply.status(status).send({ error: { code, message } });
  };
}

/** 404 NOT_FOUND for a route the server does not have. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return reply.status(404).send({ error: { code: ErrorCodes.NOT_FOUND, message: `no route ${request.method} ${request.url.split('?')[0]}` } });
}
