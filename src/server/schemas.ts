/**
 * The API contract, in zod: what every route takes (path parameters, query, body) and what it answers. Routes
 * validate requests and serialize responses with these schemas (fastify-type-provider-zod), and @fastify/swagger
 * turns the same schemas into the OpenAPI document, so what is checked, what is sent and what is documented
 * cannot drift apart. A failed check is a 400 INVALID_ARGUMENT whose message names the field (`formatIssues`).
 */
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { DEFAULT_GENERATION } from '../decoder/generation.js';
import { modelCardSchema } from '../decoder/model-card.js';
import { LIMITS, LOW_CONFIDENCE } from './limits.js';
import { ALT_TEXT_MAX } from '../text/alt-text.js';

export { LIMITS, LOW_CONFIDENCE };

// --- request fields -----------------------------------------------------------------------------------------------

/**
 * A query or form field. They arrive as text, and a name given twice arrives as an array, which is refused;
 * `parse` turns the trimmed text into the value `schema` checks. The document shows `schema` (an integer, a
 * boolean), which is what a client means to send.
 */
function textField<T extends z.ZodTypeAny>(parse: (text: string) => unknown, schema: T) {
  return z.preprocess((value, ctx) => {
    if (typeof value === 'string') return parse(value.trim());
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be given once, as a single value', fatal: true });
    return z.NEVER;
  }, schema);
}

function intField(min: number, max: number) {
  const message = `must be an integer from ${min} to ${max}`;
  const integer = z.number({ invalid_type_error: message }).int(message).min(min, message).max(max, message);
  return textField((text) => (/^-?\d+$/.test(text) ? Number(text) : text), integer);
}

const TRUE_WORDS = ['', 'true', '1', 'yes', 'on'];
const FALSE_WORDS = ['false', '0', 'no', 'off'];
const boolField = textField((text) => {
  const word = text.toLowerCase();
  return TRUE_WORDS.includes(word) ? true : FALSE_WORDS.includes(word) ? false : text;
}, z.boolean({ invalid_type_error: 'must be true or false' }));

// --- captions -----------------------------------------------------------------------------------------------------

/** Options of POST /v1/captions, as query parameters or (multipart) form fields. */
export const captionOptionsSchema = z
  .object({
    beam: intField(LIMITS.beam.min, LIMITS.beam.max)
      .optional()
      .describe(`Beam size; 1 = greedy search. Default: the model card's decoding.beamSize, else ${DEFAULT_GENERATION.beamSize}.`),
    nbest: intField(LIMITS.nbest.min, LIMITS.nbest.max)
      .optional()
      .describe(`Captions returned, best first; at most beam. Default: the model card's decoding.nBest, else ${DEFAULT_GENERATION.nBest}.`),
    rerank: z
      .enum(['score', 'match'])
      .optional()
      .describe("Order of the n-best captions: 'score' (default), the decoder's ranking; 'match', highest confidence first (needs the matcher: 503 MODEL_NOT_FOUND without one). Only reorders what the search returned: ask for nbest > 1."),
    attention: boolField.optional().describe('Return per-token 7x7 attention weights (true/false, 1/0, yes/no, on/off). Default false.'),
    maxLength: intField(LIMITS.maxLength.min, LIMITS.maxLength.max)
      .optional()
      .describe(`Most words per caption. Default: the model card's decoding.maxLength, else ${DEFAULT_GENERATION.maxLength}.`),
    store: boolField
      .optional()
      .describe('Keep the image and its captions in the library (true/false). false: caption only; nothing is stored and `library` is null. Default true.'),
    keepMetadata: boolField
      .optional()
      .describe(
        'Store the original with its metadata (EXIF: GPS position, camera, artist, description; XMP; IPTC; comments) as sent. Default false: removed, orientation applied.',
      ),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.beam !== undefined && o.nbest !== undefined && o.nbest > o.beam) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['nbest'], message: `must be at most beam (${o.beam}), got ${o.nbest}` });
    }
  });

export type CaptionRequestOptions = z.infer<typeof captionOptionsSchema>;

