/**
 * `pixel-info eval`: caption every image of a dataset split, score the captions with the COCO caption metrics and
 * write results.json, references.json, metrics.json and report.md (src/eval).
 */
import type { EncoderPrecisionChoice } from '../../encoder/int8.js';
import { DATASET_USAGE_ERRORS, exitTwoOn } from '../usage-errors.js';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { DATASET_NAMES, type DatasetName } from '../../data/datasets/index.js';
import { ErrorCodes, type ErrorCode } from '../../errors.js';
import { resolveModelSpec } from '../../pipeline/models.js';
import { EVAL_SPLITS, evaluateModel, type EvalSplit } from '../../eval/evaluate.js';
import { METEOR_MODES, METRIC_NAMES, SPICE_FETCH_COMMAND, type MeteorMode } from '../../metrics/index.js';
import { addGenerationOptions, addModelOptions, generationOptionsFrom, modelOptionsFrom, parsePositiveInt, type GenerationFlags, type ModelFlags } from '../options.js';
import { readModelDir } from '../../decoder/model-dir.js';
import { resolveGeneration } from '../../decoder/generation.js';
import { createProgress, type Progress } from '../progress.js';
import { runInt8Gate, writeInt8Gate } from '../../eval/int8-gate.js';
import { calibrateInt8Decoder, writeInt8DecoderCalibration } from '../../decoder/int8-calibrate.js';
import { loadDataset } from '../../data/datasets/index.js';
import { INT8_MAX_CIDER_DROP } from '../../decoder/precision.js';
import { PixelInfoError } from '../../errors.js';

interface EvalCliOptions extends GenerationFlags, ModelFlags {
  /** undefined: the default ('auto', src/decoder/precision.ts). */
  int8Decoder?: boolean;
  encoderPrecision: EncoderPrecisionChoice;
  dataset: DatasetName;
  split: EvalSplit;
  features?: string;
  dataDir?: string;
  out?: string;
  examples: number;
  json?: boolean;
  limit?: number;
  batchSize: number;
  threads?: number;
  meteor: MeteorMode;
  spice?: boolean;
  progress: boolean;
  int8Gate?: boolean;
  writeCard?: boolean;
  calibrateInt8?: boolean;
  calibrationImages: number;
}

/** Errors caused by the command line or what it points at (a wrong folder, a store of another encoder): exit 2. */
const USAGE_ERRORS = new Set<ErrorCode>([...DATASET_USAGE_ERRORS, ErrorCodes.PYTHON_UNAVAILABLE]);

