/** `pixel-info classify`: ImageNet top-5 per image, so anyone can check the encoder. */
import type { Command } from 'commander';
import { ImageEncoder } from '../../encoder/index.js';
import { classifyImages } from '../../encoder/classify.js';
import { parsePositiveInt } from '../options.js';

export function registerClassify(program: Command): void {
  program
    .command('classify')
    .description('ImageNet top-k classes of images with the ResNet50 encoder')
    .argument('<images...>', 'image files')
    .option('--top <k>', 'classes per image', parsePositiveInt, 5)
    .option('--json', 'print JSON: [{"file", "top": [{"label", "index", "probability"}]}]', false)
    .action(async (images: string[], opts) => {
      const encoder = await ImageEncoder.load({ outputs: ['logits'] });
      const results = await classifyImages(encoder, images, { topK: opts.top });
      await encoder.release();
      if (opts.json) console.log(JSON.stringify(results, null, 2));
      else
        for (const r of results) {
          if ('error' in r) console.log(`${r.file}: error ${r.error.code}: ${r.error.message}`);
          else console.log(`${r.file}\n${r.top.map((t) => `  ${(t.probability * 100).toFixed(1).padStart(5)}%  ${t.label} (${t.index})`).join('\n')}`);
        }
      process.exitCode = results.some((r) => 'error' in r) ? 1 : 0;
    });
}
