/**
 * `pixel-info caption`: captions for image files, folders and glob patterns, as text, JSON, JSONL or CSV, on
 * stdout or (`--out FILE`) in a file that a killed run can `--resume` (../caption-output.ts).
 */
import type { EncoderPrecisionChoice } from '../../encoder/int8.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { Captioner, defaultMatcherDir, isCaptionFailure, resolveModelSpec, type CaptionOutcome, type CaptionResult } from '../../pipeline/captioner.js';
import type { MatchOptions } from '../../pipeline/core.js';
import { expandInputs } from '../../pipeline/inputs.js';
import { readModelDir } from '../../decoder/model-dir.js';
import { resolveGeneration } from '../../decoder/generation.js';
import { csvRow } from '../../pipeline/format.js';
import { ALT_TEXT_MAX, toAltText } from '../../text/alt-text.js';
import { renderAttentionHeatmap } from '../../render/heatmap.js';
import { loadOriginalRgb } from '../../image/index.js';
import { asPixelInfoError, ErrorCodes, PixelInfoError } from '../../errors.js';
import { createProgress } from '../progress.js';
import { CaptionOutputFile, fileHash, type FileRecord, type OutputFormat } from '../caption-output.js';
import { addGenerationOptions, addModelOptions, generationOptionsFrom, modelOptionsFrom, parsePositiveInt, parseProbability, type GenerationFlags, type ModelFlags } from '../options.js';

/** More images than this get a progress bar. */
const PROGRESS_THRESHOLD = 3;
/** Heat-maps of big photos are drawn at most this many pixels on the longer side. */
const HEATMAP_MAX_SIDE = 1024;

interface CaptionCliOptions extends GenerationFlags, ModelFlags {
  /** undefined: the default ('auto', src/decoder/precision.ts). */
  int8Decoder?: boolean;
  encoderPrecision: EncoderPrecisionChoice;
  json?: boolean;
  jsonl?: boolean;
  csv?: boolean;
  altText?: boolean;
  altTextMinConfidence?: number;
  rerank: 'score' | 'match';
  /** A directory, or false with --no-matcher; undefined: the default matcher when it exists. */
  matcher?: string | false;
  attentionDir?: string;
  batchSize: number;
  threads?: number;
  progress: boolean;
  out?: string;
  resume?: boolean;
  tags?: boolean;
}

