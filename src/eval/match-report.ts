/**
 * What `pixel-info eval-match` prints and writes: a plain-text table for stdout, and with --out, metrics.json (the
 * MatchEvaluationRecord) and report.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeJsonAtomic } from '../data/coco-format.js';
import type { MatchEvaluationRecord, TauResult } from './match.js';
import type { RecallScores } from './match-metrics.js';

const f1 = (v: number) => v.toFixed(1);
const tauText = (t: TauResult | null | undefined) => (t && t.tauB100 !== null ? f1(t.tauB100) : '-');
const pad = (s: string, n: number) => s.padStart(n);

function publishedLine(record: MatchEvaluationRecord): string {
  const a = record.agreement!;
  return Object.entries(a.published.values)
    .map(([k, v]) => `${k} ${f1(v)}`)
    .join(', ');
}

/** The human-readable summary printed on stdout. */
export function formatMatchTable(record: MatchEvaluationRecord): string {
  const r = record.retrieval;
  const lines: string[] = [];
  lines.push(
    `${record.dataset} ${record.split}: ${r.images} images, ${r.texts} captions; matcher ${record.matcher.name} (D=${record.matcher.embeddingDim}, ` +
      `calibration a=${record.matcher.calibration.a.toFixed(3)} b=${record.matcher.calibration.b.toFixed(3)})`,
  );
  if (r.skippedImages.length) lines.push(`left out ${r.skippedImages.length} images without features (e.g. ${r.skippedImages[0].name}: ${r.skippedImages[0].error.code})`);
  lines.push('', `${'retrieval (%)'.padEnd(16)} ${pad('R@1', 6)} ${pad('R@5', 6)} ${pad('R@10', 6)} ${pad('medr', 6)} ${pad('mean r', 8)}`);
  const row = (label: string, s: RecallScores) =>
    `${label.padEnd(16)} ${pad(f1(s.r1), 6)} ${pad(f1(s.r5), 6)} ${pad(f1(s.r10), 6)} ${pad(String(s.medianRank), 6)} ${pad(f1(s.meanRank), 8)}`;
  lines.push(row('text -> image', r.textToImage), row('image -> text', r.imageToText), `rsum ${f1(r.rsum)}`);

  const a = record.agreement;
  lines.push('');
  if (!a) lines.push('agreement with people: no CrowdFlowerAnnotations.txt for this dataset');
  else {
    lines.push(
      `agreement with people: CrowdFlower, ${a.used} rows of ${a.selected} selected (${a.rows} in the file), ${a.images} images; ` +
        `skipped ${a.skipped.missingImage} (image missing), ${a.skipped.missingCaption} (caption missing)`,
    );
    const line = (label: string, all: string, outside: string) => `${label.padEnd(24)} ${pad(all, 8)}   ${pad(outside, 13)}`;
    lines.push(line('Kendall tau-b x100', 'all rows', 'outside train'));
    lines.push(line('matcher score', tauText(a.matcher), tauText(a.outsideTrain.matcher)));
    lines.push(line('decoder likelihood', tauText(a.likelihood), tauText(a.outsideTrain.likelihood)));
    lines.push(line('rows', String(a.used), String(a.outsideTrain.rows)));
    if (a.meanLogProb !== null) lines.push(`mean per-token log-probability of the judged captions: ${a.meanLogProb.toFixed(3)}`);
    lines.push(`published (${a.published.citation}): ${publishedLine(record)}`);
  }

  const c = record.calibration;
  lines.push('');
  lines.push(
    `calibration on ${record.split}: ${c.pairs} pairs (${c.positives} own captions, ${c.randomNegatives} random and ${c.hardNegatives} hard negatives, seed ${c.seed})`,
  );
  lines.push('score bin    count  mean score  observed');
  for (const b of c.bins) {
    lines.push(`${b.lo.toFixed(1)}-${b.hi.toFixed(1)}  ${pad(String(b.count), 8)}  ${pad(b.meanScore === null ? '-' : b.meanScore.toFixed(3), 10)}  ${pad(b.rate === null ? '-' : b.rate.toFixed(3), 8)}`);
  }
  lines.push(`ECE ${c.ece.toFixed(4)} (mean score ${c.meanScore.toFixed(3)}, observed rate ${c.rate.toFixed(3)})`);
  lines.push('', `${record.seconds.total.toFixed(1)} s`);
  return lines.join('\n');
}

