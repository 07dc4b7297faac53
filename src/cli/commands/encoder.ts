/** `pixel-info encoder`: convert (or verify) the ResNet50 encoder in the model cache and show its manifest. */
import type { Command } from 'commander';
import { ensureEncoderModel, defaultCacheDir } from '../../encoder/index.js';

export function registerEncoder(program: Command): void {
  program
    .command('encoder')
    .description('convert the npm ResNet50 weights to ONNX in the model cache (no-op when the cache is valid) and print its manifest')
    .option('--cache-dir <dir>', 'model cache (default: $PIXEL_INFO_CACHE_DIR or ~/.cache/pixel-info)')
    .action(async (opts) => {
      const t0 = Date.now();
      const r = await ensureEncoderModel(opts.cacheDir ?? defaultCacheDir());
      console.log(JSON.stringify({ path: r.path, action: r.action, reason: r.reason, ms: Date.now() - t0, manifest: r.manifest }, null, 2));
    });
}