export function registerCaption(program: Command): void {
  const formats = ['json', 'jsonl', 'csv'];
  const format = (name: string, description: string) => new Option(`--${name}`, description).conflicts(formats.filter((f) => f !== name));
  const command = addModelOptions(
    program
      .command('caption')
      .description('describe images in words (ResNet50 features + attention LSTM decoder, beam search)')
      .argument('<inputs...>', 'image files, folders (searched recursively for images) or glob patterns such as "photos/**/*.jpg"'),
  );
  addGenerationOptions(command, { nBest: true })
    .addOption(
      format(
        'json',
        'print a JSON array: [{"file", "captions": [{"text", "score", "logProb", "confidence"}], "tags": [{"word", "probability", "classes": [{"index", "label", "probability"}]}]} | {"file", "error": {"code", "message"}}] ("confidence" with a matcher)',
      ),
    )
    .addOption(format('jsonl', 'print one JSON object per image and line, as images are done'))
    .addOption(format('csv', 'print CSV: file,caption,score (one row per caption; failures on stderr); with --tags a fourth column, tags'))
    .option('--tags', 'text and CSV output: add each image\'s ImageNet-guided tags ("cat 0.99"; --json and --jsonl always have "tags")')
    .option('--alt-text', `write captions as alt text: sentence case, final period, at most ${ALT_TEXT_MAX} characters`)
    .option(
      '--alt-text-min-confidence <p>',
      'with --alt-text: a caption whose matcher confidence is below p (0..1) is written as "" (empty alt text: better none than a wrong one); --json/--jsonl say why in "emptyReason"',
      parseProbability,
    )
    .addOption(
      new Option('--rerank <order>', 'order of the n-best list: "score" (the decoder\'s) or "match" (highest matcher confidence first; use with --n-best > 1)')
        .choices(['score', 'match'])
        .default('score'),
    )
    .option('--matcher <dir>', 'image–text matcher model directory, for "confidence" (default: models/flickr8k-match when present)')
    .option('--no-matcher', 'load no matcher: no confidence')
    .option('--attention-dir <dir>', 'write a heat-map PNG per word of the best caption: <image-stem>_<index>_<word>.png')
    .option('--batch-size <n>', 'images per encoder/decoder batch', parsePositiveInt, 8)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--int8-decoder', 'int8 decoder weights even where the model card has no passed int8 gate')
    .option('--no-int8-decoder', 'fp32 decoder weights (default: int8 when the model card records that int8 passed its val quality gate)')
    .addOption(new Option('--encoder-precision <p>', 'encoder graph: fp32, int8, or auto = int8 where the int8 encoder passed its quality gate on this machine type (src/encoder/int8.ts)').choices(['auto', 'fp32', 'int8']).default('auto'))
    .option('--no-progress', 'no progress bar')
    .option('--out <file>', 'write the output to FILE instead of stdout (records then carry each input\'s sha256; --json: FILE is written whole at the end)')
    .option('--resume', 'with --out and --jsonl or --json: keep the records a previous (killed) run wrote to FILE for unchanged inputs, caption only the rest')
    .action(async (inputs: string[], opts: CaptionCliOptions, command: Command) => {
      if (opts.resume && !opts.out) command.error('error: --resume needs --out FILE, the output of the run to resume', { exitCode: 2 });
      if (opts.resume && !opts.json && !opts.jsonl) command.error('error: --resume needs --jsonl or --json (records it can recognise)', { exitCode: 2 });
      if (opts.altTextMinConfidence !== undefined && !opts.altText) command.error('error: --alt-text-min-confidence needs --alt-text', { exitCode: 2 });
      const needsMatcher = opts.altTextMinConfidence !== undefined ? '--alt-text-min-confidence' : opts.rerank === 'match' ? '--rerank match' : undefined;
      if (needsMatcher && opts.matcher === false) command.error(`error: ${needsMatcher} needs the matcher; drop --no-matcher`, { exitCode: 2 });
      const { files, empty } = await expandInputs(inputs);
      for (const e of empty) console.error(`pixel-info caption: no images found in ${e}`);
      if (files.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `no images to caption in ${inputs.join(', ')}`);

      // Bad decoding flags are a usage error, found before the models load.
      const models = modelOptionsFrom(opts);
      const { card } = await readModelDir(resolveModelSpec(opts.model)[0]);
      let generation;
      try {
        generation = resolveGeneration(
          { ...generationOptionsFrom(opts), returnAttention: Boolean(opts.attentionDir) },
          card.decoding,
        );
      } catch (err) {
        if (err instanceof PixelInfoError && err.code === ErrorCodes.INVALID_ARGUMENT) command.error(`error: ${err.message}`, { exitCode: 2 });
        throw err;
      }
      const format: OutputFormat = opts.json ? 'json' : opts.jsonl ? 'jsonl' : opts.csv ? 'csv' : 'text';
      const hashes = new Map<string, string | undefined>();
      let output: CaptionOutputFile | undefined;
      let todo = files;
      if (opts.out) {
        for (const file of files) hashes.set(file, await fileHash(file));
        const opened = CaptionOutputFile.open(opts.out, format, hashes, Boolean(opts.resume));
        output = opened.output;
        todo = files.filter((f) => !opened.done.has(f));
        if (opts.resume) console.error(`pixel-info caption: resuming ${opts.out}: ${files.length - todo.length} of ${files.length} inputs already done`);
      }
      const failedBefore = output ? output.all.filter((r) => hashes.has(r.file) && 'error' in r).length : 0;

      const captioner =
        todo.length > 0
          ? await Captioner.load({
              ...models,
              threads: opts.threads,
              batchSize: opts.batchSize,
              int8Decoder: opts.int8Decoder,
              encoderPrecision: opts.encoderPrecision,
              matcher: opts.matcher !== false,
              matcherDir: typeof opts.matcher === 'string' ? opts.matcher : undefined,
            })
          : undefined;
      if (captioner && needsMatcher && !captioner.matcherInfo) {
        await captioner.release();
        throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `${needsMatcher} needs a matcher model; there is none at ${defaultMatcherDir()} (pass --matcher DIR)`);
      }
      const match: MatchOptions = { rerank: opts.rerank };
      const records: FileRecord[] = [];
      const heatmaps = opts.attentionDir ? new HeatmapWriter(opts.attentionDir) : undefined;
      const bar = createProgress(todo.length, 'caption', { enabled: opts.progress && todo.length > PROGRESS_THRESHOLD });
      let failed = 0;
      if (opts.csv) writeLines([csvRow(opts.tags ? ['file', 'caption', 'score', 'tags'] : ['file', 'caption', 'score'])], output);
      let finished = false;
      try {
        // the next batch's images load while this one is captioned (Captioner.captionBatches)
        let start = 0;
        for await (const outcomes of captioner!.captionBatches(todo, { ...generation, ...match })) {
          const chunk = todo.slice(start, start + outcomes.length);
          start += outcomes.length;
          const batch: FileRecord[] = [];
          for (const [i, outcome] of outcomes.entries()) {
            const file = chunk[i];
            let record = toRecord(file, outcome, opts.altText, opts.altTextMinConfidence);
            if (heatmaps && !isCaptionFailure(outcome)) {
              try {
                await heatmaps.write(file, outcome);
              } catch (err) {
                record = { file, error: asPixelInfoError(err, file).toJSON() };
              }
            }
            if ('error' in record) failed++;
            batch.push(output ? { ...record, sha256: hashes.get(file) } : record);
          }
          // One write per batch: a run killed between batches leaves whole records behind.
          writeLines(batch.flatMap((r) => render(r, opts)), output, batch);
          records.push(...batch);
          bar.update(start, { failed });
        }
        finished = true;
      } finally {
        bar.stop();
        await captioner?.release();
        if (finished) output?.close();
        else output?.abandon();
      }
      if (opts.json && !output) console.log(JSON.stringify(records, null, 2));
      process.exitCode = failed + failedBefore > 0 ? 1 : 0;
    });
}

