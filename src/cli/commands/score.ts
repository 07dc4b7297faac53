/**
 * `pixel-info score`: the COCO caption metrics of a results file against a references file, computed
 * like the COCO caption toolkit's COCOEvalCap with `params['image_id'] = cocoRes.getImgIds()`: the
 * images scored are those in the results, each against all of its reference captions. `--spice` adds SPICE (the
 * toolkit's jar, src/metrics/spice.ts).
 */
import { exitTwoOn } from '../usage-errors.js';
import { Option, type Command } from 'commander';
import type { z } from 'zod';
import { annotationsToReferences, cocoAnnotationsSchema, cocoResultsSchema, type CocoImageId } from '../../data/coco-format.js';
import { parseJsonText, readTextFile, type FileErrorCodes } from '../../data/datasets/read-json.js';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../../errors.js';
import { evaluateCaptions, METEOR_MODES, METRIC_NAMES, SPICE_FETCH_COMMAND, type MeteorMode } from '../../metrics/index.js';

interface ScoreCliOptions {
  refs: string;
  results: string;
  json?: boolean;
  meteor: MeteorMode;
  spice?: boolean;
}

const REFS_ERRORS: FileErrorCodes = { missing: ErrorCodes.FILE_NOT_FOUND, invalid: ErrorCodes.DATASET_INVALID };
const RESULTS_ERRORS: FileErrorCodes = { missing: ErrorCodes.FILE_NOT_FOUND, invalid: ErrorCodes.INVALID_ARGUMENT };

/** Errors caused by the command line or the files it names: exit code 2. */
const USAGE_ERRORS = new Set<ErrorCode>([
  ErrorCodes.FILE_NOT_FOUND,
  ErrorCodes.FILE_EMPTY,
  ErrorCodes.DATASET_INVALID,
  ErrorCodes.INVALID_ARGUMENT,
  ErrorCodes.PYTHON_UNAVAILABLE,
  ErrorCodes.MODEL_NOT_FOUND, // --spice without its jars
]);

export function registerScore(program: Command): void {
  program
    .command('score')
    .description('score captions with the COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr; SPICE with --spice), identical to pycocoevalcap')
    .requiredOption('--refs <file>', 'references: COCO captions annotation JSON {"images":[{"id"}],"annotations":[{"image_id","caption"}]}')
    .requiredOption('--results <file>', 'results: COCO results JSON [{"image_id","caption"}], one caption per image')
    .option('--json', 'print only {"BLEU-1":..,"BLEU-2":..,"BLEU-3":..,"BLEU-4":..,"METEOR":..,"ROUGE-L":..,"CIDEr":..} (and "SPICE" with --spice)')
    .addOption(
      new Option('--meteor <mode>', 'METEOR: jar = the toolkit\'s meteor-1.5.jar (Java), native = TypeScript approximation, auto = jar if found, off = skip (null)')
        .choices(METEOR_MODES)
        .default('auto'),
    )
    .option('--spice', `also SPICE, with the toolkit's spice-1.0.jar (Java; slow: CoreNLP parses every caption; needs \`${SPICE_FETCH_COMMAND}\` once)`)
    .action(exitTwoOn<ScoreCliOptions>('score', USAGE_ERRORS, runScore));
}

async function readJson<S extends z.ZodTypeAny>(file: string, schema: S, codes: FileErrorCodes): Promise<z.output<S>> {
  const text = await readTextFile(file, codes);
  if (text.trim().length === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, `${file}: file is empty`, { subject: file });
  return parseJsonText(text, file, schema, codes.invalid);
}

// Ids are compared strictly, as in the toolkit's dictionaries: 42 and "42" are different images.
const key = (id: CocoImageId) => JSON.stringify(id);

async function runScore(opts: ScoreCliOptions): Promise<void> {
  const refEntries = annotationsToReferences(await readJson(opts.refs, cocoAnnotationsSchema, REFS_ERRORS), opts.refs, REFS_ERRORS);
  const results = await readJson(opts.results, cocoResultsSchema, RESULTS_ERRORS);
  if (results.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${opts.results}: no results to score`, { subject: opts.results });

  const refs = new Map(refEntries.map((e) => [key(e.imageId), e.captions]));
  const candidates = new Map<string, string>();
  for (const r of results) {
    const k = key(r.image_id);
    if (candidates.has(k)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${opts.results}: image_id ${k} has more than one caption`, { subject: opts.results });
    if (!refs.has(k)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${opts.results}: image_id ${k} is not in ${opts.refs}`, { subject: opts.results });
    if (refs.get(k)!.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${opts.refs}: image_id ${k} has no reference captions`, { subject: opts.refs });
    candidates.set(k, r.caption);
  }

  const ev = await evaluateCaptions(refs, candidates, { meteor: opts.meteor, spice: opts.spice });
  const nullIfNaN = (v: number) => (Number.isNaN(v) ? null : v);
  if (opts.json) {
    // NaN (METEOR off) becomes null
    const scores: Record<string, number | null> = Object.fromEntries(METRIC_NAMES.map((m) => [m, nullIfNaN(ev.scores[m])]));
    if (ev.spice) scores.SPICE = nullIfNaN(ev.spice.score);
    console.log(JSON.stringify(scores));
    return;
  }
  const refCount = ev.tokenized.refs.reduce((n, r) => n + r.length, 0);
  const meteorNote = { jar: 'meteor-1.5.jar', native: 'native approximation, no synonyms/paraphrases', off: 'off' }[ev.meteorMethod];
  const rows = METRIC_NAMES.map((m) => {
    const v = ev.scores[m];
    return `${m.padEnd(8)} ${Number.isNaN(v) ? '-'.padStart(8) : v.toFixed(4).padStart(8)}${m === 'METEOR' ? `  (${meteorNote})` : ''}`;
  });
  if (ev.spice) rows.push(`${'SPICE'.padEnd(8)} ${Number.isNaN(ev.spice.score) ? '-'.padStart(8) : ev.spice.score.toFixed(4).padStart(8)}  (spice-1.0.jar)`);
  const ignored = refs.size - candidates.size;
  console.log(['metric      score', ...rows].join('\n'));
  console.log(
    `\n${candidates.size} images, ${refCount} reference captions` +
      (ignored > 0 ? ` (${ignored} reference images without a result not scored)` : ''),
  );
}
