/** Request validation (zod): every failure becomes a 400 INVALID_ARGUMENT whose message names the field. */
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const LIMITS = {
  beam: { min: 1, max: 10 },
  nbest: { min: 1, max: 10 },
  maxLength: { min: 1, max: 50 },
  references: 50,
  sentenceChars: 2000,
  libraryLimit: 100,
} as const;

/** Query and multipart fields arrive as strings; a field given twice arrives as an array and is refused. */
const single = z.string({ invalid_type_error: 'must be given once, as a single value' });

const intField = (min: number, max: number) =>
  single
    .trim()
    .regex(/^-?\d+$/, `must be an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be an integer from ${min} to ${max}`).max(max, `must be an integer from ${min} to ${max}`));

const boolField = single
  .trim()
  .toLowerCase()
  .refine((v) => ['', 'true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(v), 'must be true or false')
  .transform((v) => v === '' || v === 'true' || v === '1' || v === 'yes' || v === 'on');

export const captionOptionsSchema = z
  .object({
    beam: intField(LIMITS.beam.min, LIMITS.beam.max).optional(),
    nbest: intField(LIMITS.nbest.min, LIMITS.nbest.max).optional(),
    attention: boolField.optional(),
    maxLength: intField(LIMITS.maxLength.min, LIMITS.maxLength.max).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.beam !== undefined && o.nbest !== undefined && o.nbest > o.beam) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['nbest'], message: `must be at most beam (${o.beam}), got ${o.nbest}` });
    }
  });

export type CaptionRequestOptions = z.infer<typeof captionOptionsSchema>;

export const scoreBodySchema = z
  .object({
    references: z
      .array(z.string().max(LIMITS.sentenceChars, `each reference must be at most ${LIMITS.sentenceChars} characters`), {
        required_error: 'is required (an array of reference captions)',
        invalid_type_error: 'must be an array of strings',
      })
      .max(LIMITS.references, `at most ${LIMITS.references} references`)
      .transform((refs) => refs.map((r) => r.trim()).filter((r) => r.length > 0))
      .refine((refs) => refs.length > 0, 'needs at least one non-empty reference'),
    candidate: z
      .string({ required_error: 'is required (the caption to score)', invalid_type_error: 'must be a string' })
      .trim()
      .min(1, 'must not be empty')
      .max(LIMITS.sentenceChars, `must be at most ${LIMITS.sentenceChars} characters`),
  })
  .strict();

export const libraryQuerySchema = z
  .object({
    q: single.max(200, 'must be at most 200 characters').optional(),
    limit: intField(1, LIMITS.libraryLimit).optional(),
  })
  .strict();

export const imageIdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be the 64-hex-digit SHA-256 of an image');

/** Parses `value` or throws INVALID_ARGUMENT naming each bad field, e.g. "beam: must be an integer from 1 to 10". */
export function parseOrThrow<T extends z.ZodTypeAny>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    if (issue.code === z.ZodIssueCode.unrecognized_keys) return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    const field = issue.path.length ? issue.path.join('.') : where;
    return `${field}: ${issue.message}`;
  });
  throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `invalid ${where}: ${problems.join('; ')}`, {
    subject: result.error.issues[0]?.path.join('.') || where,
  });
}