export function registerEval(program: Command): void {
  const command = program
    .command('eval')
    .description('caption a dataset split and score it (BLEU-1..4, METEOR, ROUGE-L, CIDEr as the COCO toolkit; SPICE with --spice); writes results, metrics and a Markdown report')
    .addOption(new Option('--dataset <name>', 'dataset').choices(DATASET_NAMES).default('flickr8k'))
    .addOption(new Option('--split <split>', 'Karpathy split to evaluate').choices(EVAL_SPLITS).default('val'))
    .option('--features <store>', 'read features from this store (`pixel-info features`) instead of running the encoder; it must come from the cached encoder')
    .option('--data-dir <dir>', 'datasets folder (default $PIXEL_INFO_DATA_DIR, else ../shared/datasets)')
    .option('--out <dir>', 'output folder (default eval/<dataset>-<split>-beam<N>)')
    .option('--examples <n>', 'example images in report.md (0 = none)', (v) => (v === '0' ? 0 : parsePositiveInt(v)), 20)
    .option('--json', 'print the summary as one JSON line (last line of stdout)')
    .option('--limit <n>', 'only the first n images of the split (by name)', parsePositiveInt)
    .option('--batch-size <n>', 'images per encoder call and per beam search', parsePositiveInt, 32)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--int8-decoder', 'int8 decoder weights even where the model card has no passed int8 gate')
    .option('--no-int8-decoder', 'fp32 decoder weights (default: int8 when the model card records that int8 passed its val quality gate)')
    .addOption(new Option('--encoder-precision <p>', 'encoder graph: fp32, int8, or auto = int8 where the int8 encoder passed its quality gate on this machine type (src/encoder/int8.ts)').choices(['auto', 'fp32', 'int8']).default('auto'))
    .addOption(
      new Option('--meteor <mode>', "METEOR: jar = the toolkit's meteor-1.5.jar, native = TypeScript approximation, auto = jar if found, off = skip")
        .choices(METEOR_MODES)
        .default('auto'),
    )
    .option('--spice', `also SPICE, with the toolkit's spice-1.0.jar (Java; slow: CoreNLP parses every caption; needs \`${SPICE_FETCH_COMMAND}\` once)`)
    .option('--int8-gate', `run the split with fp32 and with int8 decoder weights (into <out>/fp32 and <out>/int8) and report whether int8 loses at most ${INT8_MAX_CIDER_DROP} CIDEr`)
    .option('--write-card', "with --int8-gate: record the result in the model card (quantization.int8Decoder), which decides the int8 default")
    .option('--calibrate-int8', "first measure the int8 decoder's input ranges on train images and record them in the model card (quantization.int8DecoderCalibration): int8 captions then do not depend on the batch")
    .option('--calibration-images <n>', 'with --calibrate-int8: the first n train images', parsePositiveInt, 128)
    .option('--no-progress', 'no progress bar')
    .action(exitTwoOn<EvalCliOptions>('eval', USAGE_ERRORS, runEval));
  addGenerationOptions(addModelOptions(command));
}

async function runEval(opts: EvalCliOptions): Promise<void> {
  // Bad decoding flags fail here (exit 2), before any model loads; the folder name shows the beam that runs.
  const generation = generationOptionsFrom(opts);
  const models = modelOptionsFrom(opts);
  const dirs = resolveModelSpec(opts.model);
  if (dirs.length > 1 && (opts.calibrateInt8 || opts.int8Gate)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, '--calibrate-int8 and --int8-gate work on one model directory, not an ensemble');
  }
  // one model: its directory from here on (the int8 steps write into its card)
  if (dirs.length === 1) opts = { ...opts, model: dirs[0] };
  const { card } = await readModelDir(dirs[0]);
  const out = opts.out ?? join('eval', `${opts.dataset}-${opts.split}-beam${resolveGeneration(generation, card.decoding).beamSize}`);
  if (opts.writeCard && !opts.int8Gate) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, '--write-card records an --int8-gate result: give --int8-gate too');
  if (opts.calibrateInt8) {
    const dataset = await loadDataset(opts.dataset, { dataDir: opts.dataDir });
    const images = dataset.images.filter((im) => im.split === 'train').slice(0, opts.calibrationImages).map((im) => im.path);
    const calibration = await calibrateInt8Decoder({ modelDir: opts.model, images, dataset: opts.dataset, split: 'train', threads: opts.threads });
    await writeInt8DecoderCalibration(opts.model, calibration);
    console.error(`pixel-info eval: int8 decoder input ranges from ${images.length} ${opts.dataset} train images → ${join(opts.model, 'model-card.json')}`);
    if (!opts.int8Gate) return;
  }
  if (opts.int8Gate) {
    if (opts.int8Decoder !== undefined) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, '--int8-gate runs both precisions: leave out --int8-decoder / --no-int8-decoder');
    if (opts.spice) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, '--int8-gate compares CIDEr: leave out --spice');
    return runGate(opts, generation, out);
  }
  let bar: Progress | undefined;
  let run;
  try {
    run = await evaluateModel({
      ...evaluationOptions(opts, generation, out),
      int8Decoder: opts.int8Decoder,
      spice: opts.spice,
      onProgress: (done, total, failed) => {
        bar ??= createProgress(total, 'eval', { enabled: opts.progress });
        bar.update(done, { failed });
      },
    });
  } finally {
    bar?.stop();
  }
  const { record } = run;
  for (const f of record.failed) console.error(`pixel-info eval: ${f.name}: ${f.error.code}: ${f.error.message}`);
  if (opts.json) {
    console.log(
      JSON.stringify({
        metrics: record.metrics,
        split: record.split,
        beam: record.decoding.beamSize,
        lengthPenalty: record.decoding.lengthPenalty,
        images: record.images,
        danglingEndings: record.danglingEndings,
        failed: record.failed.length,
        seconds: record.seconds.total,
        meteor: record.meteor,
        out: run.out,
      }),
    );
  } else {
    const rows = METRIC_NAMES.map((m) => `${m.padEnd(8)} ${record.metrics[m] === null ? '       -' : record.metrics[m]!.toFixed(4).padStart(8)}`);
    if (record.metrics.SPICE !== undefined) rows.push(`${'SPICE'.padEnd(8)} ${record.metrics.SPICE === null ? '       -' : record.metrics.SPICE.toFixed(4).padStart(8)}`);
    console.log(`${record.dataset} ${record.split}: ${record.images} images, beam ${record.decoding.beamSize}, length penalty ${record.decoding.lengthPenalty}, METEOR ${record.meteor}`);
    console.log(['metric      score', ...rows].join('\n'));
    console.log(`\n${record.seconds.total.toFixed(1)} s; wrote ${run.files.results}, ${run.files.references}, ${run.files.metrics}, ${run.files.report}`);
  }
  process.exitCode = record.failed.length > 0 ? 1 : 0;
}

