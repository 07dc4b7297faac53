/**
 * The matcher's model card (`model-card.json` of a matcher directory, docs/formats.md "Matcher model directory")
 * as a zod schema. What the runtime needs (`format`, `version`, `embeddingDim`, `maxTokens`, `calibration.a/b`)
 * is required; the descriptive sections are optional, and every object passes unknown keys through (a newer
 * trainer may add some), but a field that is present must have the documented type.
 * No Node imports: a browser can parse the card with this same schema.
 */
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const MATCHER_CARD_FORMAT = 'pixel-info-matcher';

const text = z.string();
const count = z.number().int().nonnegative();

export const matcherCalibrationSchema = z
  .object({
    /** logit = a * cosine + b. */
    a: z.number().finite(),
    b: z.number().finite(),
    /** What the probability estimates, in words. */
    meaning: text.optional(),
    /** The data the calibration was fitted on (e.g. "flickr8k val"). */
    fittedOn: text.optional(),
    /** Expected calibration error on that data. */
    ece: z.number().nullable().optional(),
  })
  .passthrough();

export const matcherCardSchema = z
  .object({
    format: z.literal(MATCHER_CARD_FORMAT),
    version: z.literal(1),
    name: text.optional(),
    /** When the directory was exported (ISO 8601). */
    date: text.optional(),
    architecture: z
      .object({ description: text, config: z.record(z.unknown()), parameters: count })
      .partial()
      .passthrough()
      .optional(),
    /** D, the size of both embeddings. */
    embeddingDim: z.number().int().positive(),
    /** T: sentences are cut to this many tokens. */
    maxTokens: z.number().int().positive(),
    calibration: matcherCalibrationSchema,
    /** Checksums of the training data. */
    data: z.record(z.unknown()).optional(),
    /** Val and test retrieval, agreement with people. */
    metrics: z.record(z.unknown()).optional(),
  })
  .passthrough();

export type MatcherCard = z.infer<typeof matcherCardSchema>;

/** Parses a matcher card; a card that does not match is MODEL_CORRUPT, naming each bad field and `where` (the file). */
export function parseMatcherCard(value: unknown, where = 'matcher model card'): MatcherCard {
  const parsed = matcherCardSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const uncalibrated = (value as { calibration?: unknown } | null)?.calibration === null;
  const problems = parsed.error.issues.map((issue) =>
    issue.path.join('.') === 'calibration' && uncalibrated
      ? 'calibration: null (the matcher was exported without calibrating it: python3 -m trainer.match --export CHECKPOINT --features STORE fits it on val)'
      : `${issue.path.join('.') || 'value'}: ${issue.message}`,
  );
  throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${where}: ${problems.join('; ')}`, { subject: where });
}
