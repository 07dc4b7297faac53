/**
 * A trained decoder directory (docs/formats.md): two ONNX graphs, the vocabulary and the model card.
 * Missing pieces are MODEL_NOT_FOUND, unreadable ones MODEL_CORRUPT, both naming the file.
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { Vocabulary } from '../text/vocabulary.js';
import { INIT_FILE, STEP_FILE } from './onnx-step-model.js';

export const VOCAB_FILE = 'vocab.json';
export const CARD_FILE = 'model-card.json';
export const MODEL_FILES = [INIT_FILE, STEP_FILE, VOCAB_FILE, CARD_FILE] as const;

/**
 * Written by the trainer; only `decoding` is read here. Everything else (architecture, config, data checksums,
 * epochs, metrics, date) is passed through for display.
 */
export interface ModelCard {
  name?: string;
  /** Recommended search settings, e.g. a length penalty tuned on val; used when a call does not set them. */
  decoding?: { beamSize?: number; maxLength?: number; lengthPenalty?: number; noRepeatNgram?: number };
  [key: string]: unknown;
}

export interface ModelDirContents {
  dir: string;
  vocabulary: Vocabulary;
  card: ModelCard;
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
  const missing: string[] = [];
  for (const file of MODEL_FILES) if (!(await stat(join(abs, file)).catch(() => undefined))?.isFile()) missing.push(file);
  if (missing.length) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_NOT_FOUND,
      `decoder model at ${abs} is incomplete: missing ${missing.join(', ')} (a model directory holds ${MODEL_FILES.join(', ')})`,
      { subject: abs },
    );
  }
  const vocabPath = join(abs, VOCAB_FILE);
  let vocabulary: Vocabulary;
  try {
    vocabulary = Vocabulary.fromJSON(await readJson(vocabPath));
  } catch (err) {
    if (err instanceof PixelInfoError && err.subject === vocabPath) throw err;
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${vocabPath}: ${(err as Error).message}`, { subject: vocabPath, cause: err });
  }
  const card = await readJson(join(abs, CARD_FILE));
  if (typeof card !== 'object' || card === null || Array.isArray(card)) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${join(abs, CARD_FILE)}: expected a JSON object`, { subject: abs });
  }
  return { dir: abs, vocabulary, card: card as ModelCard };
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${path}: not valid JSON (${(err as Error).message})`, { subject: path, cause: err });
  }
}
