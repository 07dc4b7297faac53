/**
 * captions.json (docs/formats.md, "Prepared captions"): a dataset's captions tokenised once, by the same
 * ptbTokenize the metrics use, plus the vocabulary built from the training split, so the Python trainer never
 * tokenises. Also computes the summary `pixel-info prepare` prints.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { ptbTokenize } from '../text/ptb.js';
import { SPECIALS, Vocabulary } from '../text/vocabulary.js';
import { readJsonFile, DATASET_FILE_ERRORS } from './datasets/read-json.js';
import { DATASET_NAMES, SPLITS, SPLIT_SCHEMES, isTrainingSplit, type Dataset, type Split } from './datasets/types.js';

export const CAPTIONS_FORMAT = 'pixel-info-captions';
export const CAPTIONS_VERSION = 1;
/** Share of training captions the default maxLength keeps whole. */
export const DEFAULT_LENGTH_COVERAGE = 0.99;

const sourceFile = z.object({ file: z.string(), md5: z.string().regex(/^[0-9a-f]{32}$/) });

export const captionsFileSchema = z.object({
  format: z.literal(CAPTIONS_FORMAT),
  version: z.literal(CAPTIONS_VERSION),
  dataset: z.enum(DATASET_NAMES),
  /** Added to the documented format: which split definition was used. */
  splits: z.enum(SPLIT_SCHEMES).optional(),
  /** The main annotation file (the Karpathy JSON, or Flickr8k.token.txt / captions_train2014.json for official splits). */
  source: sourceFile,
  /** Added: every annotation file read, the main one first. */
  sources: z.array(sourceFile).optional(),
  tokenizer: z.literal('ptb'),
  minCount: z.number().int().positive(),
  maxLength: z.number().int().positive(),
  specials: z.object({ pad: z.literal(0), start: z.literal(1), end: z.literal(2), unk: z.literal(3) }),
  vocab: z.array(z.string()),
  images: z.array(
    z.object({
      name: z.string(),
      split: z.enum(SPLITS),
      /** Added: the dataset's numeric image id, where it has one (COCO). */
      id: z.number().int().optional(),
      captions: z.array(z.object({ raw: z.string(), tokens: z.array(z.string()), ids: z.array(z.number().int()) })),
    }),
  ),
});
export type CaptionsFile = z.output<typeof captionsFileSchema>;

export interface LengthStats {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export interface PrepareSummary {
  dataset: string;
  splits: string;
  imagesPerSplit: Partial<Record<Split, number>>;
  captionsPerSplit: Partial<Record<Split, number>>;
  vocabSize: number;
  minCount: number;
  maxLength: number;
  /** True when maxLength came from the training lengths rather than the caller. */
  maxLengthIsDefault: boolean;
  /** Share of training captions no longer than maxLength. */
  trainCoverage: number;
  /** Captions (all splits) cut by maxLength. */
  truncatedCaptions: number;
  /** Captions with no token left after tokenisation (kept, with empty tokens). */
  emptyCaptions: number;
  /** Images without any caption. */
  imagesWithoutCaptions: number;
  /** Share of val tokens (before cutting) that map to <unk>; null without a val split. */
  valUnkFraction: number | null;
  trainLengths: LengthStats;
}

export interface PrepareOptions {
  minCount?: number;
  /** Default: the DEFAULT_LENGTH_COVERAGE percentile of training caption lengths. */
  maxLength?: number;
  /** md5 of each of dataset.sources, in the same order. */
  sourceMd5s: string[];
}

export function prepareCaptions(dataset: Dataset, opts: PrepareOptions): { captions: CaptionsFile; summary: PrepareSummary } {
  const minCount = opts.minCount ?? 5;
  if (opts.maxLength !== undefined && (!Number.isInteger(opts.maxLength) || opts.maxLength < 1)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `maxLength must be a positive integer, got ${opts.maxLength}`);
  }
  if (opts.sourceMd5s.length !== dataset.sources.length) {
    throw new PixelInfoError(ErrorCodes.INTERNAL, 'one md5 per source file is needed');
  }