export const captionSchema = z.object({
  text: z.string().describe('Lower case, words joined by spaces, no final period'),
  tokens: z.array(z.string()),
  score: z.number().describe('Ranking score: logProb / (words + 1)^lengthPenalty'),
  logProb: z.number().describe('Sum of the log-probabilities of the words and of <end>'),
  attention: z
    .array(z.array(z.array(z.number())))
    .optional()
    .describe('Only with attention=true: per token, 7 rows of 7 weights over the image (row-major, they sum to 1)'),
  confidence: z
    .number()
    .min(0)
    .max(1)
    .optional()
    .describe(
      `Only when the server has an image–text matcher: its calibrated probability (0..1) that the caption describes this image. Below ${LOW_CONFIDENCE} the web page marks the caption as low confidence.`,
    ),
});

export const tagSchema = z
  .object({
    word: z.string().describe('A caption vocabulary word, e.g. "cat"'),
    probability: z.number().min(0).max(1).describe('The summed softmax probability of the ImageNet classes mapped to the word'),
    classes: z
      .array(z.object({ index: z.number().int().describe('ImageNet class index (0..999)'), label: z.string(), probability: z.number().min(0).max(1) }))
      .describe('The classes behind the word, most probable first (those at 0.01 or more, at most 5)'),
  })
  .describe("A word the encoder's ImageNet classifier is confident about (ImageNet class → WordNet hypernyms → caption word)");

/** A tag as the library keeps it. */
export const storedTagSchema = z.object({ word: z.string(), probability: z.number().min(0).max(1) });

const libraryLinksSchema = z.object({
  imageUrl: z.string().describe('GET: the image bytes as uploaded'),
  thumbnailUrl: z.string().describe('GET: a JPEG, longer side at most 256 px'),
});

export const captionResponseSchema = z.object({
  id: z.string().describe('SHA-256 of the image bytes; the library key'),
  model: z.string().nullable().describe("The model card's name"),
  image: z.object({ format: z.string(), width: z.number().int(), height: z.number().int() }).describe('The uploaded image as decoded'),
  captions: z.array(captionSchema).describe('nbest captions, best first'),
  tags: z
    .array(tagSchema)
    .describe(
      "Words the encoder's ImageNet classifier is confident about (summed class probability at least the model's tagThreshold, default 0.3), most probable first; empty when none is. Guided decoding (the model's tagBonus > 0) favours them",
    ),
  altText: z.string().describe(`The best caption as alt text: sentence case, final period, at most ${ALT_TEXT_MAX} characters`),
  options: z
    .object({ beam: z.number().int(), nbest: z.number().int(), maxLength: z.number().int(), attention: z.boolean(), rerank: z.enum(['score', 'match']) })
    .describe('The options the captions were made with, defaults filled in'),
  timings: z
    .object({
      preprocessMs: z.number(),
      encoderMs: z.number(),
      decoderMs: z.number(),
      totalMs: z.number(),
      queueMs: z.number().describe('Wait for the batch to start'),
      requestMs: z.number().describe('The whole request'),
      batchSize: z.number().int().describe('Images in the batch this one ran in'),
    })
    .describe('Milliseconds; the stage times of a batch are shared evenly among its images'),
  library: libraryLinksSchema.nullable().describe('Where the stored image is; null with store=false, or when it could not be stored'),
  matcher: z.string().nullable().optional().describe("The image–text matcher's name (which gave `confidence`); null without one"),
});

// --- library ------------------------------------------------------------------------------------------------------