function toRecord(file: string, outcome: CaptionOutcome, altText = false, minConfidence?: number): FileRecord {
  if (isCaptionFailure(outcome)) return { file, error: outcome.error };
  return {
    file,
    captions: outcome.captions.map((c) => {
      const record: Extract<FileRecord, { captions: unknown }>['captions'][number] = { text: altText ? toAltText(c.text) : c.text, score: c.score, logProb: c.logProb };
      if (c.confidence !== undefined) record.confidence = c.confidence;
      if (altText && minConfidence !== undefined && c.confidence !== undefined && c.confidence < minConfidence) {
        record.text = '';
        record.emptyReason = `confidence ${c.confidence.toFixed(3)} is below --alt-text-min-confidence ${minConfidence}`;
      }
      return record;
    }),
    tags: outcome.tags ?? [],
  };
}

/**
 * The output lines of a record: everything but --json streams, as soon as its batch is done. Failures in the
 * text and CSV formats go to stderr (here, at once) and add no line.
 */
function render(record: FileRecord, opts: CaptionCliOptions): string[] {
  if (opts.json) return [];
  if (opts.jsonl) return [JSON.stringify(record)];
  if ('error' in record) {
    console.error(`pixel-info caption: ${record.file}: ${record.error.code}: ${record.error.message}`);
    return [];
  }
  const tags = (record.tags ?? []).map((t) => `${t.word} ${t.probability.toFixed(2)}`).join('; ');
  if (opts.csv) return record.captions.map((c) => csvRow(opts.tags ? [record.file, c.text, c.score.toFixed(4), tags] : [record.file, c.text, c.score.toFixed(4)]));
  const shown = (c: (typeof record.captions)[number]) => (c.emptyReason ? `"" (${c.emptyReason})` : c.text);
  const suffix = opts.tags ? `  [tags: ${tags || 'none'}]` : '';
  if (record.captions.length === 1) return [`${record.file}: ${shown(record.captions[0])}${suffix}`];
  return [`${record.file}:${suffix}`, ...record.captions.map((c) => `  ${c.score.toFixed(3).padStart(8)}  ${shown(c)}`)];
}

/** Lines to stdout, or to the --out file in one write (with the records they came from). */
function writeLines(lines: string[], output: CaptionOutputFile | undefined, records: FileRecord[] = []): void {
  if (output) output.write(records, lines.map((l) => `${l}\n`).join(''));
  else for (const l of lines) console.log(l);
}

/** Heat-maps of the best caption, one PNG per word; images with the same stem get distinct names. */
class HeatmapWriter {
  private readonly stems = new Map<string, number>();
  constructor(private readonly dir: string) {}

  async write(file: string, result: CaptionResult): Promise<string[]> {
    const best = result.captions[0];
    if (!best?.attention) return [];
    await mkdir(this.dir, { recursive: true });
    const image = await loadOriginalRgb(file, HEATMAP_MAX_SIDE);
    const stem = this.uniqueStem(basename(file, extname(file)));
    const written: string[] = [];
    for (const [index, word] of best.tokens.entries()) {
      const png = await renderAttentionHeatmap(image, best.attention[index], { word });
      const path = join(this.dir, `${stem}_${String(index).padStart(2, '0')}_${safeName(word)}.png`);
      await writeFile(path, png);
      written.push(path);
    }
    return written;
  }

  private uniqueStem(stem: string): string {
    const seen = this.stems.get(stem) ?? 0;
    this.stems.set(stem, seen + 1);
    return seen === 0 ? stem : `${stem}-${seen + 1}`;
  }
}

function safeName(word: string): string {
  return word.replace(/[^\p{L}\p{N}-]+/gu, '_').slice(0, 40) || '_';
}
