/** The hand-written OpenAPI 3.1 description of every route, served at GET /openapi.json. */
import { LIMITS } from './schemas.js';

const error = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const json = (description: string, schema: object) => ({ description, content: { 'application/json': { schema } } });
const idParam = { name: 'id', in: 'path', required: true, description: 'SHA-256 of the image bytes (64 hex digits)', schema: { type: 'string', pattern: '^[0-9a-f]{64}$' } };

const captionOptions = [
  { name: 'beam', in: 'query', schema: { type: 'integer', minimum: LIMITS.beam.min, maximum: LIMITS.beam.max }, description: "Beam size; 1 = greedy. Default: the model card's, else 3." },
  { name: 'nbest', in: 'query', schema: { type: 'integer', minimum: LIMITS.nbest.min, maximum: LIMITS.nbest.max, default: 1 }, description: 'Captions returned, best first; at most beam.' },
  { name: 'attention', in: 'query', schema: { type: 'boolean', default: false }, description: 'Return per-token 7x7 attention weights.' },
  { name: 'maxLength', in: 'query', schema: { type: 'integer', minimum: LIMITS.maxLength.min, maximum: LIMITS.maxLength.max }, description: "Most words per caption. Default: the model card's decoding.maxLength, else 20." },
];

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Pixel Info API',
    version: '1.0.0',
    description:
      'Image captioning (ResNet50 + soft-attention LSTM). Every error is `{ "error": { "code", "message" } }` with a stable `code`: ' +
      'INVALID_ARGUMENT (400/415), NOT_FOUND (404), PAYLOAD_TOO_LARGE (413), FILE_EMPTY / NOT_AN_IMAGE / UNSUPPORTED_FORMAT / IMAGE_TRUNCATED / ' +
      'IMAGE_TOO_LARGE / DECODE_FAILED (422), OVERLOADED (503, with Retry-After), MODEL_NOT_FOUND / MODEL_CORRUPT (503), TIMEOUT (504), INTERNAL (500).',
  },
  paths: {
    '/v1/captions': {
      post: {
        summary: 'Caption one image',
        description:
          'Send the image as multipart/form-data (file field `image`; options may also be form fields) or as the raw body with an image/* ' +
          'content type. Concurrent requests are micro-batched. Every captioned image is stored in the library under its SHA-256.',
        parameters: captionOptions,
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: {
                type: 'object',
                required: ['image'],
                properties: {
                  image: { type: 'string', format: 'binary' },
                  beam: { type: 'integer' },
                  nbest: { type: 'integer' },
                  attention: { type: 'boolean' },
                  maxLength: { type: 'integer' },
                },
              },
            },
            'image/*': { schema: { type: 'string', format: 'binary' } },
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
          },
        },
        responses: {
          200: json('The captions', { $ref: '#/components/schemas/CaptionResponse' }),
          400: error('Bad option (the message names the field)'),
          413: error('Body over the size limit'),
          415: error('Neither multipart nor an image content type'),
          422: error('Empty, not an image, unsupported format, truncated, or too many pixels'),
          503: { ...error('Queue full (OVERLOADED) or model unavailable'), headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'Seconds' } } },
          504: error('Not done within the per-request timeout'),
        },
      },
    },
    '/v1/score': {
      post: {
        summary: 'BLEU-1..4 and CIDEr-D of one caption against reference captions',
        description: 'Indicative sentence-level scores (CIDEr-D document frequencies come from these references alone).',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['references', 'candidate'],
                additionalProperties: false,
                properties: {
                  references: { type: 'array', items: { type: 'string', maxLength: LIMITS.sentenceChars }, minItems: 1, maxItems: LIMITS.references },
                  candidate: { type: 'string', minLength: 1, maxLength: LIMITS.sentenceChars },
                },
              },
            },
          },
        },
        responses: {
          200: json('Scores', {
            type: 'object',
            properties: {
              scores: {
                type: 'object',
                properties: { 'BLEU-1': { type: 'number' }, 'BLEU-2': { type: 'number' }, 'BLEU-3': { type: 'number' }, 'BLEU-4': { type: 'number' }, 'CIDEr-D': { type: 'number' } },
              },
              references: { type: 'integer', description: 'Non-empty references used' },
            },
          }),
          400: error('Bad body'),
        },
      },
    },
    '/v1/model': {
      get: { summary: 'The model card (architecture, training data, metrics, version)', responses: { 200: json('Model card', { type: 'object' }), 503: error('Model failed to load') } },
    },
    '/v1/library': {
      get: {
        summary: 'Search captioned images',
        description: 'Full-text search (SQLite FTS5) over every caption of each stored image; every word must match (as a prefix). Empty q: newest first.',
        parameters: [
          { name: 'q', in: 'query', schema: { type: 'string', maxLength: 200 } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: LIMITS.libraryLimit, default: 24 } },
        ],
        responses: {
          200: json('Matches, best first', {
            type: 'object',
            properties: {
              query: { type: 'string' },
              count: { type: 'integer' },
              total: { type: 'integer', description: 'Images in the library' },
              items: { type: 'array', items: { $ref: '#/components/schemas/LibraryEntry' } },
            },
          }),
          400: error('Bad query'),
        },
      },
    },
    '/v1/library/{id}': {
      get: { summary: 'One stored image', parameters: [idParam], responses: { 200: json('Entry', { $ref: '#/components/schemas/LibraryEntry' }), 400: error('Bad id'), 404: error('Not in the library') } },
    },
    '/v1/library/{id}/image': {
      get: {
        summary: 'The stored image, as uploaded',
        parameters: [idParam],
        responses: { 200: { description: 'Image bytes', content: { 'image/*': { schema: { type: 'string', format: 'binary' } } } }, 400: error('Bad id'), 404: error('Not in the library') },
      },
    },
    '/v1/library/{id}/thumbnail': {
      get: {
        summary: 'A JPEG thumbnail (longer side at most 256 px)',
        parameters: [idParam],
        responses: { 200: { description: 'JPEG', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } } } }, 400: error('Bad id'), 404: error('Not in the library') },
      },
    },
    '/healthz': { get: { summary: 'Liveness: 200 while the process runs', responses: { 200: json('Alive', { type: 'object', properties: { status: { const: 'ok' } } }) } } },
    '/readyz': {
      get: {
        summary: 'Readiness: 200 once the model is loaded',
        responses: {
          200: json('Ready', { type: 'object', properties: { status: { const: 'ready' }, model: { type: ['string', 'null'] }, queueDepth: { type: 'integer' } } }),
          503: json('Loading or failed', { type: 'object', properties: { status: { enum: ['loading', 'failed'] }, error: { $ref: '#/components/schemas/ErrorBody' } } }),
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics',
        description:
          'pixel_info_http_requests_total, pixel_info_http_request_duration_seconds (by method, route, status), pixel_info_encoder_batch_size, ' +
          'pixel_info_batch_duration_seconds, pixel_info_queue_depth, pixel_info_queue_wait_seconds, pixel_info_library_images, and process metrics.',
        responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    '/openapi.json': { get: { summary: 'This document', responses: { 200: json('OpenAPI 3.1', { type: 'object' }) } } },
    '/': { get: { summary: 'The web app', responses: { 200: { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } } },
  },
  components: {
    schemas: {
      ErrorBody: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string', examples: ['INVALID_ARGUMENT', 'NOT_AN_IMAGE', 'OVERLOADED'] }, message: { type: 'string' } },
      },
      Error: { type: 'object', required: ['error'], properties: { error: { $ref: '#/components/schemas/ErrorBody' } } },
      Caption: {
        type: 'object',
        required: ['text', 'tokens', 'score', 'logProb'],
        properties: {
          text: { type: 'string', description: 'Lower case, words joined by spaces, no final period' },
          tokens: { type: 'array', items: { type: 'string' } },
          score: { type: 'number', description: 'Ranking score: logProb / (words + 1)^lengthPenalty' },
          logProb: { type: 'number' },
          attention: {
            type: 'array',
            description: 'Only with attention=true: per token, 7 rows of 7 weights over the image (they sum to 1)',
            items: { type: 'array', items: { type: 'array', items: { type: 'number' } } },
          },
        },
      },
      CaptionResponse: {
        type: 'object',
        required: ['id', 'image', 'captions', 'timings'],
        properties: {
          id: { type: 'string', description: 'SHA-256 of the image bytes' },
          model: { type: ['string', 'null'] },
          image: { type: 'object', properties: { format: { type: 'string' }, width: { type: 'integer' }, height: { type: 'integer' } } },
          captions: { type: 'array', items: { $ref: '#/components/schemas/Caption' } },
          altText: { type: 'string', description: 'The best caption as alt text: sentence case, final period, at most 125 characters' },
          options: { type: 'object', properties: { beam: { type: 'integer' }, nbest: { type: 'integer' }, maxLength: { type: 'integer' }, attention: { type: 'boolean' } } },
          timings: {
            type: 'object',
            description: 'Milliseconds; the stage times of a batch are shared evenly among its images',
            properties: {
              preprocessMs: { type: 'number' },
              encoderMs: { type: 'number' },
              decoderMs: { type: 'number' },
              totalMs: { type: 'number' },
              queueMs: { type: 'number' },
              requestMs: { type: 'number' },
              batchSize: { type: 'integer' },
            },
          },
          library: {
            type: ['object', 'null'],
            properties: { imageUrl: { type: 'string' }, thumbnailUrl: { type: 'string' } },
          },
        },
      },
      LibraryEntry: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          created: { type: 'string', format: 'date-time' },
          width: { type: 'integer' },
          height: { type: 'integer' },
          format: { type: 'string' },
          caption: { type: 'string' },
          captions: { type: 'array', items: { type: 'object', properties: { text: { type: 'string' }, score: { type: 'number' } } } },
          imageUrl: { type: 'string' },
          thumbnailUrl: { type: 'string' },
        },
      },
    },
  },
} as const;
