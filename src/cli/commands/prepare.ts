/**
 * `pixel-info prepare`: tokenises a dataset's captions and builds the vocabulary from its training split,
 * writing the captions.json the Python trainer reads (docs/formats.md), then prints a summary.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { DATASET_NAMES, SPLIT_SCHEMES, loadDataset, type DatasetName, type SplitScheme } from '../../data/datasets/index.js';
import { writeJsonAtomic } from '../../data/coco-format.js';
import { parsePositiveInt } from '../options.js';
import { DEFAULT_LENGTH_COVERAGE, md5File, prepareCaptions, type PrepareSummary } from '../../data/prepared-captions.js';

interface PrepareFlags {
  dataset: DatasetName;
  dataDir?: string;
  splits: SplitScheme;
  minCount: number;
  maxLength?: number;
  out: string;
  json?: boolean;
}

export function registerPrepare(program: Command): void {
  program
    .command('prepare')
    .description('tokenise a dataset\'s captions and build the vocabulary (train split only) into captions.json for the trainer')
    .addOption(new Option('--dataset <name>', 'dataset').choices([...DATASET_NAMES]).makeOptionMandatory())
    .option('--data-dir <dir>', 'datasets folder (default: $PIXEL_INFO_DATA_DIR, else ../shared/datasets)')
    .addOption(new Option('--splits <scheme>', 'split definition').choices([...SPLIT_SCHEMES]).default('karpathy'))
    .option('--min-count <n>', 'keep words seen at least n times in the train split', parsePositiveInt, 5)
    .option('--max-length <n>', `cut token ids to n (default: the ${DEFAULT_LENGTH_COVERAGE * 100}th percentile of train caption lengths)`, parsePositiveInt)
    .requiredOption('--out <file>', 'where to write captions.json')
    .option('--json', 'print the summary as JSON')
    .action(async (flags: PrepareFlags) => {
      // Errors propagate to the CLI's main(), which reports their code and sets the exit status.
      const summary = await runPrepare(flags);
      console.log(flags.json ? JSON.stringify(summary, null, 2) : formatSummary(summary, resolve(flags.out)));
    });
}

export async function runPrepare(flags: PrepareFlags): Promise<PrepareSummary> {
  const dataset = await loadDataset(flags.dataset, { dataDir: flags.dataDir, splits: flags.splits });
  const sourceMd5s = await Promise.all(dataset.sources.map(md5File));
  const { captions, summary } = prepareCaptions(dataset, { minCount: flags.minCount, maxLength: flags.maxLength, sourceMd5s });
  const out = resolve(flags.out);
  await mkdir(dirname(out), { recursive: true });
  await writeJsonAtomic(out, captions);
  return summary;
}

const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`;

export function formatSummary(s: PrepareSummary, out: string): string {
  const splits = Object.keys(s.imagesPerSplit) as Array<keyof PrepareSummary['imagesPerSplit']>;
  const perSplit = (counts: PrepareSummary['imagesPerSplit']) => {
    const total = splits.reduce((sum, split) => sum + (counts[split] ?? 0), 0);
    return `${splits.map((split) => `${split} ${counts[split] ?? 0}`).join(', ')} (total ${total})`;
  };
  const L = s.trainLengths;
  const lines = [
    `${s.dataset} (${s.splits} split) → ${out}`,
    `images:     ${perSplit(s.imagesPerSplit)}`,
    `captions:   ${perSplit(s.captionsPerSplit)}`,
    `vocabulary: ${s.vocabSize} ids incl. 4 specials (words seen ≥ ${s.minCount} times in train${splits.includes('restval') ? '+restval' : ''})`,
    `val <unk>:  ${s.valUnkFraction === null ? 'no val split' : `${pct(s.valUnkFraction)} of val tokens`}`,
    `train caption length (tokens): mean ${L.mean.toFixed(2)}, p50 ${L.p50}, p90 ${L.p90}, p95 ${L.p95}, p99 ${L.p99}, max ${L.max}`,
    `max length: ${s.maxLength} (${s.maxLengthIsDefault ? 'default, ' : ''}keeps ${pct(s.trainCoverage, 1)} of train captions whole; ` +
      `${s.truncatedCaptions} captions cut in all splits)`,
  ];
  if (s.emptyCaptions > 0) lines.push(`warning: ${s.emptyCaptions} captions have no tokens`);
  if (s.imagesWithoutCaptions > 0) lines.push(`warning: ${s.imagesWithoutCaptions} images have no captions`);
  return lines.join('\n');
}
