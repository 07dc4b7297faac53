/**
 * `pixel-info eval-match`: retrieval, agreement with people and calibration of the image–text matcher on a
 * dataset split (src/eval/match.ts); a table on stdout, or one JSON object (--json); --out DIR writes
 * metrics.json and report.md.
 */
import { Option, type Command } from 'commander';
import { DATASET_NAMES, type DatasetName } from '../../data/datasets/index.js';
import { MATCH_SPLITS, evaluateMatcher, type MatchSplit, type MatchStage } from '../../eval/match.js';
import { formatMatchTable, writeMatchOutputs } from '../../eval/match-report.js';
import { CALIBRATION_PAIRS_SEED } from '../../eval/match-metrics.js';
import { defaultMatcherDir, defaultModelDir } from '../../pipeline/captioner.js';
import { parsePositiveInt } from '../options.js';
import { createProgress, type Progress } from '../progress.js';
import { DATASET_USAGE_ERRORS, exitTwoOn } from '../usage-errors.js';

interface EvalMatchCliOptions {
  dataset: DatasetName;
  split: MatchSplit;
  features?: string;
  matcher: string;
  model: string;
  dataDir?: string;
  json?: boolean;
  out?: string;
  likelihood: boolean;
  limit?: number;
  batchSize: number;
  likelihoodBatch: number;
  threads?: number;
  seed: number;
  progress: boolean;
}


const STAGE_LABELS: Record<MatchStage, string> = {
  features: 'features  ',
  images: 'images    ',
  texts: 'texts     ',
  likelihood: 'likelihood',
};

export function registerEvalMatch(program: Command): void {
  program
    .command('eval-match')
    .description('evaluate the image-text matcher: retrieval R@1/5/10, Kendall tau-b with people (Flickr8k CrowdFlower) beside the decoder likelihood, calibration')
    .addOption(new Option('--dataset <name>', 'dataset').choices(DATASET_NAMES).default('flickr8k'))
    .addOption(new Option('--split <split>', 'Karpathy split').choices(MATCH_SPLITS).default('test'))
    .option('--features <store>', 'read image features from this store (`pixel-info features`) instead of running the encoder')
    .option('--matcher <dir>', 'matcher model directory ($PIXEL_INFO_MATCHER_DIR, else models/flickr8k-match)', defaultMatcherDir())
    .option('--model <dir>', 'captioning decoder for the likelihood', defaultModelDir())
    .option('--data-dir <dir>', 'datasets folder (default $PIXEL_INFO_DATA_DIR, else ../shared/datasets)')
    .option('--json', 'print one JSON object (the metrics) on stdout')
    .option('--out <dir>', 'write metrics.json and report.md there')
    .option('--no-likelihood', 'skip the decoder likelihood on the CrowdFlower rows (the slow part)')
    .option('--limit <n>', 'only the first n images of the split and the CrowdFlower rows of the first n judged images', parsePositiveInt)
    .option('--batch-size <n>', 'images per matcher (and encoder) call', parsePositiveInt, 32)
    .option('--likelihood-batch <n>', 'caption rows per teacher-forced decoder batch', parsePositiveInt, 128)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--seed <n>', 'seed of the calibration pairs', (v) => (v === '0' ? 0 : parsePositiveInt(v)), CALIBRATION_PAIRS_SEED)
    .option('--no-progress', 'no progress bars')
    .action(exitTwoOn<EvalMatchCliOptions>('eval-match', DATASET_USAGE_ERRORS, runEvalMatch));
}

async function runEvalMatch(opts: EvalMatchCliOptions): Promise<void> {
  let bar: Progress | undefined;
  let stage: MatchStage | undefined;
  let record;
  try {
    record = await evaluateMatcher({
      dataset: opts.dataset,
      split: opts.split,
      dataDir: opts.dataDir,
      features: opts.features,
      matcherDir: opts.matcher,
      modelDir: opts.model,
      likelihood: opts.likelihood,
      limit: opts.limit,
      batchSize: opts.batchSize,
      likelihoodBatch: opts.likelihoodBatch,
      threads: opts.threads,
      seed: opts.seed,
      onProgress: (s, done, total) => {
        if (s !== stage) {
          bar?.stop();
          stage = s;
          bar = createProgress(total, STAGE_LABELS[s], { enabled: opts.progress });
        }
        bar!.update(done, { failed: 0 });
      },
    });
  } finally {
    bar?.stop();
  }
  const files = opts.out ? await writeMatchOutputs(opts.out, record) : undefined;
  if (opts.json) console.log(JSON.stringify(files ? { ...record, files } : record));
  else {
    console.log(formatMatchTable(record));
    if (files) console.log(`wrote ${files.metrics}, ${files.report}`);
  }
  process.exitCode = 0;
}
