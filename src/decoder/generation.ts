/**
 * GenerationConfig: every decoding setting in one typed object, and the one resolver that decides it.
 *
 *     call options  >  the model card's `decoding`  >  the library defaults (generation-defaults.json)
 *
 * The captioner, the server, eval and the CLI all go through `resolveGeneration`; no other file decides a
 * decoding default. The trainer's validation search reads the same JSON file (trainer/decoding.py).
 */
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import DEFAULTS from './generation-defaults.json' with { type: 'json' };

/** The decoding rules (src/decoder/rules.ts), by name; the same names in trainer/decoding.py. */
export const RULE_NAMES = [
  'no-specials',
  'no-unk',
  'no-empty',
  'no-repeated-token',
  'no-repeated-ngram',
  'no-dangling-ending',
] as const;
export type RuleName = (typeof RULE_NAMES)[number];

/** Words a caption may not end on, grouped for people to read (article, preposition, colour, ...). */
export type DanglingWords = Record<string, string[]>;

export interface GenerationConfig {
  /** Live beams per image; 1 = greedy. */
  beamSize: number;
  /** Most words in a caption (not counting <start>/<end>). */
  maxLength: number;
  /** Exponent of the length normalisation: score = logProb / (words + 1)^lengthPenalty. */
  lengthPenalty: number;
  /** Hypotheses returned per image, best first; at most beamSize. */
  nBest: number;
  /** n of the no-repeated-ngram rule: no n-gram may occur twice; 0 turns the rule off. */
  noRepeatNgram: number;
  /** The decoding rules applied, by name. */
  rules: RuleName[];
  /** The word lists of the no-dangling-ending rule. */
  danglingWords: DanglingWords;
  /** Keep the attention weights of every word. */
  returnAttention: boolean;
  /**
   * An image's tags (src/encoder/tags.ts) are the caption words whose ImageNet classes' summed probability is at
   * least this, in (0, 1].
   */
  tagThreshold: number;
  /**
   * Guided decoding: at every step the probabilities of the image's tag words (and their plurals) are multiplied
   * by e^tagBonus and the distribution renormalised, so beams that name what the classifier sees rank higher.
   * 0 turns it off. Hypotheses are ranked by these guided log-probabilities; `logProb` stays the model's own.
   */
  tagBonus: number;
}

/** What a call (or a card) may set; anything left out comes from the next source down. */
export type GenerationOptions = Partial<GenerationConfig>;

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** The decoding fields a model card may set (all but the per-call returnAttention). */
const decodingFields = {
  beamSize: int(1, 100),
  maxLength: int(1, 500),
  lengthPenalty: z.number().finite().min(0),
  nBest: int(1, 100),
  noRepeatNgram: int(0, 100),
  rules: z.array(z.enum(RULE_NAMES)),
  danglingWords: z.record(z.array(z.string())),
  tagThreshold: z.number().finite().gt(0).max(1),
  tagBonus: z.number().finite().min(0).max(20),
};

/** The schema of a full config; messages name the field. */
export const generationConfigSchema = z
  .object({ ...decodingFields, returnAttention: z.boolean() })
  .strict()
  .superRefine((c, ctx) => {
    if (c.nBest > c.beamSize) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['nBest'], message: `${c.nBest} hypotheses need a beam of at least ${c.nBest}; the beam size is ${c.beamSize}` });
  });

/** A model card's `decoding` section: every field optional. */
export const cardDecodingSchema = z.object(decodingFields).partial().passthrough();
export type CardDecoding = z.infer<typeof cardDecodingSchema>;

/** The library defaults (src/decoder/generation-defaults.json). */
export const DEFAULT_GENERATION: Readonly<GenerationConfig> = Object.freeze({
  beamSize: DEFAULTS.beamSize,
  maxLength: DEFAULTS.maxLength,
  lengthPenalty: DEFAULTS.lengthPenalty,
  nBest: DEFAULTS.nBest,
  noRepeatNgram: DEFAULTS.noRepeatNgram,
  rules: DEFAULTS.rules as RuleName[],
  danglingWords: DEFAULTS.danglingWords as DanglingWords,
  returnAttention: false,
  tagThreshold: DEFAULTS.tagThreshold,
  tagBonus: DEFAULTS.tagBonus,
});

/**
 * The config a call runs with: each field from the call if set, else the card's `decoding`, else the defaults.
 * `nBest` and `returnAttention` are per call (a card may recommend nBest, never attention). Throws
 * INVALID_ARGUMENT naming the field when the result is not valid, and MODEL_CORRUPT when the card's section is.
 */
export function resolveGeneration(call: GenerationOptions = {}, cardDecoding?: unknown): GenerationConfig {
  let card: CardDecoding = {};
  if (cardDecoding !== undefined && cardDecoding !== null) {
    const parsed = cardDecodingSchema.safeParse(cardDecoding);
    if (!parsed.success) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `model card: invalid decoding section: ${formatIssues(parsed.error)}`, { subject: 'model card' });
    }
    card = parsed.data;
  }
  const pick = <K extends keyof GenerationConfig>(key: K): GenerationConfig[K] =>
    (call[key] !== undefined ? call[key] : key in card && (card as Record<string, unknown>)[key] !== undefined ? (card as Record<string, unknown>)[key] : DEFAULT_GENERATION[key]) as GenerationConfig[K];
  const config: GenerationConfig = {
    beamSize: pick('beamSize'),
    maxLength: pick('maxLength'),
    lengthPenalty: pick('lengthPenalty'),
    nBest: pick('nBest'),
    noRepeatNgram: pick('noRepeatNgram'),
    rules: [...pick('rules')],
    danglingWords: pick('danglingWords'),
    returnAttention: call.returnAttention ?? DEFAULT_GENERATION.returnAttention,
    tagThreshold: pick('tagThreshold'),
    tagBonus: pick('tagBonus'),
  };
  const checked = generationConfigSchema.safeParse(config);
  if (!checked.success) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `invalid decoding options: ${formatIssues(checked.error)}`, { subject: 'decoding options' });
  }
  return config;
}

/** The fields of a config that decide which captions come out (e.g. to group server requests into batches). */
export function generationKey(config: GenerationConfig): string {
  const { beamSize, maxLength, lengthPenalty, nBest, noRepeatNgram, rules, danglingWords, tagThreshold, tagBonus } = config;
  return JSON.stringify([beamSize, maxLength, lengthPenalty, nBest, noRepeatNgram, rules, danglingWords, tagThreshold, tagBonus]);
}

function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ');
}