  const tokenised = dataset.images.map((image) => image.captions.map((raw) => ptbTokenize(raw)));
  const trainTokens = tokenised.filter((_, i) => isTrainingSplit(dataset.images[i].split)).flat();
  if (trainTokens.length === 0) {
    throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${dataset.name}: the training split has no captions to build a vocabulary from`);
  }
  const vocab = Vocabulary.build(trainTokens, minCount);
  const trainLengths = lengthStats(trainTokens.map((t) => t.length));
  const maxLength = opts.maxLength ?? Math.max(1, percentile(sortedLengths(trainTokens), DEFAULT_LENGTH_COVERAGE));

  // Keys in the canonical SPLITS order, whatever order the images come in.
  const present = SPLITS.filter((split) => dataset.images.some((image) => image.split === split));
  const imagesPerSplit: Partial<Record<Split, number>> = Object.fromEntries(present.map((split) => [split, 0]));
  const captionsPerSplit: Partial<Record<Split, number>> = Object.fromEntries(present.map((split) => [split, 0]));
  let truncatedCaptions = 0;
  let emptyCaptions = 0;
  let imagesWithoutCaptions = 0;
  let valTokens = 0;
  let valUnk = 0;

  const images = dataset.images.map((image, i) => {
    imagesPerSplit[image.split] = (imagesPerSplit[image.split] ?? 0) + 1;
    captionsPerSplit[image.split] = (captionsPerSplit[image.split] ?? 0) + image.captions.length;
    if (image.captions.length === 0) imagesWithoutCaptions++;
    const captions = image.captions.map((raw, j) => {
      const tokens = tokenised[i][j];
      if (tokens.length === 0) emptyCaptions++;
      if (tokens.length > maxLength) truncatedCaptions++;
      if (image.split === 'val') {
        valTokens += tokens.length;
        for (const token of tokens) if (vocab.idOf(token) === SPECIALS.unk) valUnk++;
      }
      return { raw, tokens, ids: vocab.encode(tokens, maxLength) };
    });
    return { name: image.name, split: image.split, ...(image.id !== undefined ? { id: image.id } : {}), captions };
  });

  const sources = dataset.sources.map((file, k) => ({ file: basename(file), md5: opts.sourceMd5s[k] }));
  const captions: CaptionsFile = {
    format: CAPTIONS_FORMAT,
    version: CAPTIONS_VERSION,
    dataset: dataset.name,
    splits: dataset.splits,
    source: sources[0],
    sources,
    tokenizer: 'ptb',
    minCount,
    maxLength,
    specials: { ...SPECIALS },
    vocab: vocab.words,
    images,
  };
  const summary: PrepareSummary = {
    dataset: dataset.name,
    splits: dataset.splits,
    imagesPerSplit,
    captionsPerSplit,
    vocabSize: vocab.size,
    minCount,
    maxLength,
    maxLengthIsDefault: opts.maxLength === undefined,
    trainCoverage: trainTokens.filter((t) => t.length <= maxLength).length / trainTokens.length,
    truncatedCaptions,
    emptyCaptions,
    imagesWithoutCaptions,
    valUnkFraction: valTokens > 0 ? valUnk / valTokens : null,
    trainLengths,
  };
  return { captions, summary };
}

function sortedLengths(tokenised: string[][]): number[] {
  return tokenised.map((t) => t.length).sort((a, b) => a - b);
}

/** Nearest-rank percentile of an ascending list: the smallest value with at least `p` of the list at or below it. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1];
}

export function lengthStats(lengths: number[]): LengthStats {
  const sorted = [...lengths].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    mean: sorted.length ? sum / sorted.length : 0,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1] : 0,
  };
}

export function md5File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('md5');
    createReadStream(path)
      .on('error', (err) =>
        reject(new PixelInfoError(ErrorCodes.DATASET_NOT_FOUND, `${path}: ${err.message}`, { subject: path, cause: err })),
      )
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

/** Reads a captions.json back (for eval/score or checks), validating its shape and its vocabulary. */
export async function readPreparedCaptions(path: string): Promise<{ captions: CaptionsFile; vocab: Vocabulary }> {
  const captions = await readJsonFile(path, captionsFileSchema, DATASET_FILE_ERRORS);
  let vocab: Vocabulary;
  try {
    vocab = Vocabulary.fromJSON(captions.vocab);
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.DATASET_INVALID, `${path}: ${(err as Error).message}`, { subject: path, cause: err });
  }
  return { captions, vocab };
}
