/**
 * The OpenAPI document, generated from the routes: @fastify/swagger collects every route as it is added, and its
 * zod schemas (src/server/schemas.ts) are converted by fastify-type-provider-zod. Each response schema's
 * `.describe()` becomes the response's description, and a route schema identical to one of NAMED_SCHEMAS
 * becomes a `$ref` to it. What zod cannot describe (a multipart or raw image request body, binary and text
 * responses, response headers) a route declares in its config with `documented(...)`.
 */
import type { SwaggerOptions, SwaggerTransform } from '@fastify/swagger';
import type { FastifySchema } from 'fastify';
import { createJsonSchemaTransformObject, jsonSchemaTransform } from 'fastify-type-provider-zod';
import { SECURITY_SCHEMES } from './auth.js';
import { NAMED_SCHEMAS } from './schemas.js';

type JsonSchema = { [key: string]: unknown };
/** Media type → schema: an OpenAPI `content` object. */
export type Content = Record<string, { schema: JsonSchema }>;

/** @fastify/swagger takes a response's description from this key of its schema (and drops the key). */
const RESPONSE_DESCRIPTION = 'x-response-description';

/** Bytes of any kind, e.g. an image. */
export const BINARY: JsonSchema = { type: 'string', format: 'binary' };

/** A route schema after conversion: JSON Schema where the route had zod. */
export interface ConvertedSchema {
  querystring?: JsonSchema & { properties?: Record<string, JsonSchema> };
  body?: JsonSchema;
  response?: Record<string, JsonSchema>;
  [key: string]: unknown;
}

/** The parts of an operation zod cannot describe. */
export interface OpenApiExtras {
  /** The request body by media type (it replaces a converted `body`). */
  body?: Content;
  /** Responses by status: what they are and their body by media type (binary, text). */
  responses?: Record<number, { description: string; content: Content }>;
  /** Response headers by status, e.g. Retry-After on 503. */
  headers?: Record<number, Record<string, JsonSchema & { description: string }>>;
}

/** Route config adding `extras` to the route's operation; a function gets the converted schemas to build on. */
export function documented(extras: OpenApiExtras | ((converted: ConvertedSchema) => OpenApiExtras)): { swaggerTransform: SwaggerTransform } {
  return { swaggerTransform: (route) => toOpenApi(route, extras) };
}

/** The options of @fastify/swagger: the document's header, and how each route's schemas become its operation. */
export function openApiOptions(): SwaggerOptions {
  return {
    openapi: {
      // The zod conversion targets OpenAPI 3.0 (nullable: true), so the document says 3.0.
      openapi: '3.0.3',
      info: {
        title: 'Pixel Info API',
        version: '1.0.0',
        description:
          'Image captioning (ResNet50 + soft-attention LSTM). Every error is `{ "error": { "code", "message" } }` with a stable `code`: ' +
          'INVALID_ARGUMENT (400/415), UNAUTHENTICATED (401), FORBIDDEN (403), NOT_FOUND (404), PAYLOAD_TOO_LARGE (413), FILE_EMPTY / NOT_AN_IMAGE / ' +
          'UNSUPPORTED_FORMAT / IMAGE_TRUNCATED / IMAGE_TOO_LARGE / DECODE_FAILED (422), RATE_LIMITED (429, with Retry-After), OVERLOADED (503, with ' +
          'Retry-After), MODEL_NOT_FOUND / MODEL_CORRUPT (503), TIMEOUT (504), INTERNAL (500). Once an API key exists on the server, every /v1 ' +
          'route needs one (Authorization: Bearer, or X-API-Key), and a key sees only the images it stored (an admin key sees all).',
      },
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    transform: (route) => toOpenApi(route),
    transformObject: createJsonSchemaTransformObject({ schemas: NAMED_SCHEMAS }),
  };
}

/** One route's schema for the document: zod converted, response descriptions lifted out, `extras` added. */
function toOpenApi(route: Parameters<SwaggerTransform>[0], extras: Parameters<typeof documented>[0] = {}): ReturnType<SwaggerTransform> {
  const { schema, url } = jsonSchemaTransform(route);
  if (!schema || schema.hide) return { schema: schema as FastifySchema, url };
  const converted = schema as ConvertedSchema;
  const more = typeof extras === 'function' ? extras(converted) : extras;

  const response: Record<string, JsonSchema> = {};
  for (const [status, { description, ...body }] of Object.entries(converted.response ?? {})) {
    // Said of the response, not of its body: the body then equals its named schema and becomes a $ref.
    response[status] = description === undefined ? body : { ...body, [RESPONSE_DESCRIPTION]: description };
  }
  for (const [status, documentedResponse] of Object.entries(more.responses ?? {})) response[status] = documentedResponse;
  for (const [status, headers] of Object.entries(more.headers ?? {})) response[status] = { ...response[status], headers };

  const result: ConvertedSchema = { ...converted };
  if (more.body) result.body = { content: more.body };
  if (Object.keys(response).length > 0) {
    result.response = Object.fromEntries(Object.entries(response).sort(([a], [b]) => a.localeCompare(b)));
  }
  return { schema: result as FastifySchema, url };
}
