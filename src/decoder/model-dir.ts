/**
 * A trained decoder directory (docs/formats.md): the vocabulary, the model card and the graphs of its
 * architecture (./registry.ts). Missing pieces are MODEL_NOT_FOUND, unreadable ones MODEL_CORRUPT, both naming
 * the file.
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { Vocabulary } from '../text/vocabulary.js';
import { architectureOf, type DecoderArchitecture, type DecoderLoadOptions, type LoadedDecoder } from './registry.js';
import { parseModelCard, type ModelCard } from './model-card.js';

export type { ModelCard } from './model-card.js';

export const VOCAB_FILE = 'vocab.json';
export const CARD_FILE = 'model-card.json';

export interface ModelDirContents {
  dir: string;
  vocabulary: Vocabulary;
  card: ModelCard;
  architecture: DecoderArchitecture;
}

export async function readModelDir(dir: string): Promise<ModelDirContents> {
  const abs = resolve(dir);
  const dirStat = await stat(abs).catch(() => undefined);
  if (!dirStat?.isDirectory()) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_NOT_FOUND,
      `no decoder model at ${abs}: the directory does not exist (train one under trainer/, or pass --model DIR / modelDir)`,
      { subject: abs },
    );
  }
  await requireFiles(abs, [VOCAB_FILE, CARD_FILE]);
  const cardPath = join(abs, CARD_FILE);
  // Validated against its schema: a card with a wrong type anywhere is MODEL_CORRUPT naming the field.
  const card = parseModelCard(await readJson(cardPath), cardPath);
  const architecture = architectureOf(card, cardPath);
  await requireFiles(abs, [VOCAB_FILE, CARD_FILE, ...architecture.files]);
  const vocabPath = join(abs, VOCAB_FILE);
  let vocabulary: Vocabulary;
  try {
    vocabulary = Vocabulary.fromJSON(await readJson(vocabPath));
  } catch (err) {
    if (err instanceof PixelInfoError && err.subject === vocabPath) throw err;
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${vocabPath}: ${(err as Error).message}`, { subject: vocabPath, cause: err });
  }
  return { dir: abs, vocabulary, card, architecture };
}

/** The decoder of a model directory, loaded by its architecture. */
export function loadDecoder(model: ModelDirContents, options: DecoderLoadOptions = {}): Promise<LoadedDecoder> {
  // int8 with the card's calibrated input ranges (batch-independent captions), when it has them
  const int8Ranges = options.int8Ranges ?? model.card.quantization?.int8DecoderCalibration?.ranges;
  return model.architecture.load(model.dir, model.vocabulary.size, { ...options, int8Ranges });
}

async function requireFiles(dir: string, files: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const file of files) if (!(await stat(join(dir, file)).catch(() => undefined))?.isFile()) missing.push(file);
  if (missing.length) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_NOT_FOUND,
      `decoder model at ${dir} is incomplete: missing ${missing.join(', ')} (this model directory holds ${files.join(', ')})`,
      { subject: dir },
    );
  }
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path}: not valid JSON (${(err as Error).message})`, { subject: path, cause: err });
  }
}