export const SEARCH_MODES = ['meaning', 'words'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

export const libraryQuerySchema = z
  .object({
    q: textField((text) => text, z.string().max(LIMITS.queryChars, `must be at most ${LIMITS.queryChars} characters`))
      .optional()
      .describe('What to look for: a description (mode=meaning) or words that must all occur, as word prefixes, in a caption of the image (mode=words); empty: newest first'),
    mode: textField(
      (text) => text.toLowerCase(),
      z.enum(SEARCH_MODES, { errorMap: () => ({ message: `must be ${SEARCH_MODES.join(' or ')}` }) }),
    )
      .optional()
      .describe(
        'meaning: images ranked by how well q describes them (the image–text matcher: cosine of the stored image embedding and the embedded query), then images without an embedding whose captions match the words; words: full-text search of the captions. Default: meaning when the server has a matcher, else words.',
      ),
    limit: intField(1, LIMITS.libraryLimit).optional().describe('Most images returned. Default 24.'),
  })
  .strict();

export const imageIdParamsSchema = z.object({
  id: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be the 64-hex-digit SHA-256 of an image')
    .describe('SHA-256 of the image bytes (64 hex digits)'),
});

export const libraryEntrySchema = z
  .object({
    id: z.string().describe('SHA-256 of the image bytes'),
    created: z.string().datetime().describe('When the image was first stored'),
    width: z.number().int(),
    height: z.number().int(),
    format: z.string(),
    caption: z.string().describe('The best caption'),
    captions: z
      .array(z.object({ text: z.string(), score: z.number(), confidence: z.number().optional().describe('With a matcher: 0..1') }))
      .describe('Every caption of the latest request, best first'),
    confidence: z.number().nullable().describe("The best caption's confidence (0..1) from the image–text matcher; null when captioned without one"),
    tags: z
      .array(storedTagSchema)
      .describe("The image's ImageNet-guided tags when it was captioned, most probable first (searched by words like the captions); empty for images stored before tags"),
  })
  .merge(libraryLinksSchema);

export const matchOfEntrySchema = z
  .object({
    score: z.number().describe('Calibrated probability (0..1) that the query describes the image'),
    logit: z.number(),
    cosine: z.number().describe('Cosine of the image and query embeddings'),
  })
  .describe('Only in a search by meaning, for images ranked by their embedding');

export const librarySearchItemSchema = libraryEntrySchema.extend({ match: matchOfEntrySchema.optional() });

/**
 * A binary response (an image): fastify sends a Buffer as it is, never through a serializer. The route documents
 * its media type with `documented(...)` (src/server/openapi.ts).
 */
export const bytesSchema = z.instanceof(Buffer);

/** An answer without a body (204 No Content). */
export const noContentSchema = z.null();

export const librarySearchSchema = z.object({
  query: z.string(),
  mode: z.enum(SEARCH_MODES).describe('How the images were found (an empty query lists the newest, in either mode)'),
  count: z.number().int().describe('Images returned'),
  total: z.number().int().describe('Images in the library'),
  items: z
    .array(librarySearchItemSchema)
    .describe('Best match first (newest first for an empty query); by meaning: the images ranked by `match.score`, then the word matches without an embedding'),
});

// --- match --------------------------------------------------------------------------------------------------------

const sentenceSchema = z
  .string({ invalid_type_error: 'each text must be a string' })
  .max(LIMITS.sentenceChars, `each text must be at most ${LIMITS.sentenceChars} characters`);

const MATCH_JSON_HINT = 'send a JSON body {"image": "<base64>", "texts": ["..."]} (or {"imageId": "<library id>", ...}), or a multipart form';

export const matchTextsSchema = z
  .array(sentenceSchema, { required_error: 'is required (an array of sentences)', invalid_type_error: 'must be an array of strings' })
  .min(1, 'needs at least one sentence')
  .max(LIMITS.matchTexts, `at most ${LIMITS.matchTexts} sentences`)
  .describe('The sentences to score against the image, each scored on its own');

/** The JSON form of POST /v1/match: the image inline (base64) or a stored one by id. */
export const matchJsonBodySchema = z
  .object(
    {
      image: z.string().min(1, 'must not be empty').optional().describe('The image bytes, base64'),
      imageId: z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'must be the 64-hex-digit SHA-256 of an image')
        .optional()
        .describe('Instead of `image`: an image of your library, by id'),
      texts: matchTextsSchema,
    },
    { required_error: MATCH_JSON_HINT, invalid_type_error: MATCH_JSON_HINT },
  )
  .strict()
  .refine((b) => (b.image === undefined) !== (b.imageId === undefined), { message: 'give exactly one of image and imageId', path: ['image'] });

export const matchResultSchema = z.object({
  text: z.string(),
  score: z.number().describe('Calibrated probability (0..1) that the sentence describes the image (see the matcher card)'),
  logit: z.number().describe('a·cosine + b, the calibration of the matcher card'),
  cosine: z.number().describe('Cosine of the image and sentence embeddings'),
});

export const matchResponseSchema = z.object({
  matcher: z.string().describe("The matcher card's name"),
  results: z.array(matchResultSchema).describe('One per text, in the order given'),
});

