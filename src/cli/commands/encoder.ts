/**
 * `pixel-info encoder`: convert (or verify) the ResNet50 encoder in the model cache and show its manifest; calibrate
 * the int8 encoder (--calibrate-int8) and measure its quality gate on this machine (--int8-gate), see
 * src/encoder/int8.ts.
 */
import { Option, type Command } from 'commander';
import { cpuLine, isaClass } from '../../backend/cpu.js';
import { loadDataset, DATASET_NAMES, type DatasetName } from '../../data/datasets/index.js';
import { ensureEncoderModel, defaultCacheDir } from '../../encoder/index.js';
import { calibrateEncoder, defaultInt8CardPath, readInt8Card, writeInt8Card } from '../../encoder/int8.js';
import { recordEncoderGate, runEncoderInt8Gate } from '../../eval/encoder-int8-gate.js';
import { parsePositiveInt } from '../options.js';
import { DATASET_USAGE_ERRORS, exitTwoOn } from '../usage-errors.js';
import { createProgress } from '../progress.js';

interface EncoderCliOptions {
  cacheDir?: string;
  calibrateInt8?: boolean;
  int8Gate?: boolean;
  writeCard?: boolean;
  card?: string;
  dataset: DatasetName;
  dataDir?: string;
  images: number;
  percentile: number;
  exclude?: string;
  gateImages: number;
  ciderImages?: number;
  out: string;
  threads?: number;
  progress: boolean;
}

export function registerEncoder(program: Command): void {
  program
    .command('encoder')
    .description('convert the npm ResNet50 weights to ONNX in the model cache (no-op when the cache is valid) and print its manifest; calibrate and gate the int8 encoder')
    .option('--cache-dir <dir>', 'model cache (default: $PIXEL_INFO_CACHE_DIR or ~/.cache/pixel-info)')
    .option('--calibrate-int8', 'measure activation ranges on train images and write the int8 card (--card)')
    .option('--int8-gate', 'compare the int8 encoder with fp32 on val images (top-1 agreement, feature cosine, speed, val CIDEr)')
    .option('--write-card', 'with --int8-gate: record the result in the card under this machine type, which decides the int8 default here')
    .option('--card <file>', 'int8 card (default: $PIXEL_INFO_ENCODER_INT8_CARD or models/resnet50-int8/int8.json)')
    .addOption(new Option('--dataset <name>', 'dataset of the calibration and gate images').choices(DATASET_NAMES).default('flickr8k'))
    .option('--data-dir <dir>', 'datasets folder (default $PIXEL_INFO_DATA_DIR, else ../shared/datasets)')
    .option('--images <n>', 'calibration: train images (the first by name)', parsePositiveInt, 256)
    .option('--percentile <p>', 'calibration: clip ranges at this percentile of the magnitudes (100 = min/max)', Number, 99.999)
    .option('--exclude <convs>', 'calibration: comma-separated Conv nodes kept in fp32 (default bn_conv1)')
    .option('--gate-images <n>', 'gate: val images for top-1 agreement and cosine', parsePositiveInt, 500)
    .option('--cider-images <n>', 'gate: val images for the CIDEr comparison (default all)', parsePositiveInt)
    .option('--out <dir>', 'gate: folder of the two evaluations', 'eval/encoder-int8-gate')
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--no-progress', 'no progress output')
    .action(exitTwoOn<EncoderCliOptions>('encoder', new Set(DATASET_USAGE_ERRORS), runEncoder));
}

async function runEncoder(opts: EncoderCliOptions): Promise<void> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const cardPath = opts.card ?? defaultInt8CardPath();
  if (!opts.calibrateInt8 && !opts.int8Gate) {
    const t0 = Date.now();
    const r = await ensureEncoderModel(cacheDir);
    console.log(JSON.stringify({ path: r.path, action: r.action, reason: r.reason, ms: Date.now() - t0, manifest: r.manifest }, null, 2));
    return;
  }
  if (opts.calibrateInt8) {
    const dataset = await loadDataset(opts.dataset, { dataDir: opts.dataDir });
    const images = dataset.images.filter((im) => im.split === 'train').slice(0, opts.images).map((im) => im.path);
    const bar = createProgress(images.length, 'calibrate', { enabled: opts.progress });
    let card;
    try {
      card = await calibrateEncoder({
        images,
        dataset: opts.dataset,
        split: 'train',
        percentile: opts.percentile,
        exclude: opts.exclude === undefined ? undefined : opts.exclude.split(',').filter(Boolean),
        cacheDir,
        threads: opts.threads,
        onProgress: (done) => bar.update(done, { failed: 0 }),
      });
    } finally {
      bar.stop();
    }
    // gates measured on the old ranges no longer hold
    await writeInt8Card(card, cardPath);
    console.error(`pixel-info encoder: ${Object.keys(card.ranges).length} activation ranges from ${images.length} ${opts.dataset} train images → ${cardPath}`);
  }
  if (opts.int8Gate) {
    await readInt8Card(cardPath);
    console.error(cpuLine());
    const run = await runEncoderInt8Gate({
      dataset: opts.dataset,
      dataDir: opts.dataDir,
      images: opts.gateImages,
      ciderImages: opts.ciderImages,
      out: opts.out,
      cardPath,
      cacheDir,
      threads: opts.threads,
      onStage: (stage) => opts.progress && console.error(`pixel-info encoder: ${stage}…`),
    });
    if (opts.writeCard) await recordEncoderGate(run, cardPath);
    console.log(JSON.stringify({ isa: run.isa, ...run.gate, card: cardPath, cardWritten: Boolean(opts.writeCard) }));
  } else if (opts.writeCard) {
    console.error(`pixel-info encoder: --write-card records an --int8-gate result; nothing recorded (isa ${isaClass()})`);
    process.exitCode = 2;
  }
}
