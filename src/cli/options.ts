/** Options and parsers shared by commands; a bad value is a usage error (exit 2) naming the option. */
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_GENERATION, RULE_NAMES, type GenerationOptions, type RuleName } from '../decoder/generation.js';

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
    .option('--rules <names>', `decoding rules, comma-separated ${orCard(d.rules.join(','))}`, parseRules);
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
  };
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected an integer >= 0, got "${value}"`);
  return n;
}