// --- score --------------------------------------------------------------------------------------------------------

const SCORE_BODY_HINT = 'send a JSON body {"references": ["..."], "candidate": "..."} with content-type application/json';

export const scoreBodySchema = z
  .object(
    {
      references: z
        .array(z.string().max(LIMITS.sentenceChars, `each reference must be at most ${LIMITS.sentenceChars} characters`), {
          required_error: 'is required (an array of reference captions)',
          invalid_type_error: 'must be an array of strings',
        })
        .max(LIMITS.references, `at most ${LIMITS.references} references`)
        .transform((refs) => refs.map((r) => r.trim()).filter((r) => r.length > 0))
        .refine((refs) => refs.length > 0, 'needs at least one non-empty reference')
        .describe('Reference captions; blank ones are ignored'),
      candidate: z
        .string({ required_error: 'is required (the caption to score)', invalid_type_error: 'must be a string' })
        .trim()
        .min(1, 'must not be empty')
        .max(LIMITS.sentenceChars, `must be at most ${LIMITS.sentenceChars} characters`)
        .describe('The caption to score'),
    },
    { required_error: SCORE_BODY_HINT, invalid_type_error: SCORE_BODY_HINT },
  )
  .strict();

export const scoreResponseSchema = z.object({
  scores: z.object({
    'BLEU-1': z.number(),
    'BLEU-2': z.number(),
    'BLEU-3': z.number(),
    'BLEU-4': z.number(),
    'CIDEr-D': z.number().describe('Document frequencies from these references alone: indicative only'),
  }),
  references: z.number().int().describe('Non-empty references used'),
});

// --- model, health, docs ------------------------------------------------------------------------------------------

export const errorBodySchema = z.object({
  code: z.nativeEnum(ErrorCodes).describe('Stable error code'),
  message: z.string().describe('What went wrong, for people; names the field or file'),
});

/** Every error answer: `{ "error": { "code", "message" } }`. */
export const errorSchema = z.object({ error: errorBodySchema });

/** The error answer for one status of a route, saying when it happens. */
export const errorResponse = (when: string) => errorSchema.describe(when);

export const healthSchema = z.object({ status: z.literal('ok') });

export const readySchema = z.object({
  status: z.literal('ready'),
  model: z.string().nullable().describe("The model card's name"),
  queueDepth: z.number().int().describe('Images waiting for a batch'),
});

export const notReadySchema = z.object({
  status: z.enum(['loading', 'failed']),
  error: errorBodySchema.optional(), // why the model failed to load
});

export const openApiDocumentSchema = z.object({ openapi: z.string(), info: z.record(z.unknown()), paths: z.record(z.unknown()) }).passthrough();

/** Schemas named in the document's components (a route's identical schema becomes a $ref to them). */
export const NAMED_SCHEMAS = {
  Error: errorSchema,
  ErrorBody: errorBodySchema,
  Caption: captionSchema,
  Tag: tagSchema,
  CaptionResponse: captionResponseSchema,
  LibraryEntry: libraryEntrySchema,
  LibrarySearch: librarySearchSchema,
  MatchResponse: matchResponseSchema,
  ScoreResponse: scoreResponseSchema,
  ModelCard: modelCardSchema,
} as const;

// --- failures -----------------------------------------------------------------------------------------------------

/** "beam: must be an integer from 1 to 10; unknown field "beams"": each issue, naming its field. */
export function formatIssues(issues: readonly z.ZodIssue[]): string {
  return issues
    .map((issue) => {
      if (issue.code === z.ZodIssueCode.unrecognized_keys) return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      return issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

/** INVALID_ARGUMENT for failed checks of `where` (query, form fields, body...): "invalid query: beam: ...". */
export function invalidArgument(where: string, issues: readonly z.ZodIssue[]): PixelInfoError {
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `invalid ${where}: ${formatIssues(issues)}`, {
    subject: issues[0]?.path.join('.') || where,
  });
}

/** Parses `value` with `schema` or throws INVALID_ARGUMENT naming each bad field (for values no route schema sees). */
export function parseOrThrow<T extends z.ZodTypeAny>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  throw invalidArgument(where, result.error.issues);
}