/** What a plain eval and the int8 gate take from the command line alike. */
function evaluationOptions(opts: EvalCliOptions, generation: ReturnType<typeof generationOptionsFrom>, out: string) {
  return {
    dataset: opts.dataset,
    split: opts.split,
    out,
    dataDir: opts.dataDir,
    ...modelOptionsFrom(opts),
    features: opts.features,
    generation,
    limit: opts.limit,
    batchSize: opts.batchSize,
    threads: opts.threads,
    encoderPrecision: opts.encoderPrecision,
    meteor: opts.meteor,
    examples: opts.examples,
  };
}

async function runGate(opts: EvalCliOptions, generation: ReturnType<typeof generationOptionsFrom>, out: string): Promise<void> {
  let bar: Progress | undefined;
  let run;
  let offset = 0; // the second run (int8) continues the bar
  let last = 0;
  try {
    run = await runInt8Gate({
      ...evaluationOptions(opts, generation, out),
      onProgress: (done, total, failed) => {
        if (done < last) offset = total;
        last = done;
        bar ??= createProgress(2 * total, 'int8 gate', { enabled: opts.progress });
        bar.update(offset + done, { failed });
      },
    });
  } finally {
    bar?.stop();
  }
  const { gate } = run;
  if (opts.writeCard) await writeInt8Gate(opts.model, gate);
  if (opts.json) {
    console.log(JSON.stringify({ ...gate, out, cardWritten: Boolean(opts.writeCard) }));
  } else {
    const rows = METRIC_NAMES.map((m) => {
      const f = (v: number | null | undefined) => (v === null || v === undefined ? '       -' : v.toFixed(4).padStart(8));
      return `${m.padEnd(8)} ${f(gate.fp32?.[m])} ${f(gate.int8?.[m])}`;
    });
    console.log(`${gate.dataset} ${gate.split}: ${gate.images} images, ${gate.decoding}`);
    console.log(['metric       fp32     int8', ...rows].join('\n'));
    console.log(`\nCIDEr drop ${gate.ciderDrop.toFixed(4)} (limit ${gate.maxCiderDrop}): ${gate.passed ? 'PASSED' : 'FAILED'}; ${gate.identicalCaptions}/${gate.images} captions identical`);
    if (opts.writeCard) console.log(`recorded in ${join(opts.model, 'model-card.json')} (quantization.int8Decoder)`);
  }
  process.exitCode = run.fp32.record.failed.length + run.int8.record.failed.length > 0 ? 1 : 0;
}
