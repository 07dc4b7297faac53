/**
 * `pixel-info match`: how well sentences describe images, with the image–text matcher (src/match): one image and
 * its sentences, or a TSV file of (image, sentence) pairs. Each image is read and encoded once, however many
 * sentences it has; a bad line or image is an error record and the rest go on.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Captioner, defaultMatcherDir, defaultModelDir } from '../../pipeline/captioner.js';
import type { MatchScore } from '../../match/types.js';
import { asPixelInfoError, ErrorCodes, PixelInfoError } from '../../errors.js';
import { parsePositiveInt } from '../options.js';

interface MatchCliOptions {
  pairs?: string;
  json?: boolean;
  matcher: string;
  model: string;
  threads?: number;
}

/** One line of output: a score, or why there is none. */
export type MatchRecord =
  | { line?: number; image: string; text: string; score: number; logit: number; cosine: number }
  | { line?: number; image: string | null; text: string | null; error: { code: string; message: string } };

/** A pair from the command line or the TSV file (or a line of it that is not a pair). */
type Pair = { line?: number; image: string; text: string } | { line: number; image: null; text: null; error: PixelInfoError };

export function registerMatch(program: Command): void {
  program
    .command('match')
    .description('score how well sentences describe images (0..1), with the image–text matcher model')
    .argument('[image]', 'an image file')
    .argument('[sentences...]', 'sentences to score against the image (quote each one)')
    .option('--pairs <file>', 'a TSV file of pairs instead: one "image-path<TAB>sentence" per line (paths relative to the current directory)')
    .option('--json', 'print one JSON object per pair and line: {"image", "text", "score", "logit", "cosine"} or {"image", "text", "error": {"code", "message"}} (with --pairs also "line")')
    .option('--matcher <dir>', 'matcher model directory', defaultMatcherDir())
    .option('--model <dir>', 'decoder model directory (loaded with the encoder)', defaultModelDir())
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .action(async (image: string | undefined, sentences: string[], opts: MatchCliOptions, command: Command) => {
      if (opts.pairs && image !== undefined) command.error('error: give either --pairs FILE or an image and sentences, not both', { exitCode: 2 });
      if (!opts.pairs && (image === undefined || sentences.length === 0)) {
        command.error('error: give an image and at least one sentence (pixel-info match photo.jpg "a dog runs"), or --pairs FILE.tsv', { exitCode: 2 });
      }
      const pairs: Pair[] = opts.pairs ? await readPairs(opts.pairs) : sentences.map((text) => ({ image: image!, text }));
      const captioner = await Captioner.load({ modelDir: opts.model, matcherDir: opts.matcher, threads: opts.threads });
      let records: MatchRecord[];
      try {
        records = await scoreAll(captioner, pairs);
      } finally {
        await captioner.release();
      }
      for (const record of records) {
        if (opts.json) console.log(JSON.stringify(record));
        else if ('error' in record) console.error(`pixel-info match: ${where(record)}${record.error.code}: ${record.error.message}`);
        else console.log(`${record.score.toFixed(3)}\t${record.image}\t${record.text}`);
      }
      process.exitCode = records.some((r) => 'error' in r) ? 1 : 0;
    });
}

/** Scores in the order of `pairs`; each distinct image is encoded once, with all its sentences in one call. */
export async function scoreAll(captioner: Captioner, pairs: readonly Pair[]): Promise<MatchRecord[]> {
  const records: MatchRecord[] = new Array(pairs.length);
  const byImage = new Map<string, number[]>();
  pairs.forEach((pair, i) => {
    if (pair.image === null) records[i] = { line: pair.line, image: null, text: null, error: pair.error.toJSON() };
    else byImage.set(pair.image, [...(byImage.get(pair.image) ?? []), i]);
  });
  for (const [image, indices] of byImage) {
    let scores: MatchScore[] | undefined;
    let error: PixelInfoError | undefined;
    try {
      scores = await captioner.match(image, indices.map((i) => pairs[i].text!));
    } catch (err) {
      error = asPixelInfoError(err, image);
      // A missing or broken model fails every pair alike: that is the command's error, not a line's.
      if (error.code === ErrorCodes.MODEL_NOT_FOUND || error.code === ErrorCodes.MODEL_CORRUPT || error.code === ErrorCodes.INTERNAL) throw error;
    }
    indices.forEach((i, k) => {
      const { line, text } = pairs[i] as { line?: number; image: string; text: string };
      const at = line === undefined ? {} : { line };
      records[i] = scores
        ? { ...at, image, text, score: scores[k].score, logit: scores[k].logit, cosine: scores[k].cosine }
        : { ...at, image, text, error: error!.toJSON() };
    });
  }
  return records;
}

/** The pairs of a TSV file: "image<TAB>sentence" per line (the sentence is everything after the first TAB); blank lines are skipped. */
export async function readPairs(file: string): Promise<Pair[]> {
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (err) {
    const e = asPixelInfoError(err, file);
    throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `pairs file ${file} does not exist`, { subject: file, cause: err }) : e;
  }
  const pairs: Pair[] = [];
  content.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    if (!raw.trim()) return;
    const tab = raw.indexOf('\t');
    const image = tab < 0 ? '' : raw.slice(0, tab).trim();
    if (tab < 0 || !image) {
      const why = tab < 0 ? 'no TAB' : 'no image path before the TAB';
      pairs.push({ line, image: null, text: null, error: new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${file} line ${line}: expected "image-path<TAB>sentence" (${why})`, { subject: file }) });
      return;
    }
    pairs.push({ line, image, text: raw.slice(tab + 1) });
  });
  return pairs;
}

function where(record: MatchRecord): string {
  const parts = [record.line !== undefined ? `line ${record.line}` : undefined, record.image ?? undefined].filter(Boolean);
  return parts.length ? `${parts.join(': ')}: ` : '';
}
