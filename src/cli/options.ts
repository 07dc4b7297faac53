/** Options and parsers shared by commands; a bad value is a usage error (exit 2) naming the option. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_GENERATION, RULE_NAMES, type GenerationOptions, type RuleName } from '../decoder/generation.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { ENSEMBLE_COMBINES, type EnsembleCombine } from '../decoder/ensemble.js';
import { DEFAULT_MODEL, defaultModelDir, resolveModelSpec } from '../pipeline/models.js';

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

/** A probability: a number in [0, 1]. */
export function parseProbability(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`expected a number from 0 to 1, got "${value}"`);
  return n;
}

export function parseNonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a number >= 0, got "${value}"`);
  return n;
}

/** The decoding flags of `caption` and `eval`, all optional: what is not given comes from the model card, then the defaults. */
export interface GenerationFlags {
  beam?: number;
  nBest?: number;
  maxLength?: number;
  lengthPenalty?: number;
  ngramBlock?: number;
  rules?: RuleName[];
  tagThreshold?: number;
  tagBonus?: number;
}

function parseRules(value: string): RuleName[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(RULE_NAMES as readonly string[]).includes(n));
  if (unknown.length) throw new InvalidArgumentError(`unknown rule ${unknown.join(', ')} (rules: ${RULE_NAMES.join(', ')})`);
  return names as RuleName[];
}

/** Adds --beam, --max-length, --length-penalty, --ngram-block, --rules (and --n-best with `nBest`) to a command. */
export function addGenerationOptions(command: Command, { nBest = false } = {}): Command {
  const d = DEFAULT_GENERATION;
  const orCard = (fallback: unknown) => `(default: the model card's, else ${fallback})`;
  command
    .option('--beam <n>', `beam size; 1 = greedy ${orCard(d.beamSize)}`, parsePositiveInt)
    .option('--max-length <n>', `most words in a caption ${orCard(d.maxLength)}`, parsePositiveInt)
    .option('--length-penalty <alpha>', `rank by logProb / (words+1)^alpha; 0 = raw log-probability ${orCard(d.lengthPenalty)}`, parseNonNegativeNumber)
    .option('--ngram-block <n>', `no n-gram of n words may repeat in a caption; 0 = off ${orCard(d.noRepeatNgram)}`, parseNonNegativeInt)
    .option('--rules <names>', `decoding rules, comma-separated ${orCard(d.rules.join(','))}`, parseRules)
    .option('--tag-threshold <p>', `tags: the words whose ImageNet classes' summed probability is at least p ${orCard(d.tagThreshold)}`, parseTagThreshold)
    .option('--tag-bonus <b>', `guided decoding: multiply the probability of not-yet-written tag words by e^b at each step; 0 = off ${orCard(d.tagBonus)}`, parseTagBonus);
  if (nBest) command.option('--n-best <n>', `captions per image, best first, at most the beam size (default ${d.nBest})`, parsePositiveInt);
  return command;
}

/** The flags as GenerationOptions for resolveGeneration (undefined fields fall through to the card). */
export function generationOptionsFrom(flags: GenerationFlags): GenerationOptions {
  return {
    beamSize: flags.beam,
    nBest: flags.nBest,
    maxLength: flags.maxLength,
    lengthPenalty: flags.lengthPenalty,
    noRepeatNgram: flags.ngramBlock,
    rules: flags.rules,
    tagThreshold: flags.tagThreshold,
    tagBonus: flags.tagBonus,
  };
}

/** --tag-threshold: a probability in (0, 1]. */
function parseTagThreshold(value: string): number {
  const n = parseProbability(value);
  if (n === 0) throw new InvalidArgumentError(`expected a number above 0 and at most 1, got "${value}"`);
  return n;
}

/** --tag-bonus: a number from 0 to 20 (a factor e^b on probabilities). */
function parseTagBonus(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 20) throw new InvalidArgumentError(`expected a number from 0 to 20, got "${value}"`);
  return n;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected an integer >= 0, got "${value}"`);
  return n;
}

/** `--model` and the ensemble flags, as CaptionerOptions fields. */
export interface ModelFlags {
  model: string;
  ensembleCombine?: EnsembleCombine;
  ensembleWeights?: number[];
}

function parseWeights(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  const weights = parts.map(Number);
  if (parts.some((p) => p === '') || weights.some((w) => !Number.isFinite(w) || w < 0) || !weights.some((w) => w > 0)) {
    throw new InvalidArgumentError(`expected comma-separated numbers >= 0, not all 0, got "${value}"`);
  }
  return weights;
}

/**
 * `--model <spec>` (a directory, a shipped model's name, or a comma-separated ensemble; src/pipeline/models.ts),
 * `--ensemble-combine` and `--ensemble-weights`.
 */
export function addModelOptions(command: Command, description = 'decoder model'): Command {
  return command
    .option(
      '--model <spec>',
      `${description}: a directory, a shipped model's name (${DEFAULT_MODEL.split(',')[0]}), or several, comma-separated, as an ensemble (default: ${DEFAULT_MODEL}, or $PIXEL_INFO_MODEL_DIR)`,
      defaultModelDir(),
    )
    .addOption(
      new Option('--ensemble-combine <how>', 'ensembles: mean-prob (mixture of the members\' distributions) or mean-logprob (product of experts)')
        .choices([...ENSEMBLE_COMBINES])
        .default('mean-prob'),
    )
    .option('--ensemble-weights <w,...>', 'ensembles: one weight per member, in --model order (default: equal)', parseWeights);
}

/** The decoder fields of CaptionerOptions from the flags; the weights must be one per member. */
export function modelOptionsFrom(flags: ModelFlags): { modelDir: string; ensembleCombine?: EnsembleCombine; ensembleWeights?: number[] } {
  const members = resolveModelSpec(flags.model).length;
  if (flags.ensembleWeights && flags.ensembleWeights.length !== members) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `--ensemble-weights has ${flags.ensembleWeights.length} weights for ${members} model(s) in --model`);
  }
  return { modelDir: flags.model, ensembleCombine: flags.ensembleCombine, ensembleWeights: flags.ensembleWeights };
}
