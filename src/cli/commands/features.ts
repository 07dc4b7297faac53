/** `pixel-info features`: extract ResNet50 features of a whole dataset into a resumable feature store. */
import type { EncoderPrecisionChoice } from '../../encoder/int8.js';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ImageEncoder } from '../../encoder/index.js';
import { extractFeatures } from '../../data/extract-features.js';
import { resolveDataDir } from '../../data/paths.js';
import { loadDataset, type DatasetName } from '../../data/datasets/index.js';
import { PixelInfoError, ErrorCodes } from '../../errors.js';
import { createProgress } from '../progress.js';
import { parsePositiveInt } from '../options.js';

const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

export function listDatasetImages(dataDir: string, dataset: string): { imageDir: string; names: string[] } {
  const imageDir = join(dataDir, dataset, 'images');
  let names: string[];
  try {
    names = readdirSync(imageDir).filter((n) => IMAGE_EXTENSIONS.test(n));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.DATASET_NOT_FOUND, `no image folder at ${imageDir}: ${(err as Error).message}`, { subject: imageDir });
  }
  if (names.length === 0) throw new PixelInfoError(ErrorCodes.DATASET_NOT_FOUND, `${imageDir} holds no images`, { subject: imageDir });
  return { imageDir, names: names.sort() };
}

/**
 * The images of a dataset: every image file in `<data-dir>/<dataset>/images` when that folder exists (Flickr8k), else
 * the images its caption files list (Flickr30k, COCO: e.g. train2014/ and val2014/), by file name.
 */
export async function datasetImages(dataDir: string, dataset: string): Promise<{ imageDir: string; names: string[]; pathOf?: (name: string) => string }> {
  if (existsSync(join(dataDir, dataset, 'images')) || !['flickr8k', 'flickr30k', 'coco'].includes(dataset)) return listDatasetImages(dataDir, dataset);
  const ds = await loadDataset(dataset as DatasetName, { dataDir });
  const paths = new Map(ds.images.map((im) => [im.name, im.path]));
  return { imageDir: ds.imageDir, names: [...paths.keys()].sort(), pathOf: (name) => paths.get(name)! };
}

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description('extract ResNet50 features (7x7x2048 + pooled, fp16) for every image of a dataset into a feature store')
    .requiredOption('--dataset <name>', 'dataset folder under the data dir, e.g. flickr8k')
    .option('--data-dir <dir>', 'datasets root (default: $PIXEL_INFO_DATA_DIR or ../shared/datasets)')
    .option('--out <dir>', 'feature store directory (default: features/<dataset>)')
    .option('--batch-size <n>', 'images per encoder call', parsePositiveInt, 8)
    .option('--threads <n>', 'encoder threads (default: all cores)', parsePositiveInt)
    .option('--hflip', 'also store features of horizontally flipped images (augmentation)', false)
    .option('--limit <n>', 'only the first n images (sorted by name)', parsePositiveInt)
    .option('--overwrite', 'replace a store made for other images or another encoder', false)
    .addOption(new Option('--encoder-precision <p>', 'encoder graph: fp32, int8, or auto = int8 where the int8 encoder passed its quality gate on this machine type (src/encoder/int8.ts)').choices(['auto', 'fp32', 'int8']).default('auto'))
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as JSON', false)
    .action(async (opts) => {
      const dataDir = resolveDataDir(opts.dataDir);
      const { imageDir, names, pathOf } = await datasetImages(dataDir, opts.dataset);
      const selected = opts.limit ? names.slice(0, opts.limit) : names;
      const storeDir = opts.out ?? join('features', opts.dataset);
      const encoder = await ImageEncoder.load({ threads: opts.threads, outputs: ['features', 'pooled'], precision: opts.encoderPrecision });
      let bar: ReturnType<typeof createProgress> | undefined;
      const summary = await extractFeatures({
        storeDir,
        dataset: opts.dataset,
        imageDir,
        imageNames: selected,
        pathOf,
        encoder,
        encoderInfo: { name: 'resnet50-imagenet', source: encoder.manifest.source, modelSha256: encoder.modelSha256 },
        batchSize: opts.batchSize,
        hflip: opts.hflip,
        overwrite: opts.overwrite,
        onProgress: (done, total, failed) => {
          bar ??= createProgress(total, 'features', { enabled: opts.progress, start: done - Math.min(done, opts.batchSize) });
          bar.update(done, { failed });
        },
      });
      bar?.stop();
      await encoder.release();
      const rate = summary.written / Math.max(1e-9, summary.seconds);
      const result = {
        store: storeDir,
        images: summary.total,
        resumedFrom: summary.resumedFrom,
        written: summary.written,
        failed: summary.failed,
        seconds: Number(summary.seconds.toFixed(1)),
        imagesPerSecond: Number(rate.toFixed(2)),
      };
      if (opts.json) console.log(JSON.stringify(result));
      else {
        console.log(
          `${storeDir}: ${summary.total} images, ${summary.resumedFrom} already there, ${summary.written} written in ${result.seconds}s ` +
            `(${result.imagesPerSecond} img/s), ${summary.failed.length} failed`,
        );
        for (const f of summary.failed) console.log(`  ${f.name}: ${f.code}: ${f.message}`);
      }
      process.exitCode = summary.failed.length > 0 ? 1 : 0;
    });
}
