/**
 * The int8 decoder's quality gate: the same split decoded with fp32 and with int8 decoder weights, scored with the
 * COCO metrics; it passes when int8 loses at most INT8_MAX_CIDER_DROP CIDEr. `pixel-info eval --int8-gate` runs it
 * (select on val, never test), `--write-card` records it in the model card's `quantization.int8Decoder`, which is
 * what turns int8 on by default (src/decoder/precision.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CARD_FILE } from '../decoder/model-dir.js';
import { parseModelCard, type CocoScores, type Int8Gate } from '../decoder/model-card.js';
import { INT8_MAX_CIDER_DROP } from '../decoder/precision.js';
import { evaluateModel, type EvaluateOptions, type EvaluationRun } from './evaluate.js';

export interface Int8GateRun {
  gate: Required<Pick<Int8Gate, 'passed' | 'maxCiderDrop' | 'dataset' | 'split' | 'images' | 'ciderDrop' | 'identicalCaptions' | 'decoding' | 'date'>> & Int8Gate;
  fp32: EvaluationRun;
  int8: EvaluationRun;
}

/** The run's metrics as the card stores them (a metric turned off, such as METEOR, is left out). */
function scores(run: EvaluationRun): CocoScores {
  return Object.fromEntries(Object.entries(run.record.metrics).filter(([, v]) => v !== null));
}

/** Evaluates `options` twice, into `<out>/fp32` and `<out>/int8`. */
export async function runInt8Gate(options: Omit<EvaluateOptions, 'int8Decoder'>): Promise<Int8GateRun> {
  const fp32 = await evaluateModel({ ...options, out: join(options.out, 'fp32'), int8Decoder: false });
  const int8 = await evaluateModel({ ...options, out: join(options.out, 'int8'), int8Decoder: true });
  const captions = async (run: EvaluationRun) =>
    new Map((JSON.parse(await readFile(run.files.results, 'utf8')) as Array<{ image_id: unknown; caption: string }>).map((r) => [JSON.stringify(r.image_id), r.caption]));
  const [a, b] = [await captions(fp32), await captions(int8)];
  let identical = 0;
  for (const [id, text] of a) if (b.get(id) === text) identical++;
  const ciderDrop = (fp32.record.metrics.CIDEr ?? 0) - (int8.record.metrics.CIDEr ?? 0);
  const d = fp32.record.decoding;
  return {
    fp32,
    int8,
    gate: {
      passed: ciderDrop <= INT8_MAX_CIDER_DROP,
      maxCiderDrop: INT8_MAX_CIDER_DROP,
      dataset: options.dataset,
      split: options.split,
      images: fp32.record.images,
      fp32: scores(fp32),
      int8: scores(int8),
      ciderDrop,
      identicalCaptions: identical,
      decoding: `beam ${d.beamSize}, length penalty ${d.lengthPenalty}, max ${d.maxLength} words, rules ${d.rules.join(' ')}`,
      date: new Date().toISOString(),
    },
  };
}

/** Records a gate in `<modelDir>/model-card.json` (quantization.int8Decoder), keeping everything else. */
export async function writeInt8Gate(modelDir: string, gate: Int8Gate): Promise<void> {
  const path = join(modelDir, CARD_FILE);
  const card = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  parseModelCard(card, path);
  card.quantization = { ...(card.quantization as object | undefined), int8Decoder: gate };
  await writeFile(path, `${JSON.stringify(card, null, 1)}\n`);
}
