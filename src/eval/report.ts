/**
 * report.md of an evaluation: the metrics, the settings, and example images each with its references, the
 * model's caption and an attention strip (one small heat-map per word). Images go into <out>/examples/ and are
 * linked relatively, so the report renders in any Markdown viewer and the folder can be moved as a whole.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { loadOriginalRgb } from '../image/index.js';
import { renderAttentionHeatmap } from '../render/heatmap.js';
import { ENCODER_GEOMETRY } from '../encoder/geometry.js';
import { METRIC_NAMES, type MetricName } from '../metrics/index.js';
import type { Caption } from '../pipeline/captioner.js';
import type { EvaluationRecord } from './types.js';

export const EXAMPLES_DIR = 'examples';
/** Longer side of the example image and of each heat-map, in pixels. */
const EXAMPLE_SIDE = 224;
const HEATMAP_SIDE = 112;

export interface ReportExample {
  name: string;
  /** The image file (may be absent where only features are available: the example is then shown without images). */
  path: string;
  references: string[];
  caption: Caption;
  /** This image's own scores (the toolkit's per-image values). */
  scores: Record<MetricName, number>;
}

/**
 * `count` indices evenly spaced over [0, total), the first one 0: the same images for every run of a split,
 * whatever the model writes.
 */
export function pickExamples(total: number, count: number): number[] {
  const k = Math.min(total, count);
  return Array.from({ length: k }, (_, i) => Math.floor((i * total) / k));
}

export async function writeReport(out: string, record: EvaluationRecord, examples: ReportExample[]): Promise<string> {
  const lines: string[] = [];
  const title = `${record.dataset} ${record.split}: ${record.model.name ?? basename(record.model.dir)}, beam ${record.decoding.beamSize}`;
  lines.push(`# Evaluation — ${title}`, '');
  lines.push(
    `${record.images} images of the ${record.dataset} ${record.split} split (Karpathy), each scored against its ` +
      `${describeRefCount(examples)} reference captions with the COCO caption toolkit's metrics.`,
    '',
  );

  lines.push('## Metrics', '', '| metric | score |', '| --- | ---: |');
  for (const m of METRIC_NAMES) {
    const v = record.metrics[m];
    lines.push(`| ${m} | ${v === null ? 'n/a' : v.toFixed(4)} |`);
  }
  if (record.metrics.SPICE !== undefined) lines.push(`| SPICE | ${record.metrics.SPICE === null ? 'n/a' : record.metrics.SPICE.toFixed(4)} |`);
  lines.push('', `METEOR: ${meteorNote(record.meteor)}.`, '');

  lines.push('## Settings', '', '| setting | value |', '| --- | --- |');
  const settings: Array<[string, string]> = [
    ['model', `${record.model.name ?? '(unnamed)'} (\`${record.model.dir}\`)`],
    ['dataset / split', `${record.dataset} / ${record.split} (Karpathy)`],
    ['images', `${record.images} captioned of ${record.selected} selected${record.failed.length ? `, ${record.failed.length} failed` : ''}`],
    ['beam size', String(record.decoding.beamSize)],
    ['length penalty', String(record.decoding.lengthPenalty)],
    ['max length', `${record.decoding.maxLength} words`],
    ['n-gram block', record.decoding.noRepeatNgram ? `${record.decoding.noRepeatNgram}-grams` : 'off'],
    [
      'features',
      record.input.source === 'features'
        ? `feature store \`${record.input.featureStore}\` (encoder ${record.input.encoderSha256.slice(0, 12)}…)`
        : `encoder run on the images (${record.input.encoderSource}, ${record.input.encoderSha256.slice(0, 12)}…)`,
    ],
    ['batch size / threads', `${record.batchSize} / ${record.threads} (${record.cpus} CPUs)`],
    ['time', `${record.seconds.caption.toFixed(1)} s captioning, ${record.seconds.score.toFixed(1)} s scoring`],
    ['date', record.date],
  ];
  for (const [k, v] of settings) lines.push(`| ${k} | ${escapeCell(v)} |`);
  lines.push('');

  if (record.failed.length) {
    lines.push('## Failed images', '');
    for (const f of record.failed) lines.push(`- ${escapeText(f.name)}: ${f.error.code}: ${escapeText(f.error.message)}`);
    lines.push('');
  }

  if (examples.length) {
    lines.push(`## Examples`, '', `${examples.length} images evenly spaced through the split (the same ones in every run).`, '');
    await mkdir(join(out, EXAMPLES_DIR), { recursive: true });
    for (const [n, example] of examples.entries()) lines.push(...(await exampleSection(out, n + 1, example)));
  }

  const file = join(out, 'report.md');
  await writeFile(file, lines.join('\n'));
  return file;
}

async function exampleSection(out: string, n: number, example: ReportExample): Promise<string[]> {
  const stem = basename(example.name, extname(example.name));
  const { caption, scores } = example;
  const lines = [`### ${n}. ${escapeText(example.name)}`, ''];
  const haveImage = existsSync(example.path);
  if (haveImage) {
    const jpg = `${EXAMPLES_DIR}/${stem}.jpg`;
    await sharp(example.path)
      .rotate()
      .resize(EXAMPLE_SIDE, EXAMPLE_SIDE, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 85 })
      .toFile(join(out, jpg));
    lines.push(`![${escapeAlt(caption.text)}](${jpg})`, '');
  } else {
    lines.push(`_(image file not found: ${escapeText(example.path)})_`, '');
  }
  const cider = scores.CIDEr.toFixed(2);
  const bleu4 = scores['BLEU-4'].toFixed(2);
  lines.push(`**Model:** ${escapeText(caption.text)} — CIDEr ${cider}, BLEU-4 ${bleu4}`, '', 'References:', '');
  example.references.forEach((r, i) => lines.push(`${i + 1}. ${escapeText(r)}`));
  lines.push('');
  if (haveImage && caption.attention && caption.attention.length === caption.tokens.length) {
    const base = await loadOriginalRgb(example.path, HEATMAP_SIDE);
    const strip: string[] = [];
    for (const [i, word] of caption.tokens.entries()) {
      const png = `${EXAMPLES_DIR}/${stem}_${String(i).padStart(2, '0')}_${safeName(word)}.png`;
      await writeFile(join(out, png), await renderAttentionHeatmap(base, caption.attention[i], { word, grid: [...ENCODER_GEOMETRY.grid] }));
      strip.push(`![${escapeAlt(word)}](${png})`);
    }
    lines.push('Attention (where the model looked for each word):', '', strip.join(' '), '');
  }
  return lines;
}

function describeRefCount(examples: ReportExample[]): string {
  const counts = new Set(examples.map((e) => e.references.length));
  return counts.size === 1 ? String([...counts][0]) : 'its';
}

function meteorNote(method: EvaluationRecord['meteor']): string {
  return {
    jar: "the toolkit's meteor-1.5.jar (exact)",
    native: 'native TypeScript approximation (no synonyms or paraphrases; the jar was not available)',
    off: 'not computed',
  }[method];
}

/** Plain text in Markdown: characters that would start emphasis, links, HTML or code are escaped. */
function escapeText(s: string): string {
  return s.replace(/[\\`*_[\]<>#|]/g, (ch) => `\\${ch}`);
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function escapeAlt(s: string): string {
  return s.replace(/[[\]\\]/g, '');
}

function safeName(word: string): string {
  return word.replace(/[^\p{L}\p{N}-]+/gu, '_').slice(0, 40) || '_';
}
