/**
 * The model id stored with every caption (`LibraryEntry.model`): the model card's name and the first 12 hex
 * digits of a SHA-256 over the model directory's files (card, vocabulary and graphs, by name, in order; with the
 * fine-tuned encoder file when the card names one, `encoder.finetuned.file`), plus
 * `+int8` when the decoder runs with int8 weights and `+int8enc` when the encoder does (each choice resolved as the
 * Captioner resolves it) (its captions may differ). The same files give the same id on
 * every machine, so a worker can skip an image that the same model already captioned. An ensemble's id is its
 * members' ids joined by commas, in order.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CARD_FILE, readModelDir, VOCAB_FILE } from '../decoder/model-dir.js';
import { finetunedEncoderOf } from '../decoder/model-card.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { resolveInt8Decoder, type Int8Choice } from '../decoder/precision.js';
import { resolveEncoderPrecision, type EncoderPrecisionChoice } from '../encoder/int8.js';
import { resolveModelSpec } from '../pipeline/models.js';

export async function modelIdOf(
  modelSpec: string | readonly string[],
  options: { int8Decoder?: Int8Choice; encoderPrecision?: EncoderPrecisionChoice } = {},
): Promise<string> {
  // An ensemble (src/pipeline/models.ts): its members' ids, in order, joined by commas.
  const ids: string[] = [];
  for (const dir of resolveModelSpec(modelSpec)) ids.push(await oneModelId(dir, options));
  return ids.join(',');
}

async function oneModelId(modelDir: string, options: { int8Decoder?: Int8Choice; encoderPrecision?: EncoderPrecisionChoice }): Promise<string> {
  const model = await readModelDir(modelDir);
  // A fine-tuned encoder is part of the model: its features are what the decoder reads.
  const finetuned = finetunedEncoderOf(model.card);
  const files = [...new Set([CARD_FILE, VOCAB_FILE, ...model.architecture.files, ...(finetuned ? [finetuned.file] : [])])].sort();
  const hash = createHash('sha256');
  for (const file of files) {
    const path = join(model.dir, file);
    const size = await stat(path).then(
      (s) => s.size,
      (err) => {
        throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `decoder model at ${model.dir} is incomplete: missing ${file}`, { subject: path, cause: err });
      },
    );
    hash.update(`${file}\0${size}\0`); // name and length: file boundaries are unambiguous
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  }
  const name = typeof model.card.name === 'string' && model.card.name ? model.card.name : basename(model.dir);
  // a fine-tuned encoder always runs in fp32 (ImageEncoder.load with modelFile)
  const int8Encoder = !finetuned && (await resolveEncoderPrecision(options.encoderPrecision)) === 'int8';
  return `${name}@${hash.digest('hex').slice(0, 12)}${resolveInt8Decoder(options.int8Decoder, model.card) ? '+int8' : ''}${int8Encoder ? '+int8enc' : ''}`;
}

/**
 * The matcher id stored with every image embedding: the matcher card's name (else the folder's) and the first
 * 12 hex digits of a SHA-256 over its files (docs/formats.md, "Matcher model directory"). Embeddings of two
 * matchers live in different spaces: a search compares only those of the matcher that embedded the query.
 */
export async function matcherIdOf(matcherDir: string): Promise<string> {
  const files = ['image.onnx', 'model-card.json', 'text.onnx', 'vocab.json'];
  const hash = createHash('sha256');
  let name = basename(matcherDir);
  for (const file of files) {
    const path = join(matcherDir, file);
    hash.update(`${file}\0${(await stat(path)).size}\0`);
    const chunks: Buffer[] = [];
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      if (file === 'model-card.json') chunks.push(chunk as Buffer);
    }
    if (file === 'model-card.json') {
      const card = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name?: unknown };
      if (typeof card.name === 'string' && card.name) name = card.name;
    }
  }
  return `${name}@${hash.digest('hex').slice(0, 12)}`;
}
