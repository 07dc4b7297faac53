/** Chromium for the on-device tests and the browser benchmark, and `pixel-info/web` bundled for a page to import. */
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/pipeline/captioner.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'];

/** src/browser/index.ts as one ES module, as a web developer's bundler would make it (the "browser" field applies). */
export async function browserLibraryBundle(): Promise<Uint8Array> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [join(PACKAGE_ROOT, 'src', 'browser', 'index.ts')],
    absWorkingDir: PACKAGE_ROOT,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['onnxruntime-web-use-extern-wasm'],
    target: 'es2022',
    minify: true,
    logLevel: 'silent',
  });
  return result.outputFiles[0].contents;
}

/** A Y4M video (I420, 25 fps, `frames` copies of one image) for Chromium's fake camera. */
export async function imageToY4m(imagePath: string, frames = 10): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  const { data, info } = await sharp(imagePath).resize(320, 240, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width: w, height: h } = info;
  const y = Buffer.alloc(w * h);
  const u = Buffer.alloc((w / 2) * (h / 2));
  const v = Buffer.alloc((w / 2) * (h / 2));
  const clamp = (x: number) => Math.max(0, Math.min(255, Math.round(x)));
  for (let row = 0; row < h; row++) {
    for (let col = 0; col < w; col++) {
      const i = (row * w + col) * 3;
      y[row * w + col] = clamp(0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]); // full-range BT.601 (C420jpeg)
    }
  }
  for (let row = 0; row < h / 2; row++) {
    for (let col = 0; col < w / 2; col++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
        const i = ((row * 2 + dy) * w + col * 2 + dx) * 3;
        r += data[i] / 4;
        g += data[i + 1] / 4;
        b += data[i + 2] / 4;
      }
      u[row * (w / 2) + col] = clamp(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
      v[row * (w / 2) + col] = clamp(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
    }
  }
  const frame = Buffer.concat([Buffer.from('FRAME\n'), y, u, v]);
  return Buffer.concat([Buffer.from(`YUV4MPEG2 W${w} H${h} F25:1 Ip A1:1 C420jpeg\n`), ...Array.from({ length: frames }, () => frame)]);
}