/** report.md */
export function formatMatchMarkdown(record: MatchEvaluationRecord): string {
  const r = record.retrieval;
  const m = record.matcher;
  const out: string[] = [];
  out.push(`# Matcher evaluation: ${m.name} on ${record.dataset} ${record.split}`, '');
  out.push(
    `Matcher \`${m.dir}\` (embedding size ${m.embeddingDim}; calibration logit = ${m.calibration.a.toFixed(4)} · cosine ${m.calibration.b < 0 ? '−' : '+'} ${Math.abs(m.calibration.b).toFixed(4)}` +
      `${m.calibration.fittedOn ? `, fitted on ${m.calibration.fittedOn}` : ''}). Features: ${record.input.source === 'features' ? `store \`${record.input.featureStore}\`` : 'the encoder run on the images'} ` +
      `(${record.input.encoderSource}, ${record.input.encoderSha256.slice(0, 12)}…).${record.settings.limit !== null ? ` Limited to ${record.settings.limit} images.` : ''}`,
    '',
  );
  out.push(`## Retrieval`, '');
  out.push(
    `${r.images} images and their ${r.texts} captions, every image against every caption (VSE++ protocol; recall in percent; a hit for image → text is any of the image's captions; ties count against the query).`,
    '',
  );
  out.push('| direction | R@1 | R@5 | R@10 | median rank | mean rank |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [label, s] of [['text → image', r.textToImage], ['image → text', r.imageToText]] as const) {
    out.push(`| ${label} | ${f1(s.r1)} | ${f1(s.r5)} | ${f1(s.r10)} | ${s.medianRank} | ${f1(s.meanRank)} |`);
  }
  out.push('', `rsum ${f1(r.rsum)}.`);
  if (r.skippedImages.length) out.push('', `Left out (no features): ${r.skippedImages.map((s) => `${s.name} (${s.error.code})`).join(', ')}.`);
  out.push('');

  out.push('## Agreement with people (Flickr8k CrowdFlower)', '');
  const a = record.agreement;
  if (!a) out.push('No `CrowdFlowerAnnotations.txt` for this dataset.', '');
  else {
    out.push(
      `Kendall tau-b × 100 of each score against the fraction of workers who said the caption describes the image (\`${a.file}\`). ` +
        `${a.used} rows scored of ${a.selected} selected (${a.rows} in the file; skipped: ${a.skipped.missingImage} with the image missing, ${a.skipped.missingCaption} with the caption id missing from Flickr8k.token.txt), ${a.images} images. ` +
        `The decoder likelihood is the mean per-token log-probability of the caption (and <end>) given the image under the captioning decoder${record.decoder ? ` \`${record.decoder.dir}\`` : ''}, teacher-forced.`,
      '',
    );
    out.push('| score | tau-b × 100, all rows | tau-b × 100, image and caption source outside train |', '| --- | ---: | ---: |');
    out.push(`| matcher score | ${tauText(a.matcher)} | ${tauText(a.outsideTrain.matcher)} |`);
    out.push(`| decoder likelihood | ${a.likelihood ? tauText(a.likelihood) : 'not run'} | ${a.outsideTrain.likelihood ? tauText(a.outsideTrain.likelihood) : 'not run'} |`);
    out.push(`| rows | ${a.used} | ${a.outsideTrain.rows} |`);
    out.push('', `Published on the same file (${a.published.citation}):`, '');
    out.push(`| ${Object.keys(a.published.values).join(' | ')} |`, `| ${Object.keys(a.published.values).map(() => '---:').join(' | ')} |`);
    out.push(`| ${Object.values(a.published.values).map(f1).join(' | ')} |`, '');
  }

  const c = record.calibration;
  out.push('## Calibration', '');
  out.push(
    `${c.pairs} labelled pairs on ${record.split}: each image's own captions (label 1) and as many captions of other images of the split (label 0), ` +
      `${c.randomNegatives} drawn at random and ${c.hardNegatives} hard negatives (the other captions the matcher ranks highest for the image), seed ${c.seed} ` +
      '(`buildCalibrationPairs` in `src/eval/match-metrics.ts`).',
    '',
  );
  out.push('| score bin | pairs | mean score | observed rate |', '| --- | ---: | ---: | ---: |');
  for (const b of c.bins) out.push(`| ${b.lo.toFixed(1)}–${b.hi.toFixed(1)} | ${b.count} | ${b.meanScore === null ? '–' : b.meanScore.toFixed(3)} | ${b.rate === null ? '–' : b.rate.toFixed(3)} |`);
  out.push('', `Expected calibration error ${c.ece.toFixed(4)} (mean score ${c.meanScore.toFixed(3)}, observed rate ${c.rate.toFixed(3)}).`, '');
  out.push(`${record.seconds.total.toFixed(1)} s on ${record.settings.cpus} CPUs, ${record.date}.`, '');
  return out.join('\n');
}

/** Writes metrics.json and report.md into `dir` (created). */
export async function writeMatchOutputs(dir: string, record: MatchEvaluationRecord): Promise<{ metrics: string; report: string }> {
  const out = resolve(dir);
  await mkdir(out, { recursive: true });
  const files = { metrics: join(out, 'metrics.json'), report: join(out, 'report.md') };
  await writeJsonAtomic(files.metrics, record);
  await writeFile(files.report, formatMatchMarkdown(record));
  return files;
}
