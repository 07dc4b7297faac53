/**
 * Captioning on the device, in headless Chromium (playwright-core): the page's "Caption on this device" switch
 * captions three Flickr8k images in the browser with nothing uploaded (no request to /v1/captions) and the
 * same captions as Node; and the parity of `pixel-info/web` with Node on 50 Flickr8k test images (encoder
 * features' cosine ≥ 0.999, identical captions for ≥ 48 of 50, every difference printed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { buildServer, type PixelInfoServer } from '../src/server/app.js';
import { Captioner, defaultModelDir } from '../src/pipeline/captioner.js';
import { ImageEncoder } from '../src/encoder/index.js';
import { loadImagesSettled } from '../src/image/batch.js';
import { writeCaffeTensor, IMAGE_FLOATS } from '../src/image/tensor.js';
import { FLICKR8K, FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { browserLibraryBundle, CHROMIUM, CHROMIUM_ARGS, imageToY4m } from './helpers/browser-captioner.js';
import { changedMeaningfully } from '../web/src/camera.js';

/** What the fake camera shows. */
const CAMERA_IMAGE = '2677656448_6b7e7702af.jpg';

const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}` : !HAVE_FLICKR8K ? 'no ../shared' : false;
const testImages = () => readFileSync(join(FLICKR8K, 'Flickr_8k.testImages.txt'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);

interface Setup {
  server: PixelInfoServer;
  url: string;
  browser: Browser;
  context: BrowserContext;
  node: Captioner;
}

let setup: Promise<Setup> | undefined;
function start(): Promise<Setup> {
  setup ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'px-device-'));
    // fp32 like the browser (onnxruntime-web has no int8 kernels): the parity test compares the same model
    const node = await Captioner.load({ int8Decoder: false });
    const server = await buildServer({
      loadEngine: async () => node,
      library: join(dir, 'library.sqlite'),
      logger: false,
      deviceModel: { modelDir: defaultModelDir() },
    });
    const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
    const y4m = join(dir, 'camera.y4m');
    writeFileSync(y4m, await imageToY4m(join(FLICKR8K_IMAGES, CAMERA_IMAGE)));
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`],
    });
    const context = await browser.newContext({ viewport: { width: 1180, height: 860 } });
    // Speech is recorded, not played.
    await context.addInitScript(() => {
      const spoken: string[] = [];
      (window as unknown as { spoken: string[] }).spoken = spoken;
      speechSynthesis.speak = (u: SpeechSynthesisUtterance) => void spoken.push(u.text);
      speechSynthesis.cancel = () => {};
    });
    return { server, url, browser, context, node };
  })();
  return setup;
}

test.after(async () => {
  if (!setup) return;
  const { browser, server } = await setup;
  await browser.close();
  await server.app.close(); // releases the engine, the Node captioner
});

test('"Caption on this device": 3 images captioned in the browser, none uploaded, the same captions as Node', { skip, timeout: 300_000 }, async () => {
  const { url, context, node } = await start();
  const page = await context.newPage();
  const problems: string[] = [];
  const uploads: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`));
  page.on('request', (r) => r.url().includes('/v1/captions') && uploads.push(`${r.method()} ${r.url()}`));
  const response = await page.goto(url);
  assert.equal(response?.headers()['cross-origin-opener-policy'], 'same-origin');
  assert.equal(response?.headers()['cross-origin-embedder-policy'], 'require-corp');
  assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'COOP/COEP make the page cross-origin isolated (WebAssembly threads)');

  // The model files: a manifest that is revalidated, files under a versioned URL that never change.
  const manifestResponse = await fetch(`${url}/models/manifest.json`);
  assert.equal(manifestResponse.headers.get('cache-control'), 'no-cache');
  const manifest = (await manifestResponse.json()) as { version: string; base: string; encoder: string; files: Array<{ name: string; bytes: number }>; runtime: { wasmPaths: string; wasm: string } };
  assert.match(manifest.version, /^[0-9a-f]{16}$/);
  assert.deepEqual(manifest.files.map((f) => f.name).sort(), ['decoder_init.onnx', 'decoder_step.onnx', 'encoder.fp16.onnx', 'model-card.json', 'vocab.json']);
  const encoderBytes = manifest.files.find((f) => f.name === manifest.encoder)!.bytes;
  assert.ok(encoderBytes < 55e6, `the encoder with fp16 weights is ${encoderBytes} bytes`);
  const card = await fetch(`${url}/models/${manifest.base}model-card.json`);
  assert.equal(card.status, 200);
  assert.equal(card.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal((await fetch(`${url}/models/0000000000000000/model-card.json`)).status, 404, 'another version is not served');
  const wasm = await fetch(new URL(`${manifest.runtime.wasmPaths}${manifest.runtime.wasm}`, `${url}/models/manifest.json`), { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');

  await page.click('#on-device'); // keyboard users: Space on the focused switch does the same
  assert.equal(await page.isChecked('#on-device'), true);
  await page.waitForFunction(() => /Model ready/.test(document.getElementById('device-load-text')?.textContent ?? ''), null, { timeout: 240_000 });
  const loadText = await page.textContent('#device-load-text');
  console.log(`# ${loadText}`);
  assert.match(loadText ?? '', /MB .* in \d+\.\d s · WebAssembly, \d+ thread/);
  assert.equal(await page.getAttribute('#device-progress', 'value'), '1');

  const images = testImages().slice(0, 3);
  const expected = await node.caption(images.map((f) => join(FLICKR8K_IMAGES, f)));
  for (const [i, file] of images.entries()) {
    await page.setInputFiles('#file', join(FLICKR8K_IMAGES, file));
    await page.waitForSelector('#dropzone[data-state="loaded"]');
    await page.click('#captionize');
    await page.waitForFunction(() => !document.querySelector('#caption.placeholder') && document.querySelectorAll('#caption .word').length > 0, null, { timeout: 60_000 });
    const shown = (await page.$$eval('#caption .word', (els) => els.map((e) => e.textContent ?? ''))).join(' ');
    const want = (expected[i] as { captions: Array<{ text: string }> }).captions[0].text;
    console.log(`# ${file}: browser "${shown}" · node "${want}"`);
    assert.equal(shown, want, `${file}: the caption made in the browser is Node's`);
    assert.ok((await page.$$('#caption .word')).length > 0);
    await page.click('#clear');
  }
  assert.deepEqual(uploads, [], 'no image was sent to the server');
  assert.deepEqual(problems, []);
  await page.close();
});

test('pixel-info/web parity with Node on 50 Flickr8k test images: features cosine ≥ 0.999, ≥ 48 identical captions', { skip, timeout: 600_000 }, async () => {
  const { url, context, node } = await start();
  const page = await context.newPage();
  const bundle = await browserLibraryBundle();
  await page.route('**/__test__/**', (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/__test__/pixel-info-web.js') return route.fulfill({ body: Buffer.from(bundle), contentType: 'text/javascript' });
    return route.fulfill({ body: readFileSync(join(FLICKR8K_IMAGES, path.slice('/__test__/img/'.length))), contentType: 'image/jpeg' });
  });
  await page.goto(url);
  const images = testImages().slice(0, 50);

  const encoder = await ImageEncoder.load({ outputs: ['features'] });
  const loaded = await loadImagesSettled(images.map((f) => join(FLICKR8K_IMAGES, f)));
  const nodeCaptions = await node.caption(images.map((f) => join(FLICKR8K_IMAGES, f)));

  await page.evaluate(async () => {
    const { Captioner } = await import('/__test__/pixel-info-web.js' as string);
    (globalThis as Record<string, unknown>).captioner = await Captioner.load({ cacheName: null });
  });
  let identical = 0;
  let worstCosine = 1;
  const differences: string[] = [];
  for (const [i, file] of images.entries()) {
    const fromBrowser = await page.evaluate(async (name) => {
      const captioner = (globalThis as Record<string, any>).captioner;
      const blob = await (await fetch(`/__test__/img/${name}`)).blob();
      const features: Float32Array = await captioner.features([blob]);
      const result = await captioner.caption(blob);
      const bytes = new Uint8Array(features.buffer, features.byteOffset, features.byteLength);
      let binary = '';
      for (let j = 0; j < bytes.length; j += 0x8000) binary += String.fromCharCode(...bytes.subarray(j, j + 0x8000));
      return { features: btoa(binary), text: result.captions[0].text as string };
    }, file);
    const browserFeatures = new Float32Array(new Uint8Array(Buffer.from(fromBrowser.features, 'base64')).buffer);
    const r = loaded[i];
    assert.ok(r.ok);
    const batch = new Float32Array(IMAGE_FLOATS);
    writeCaffeTensor(r.image.pixels, batch, 0);
    const nodeFeatures = (await encoder.encode(batch, 1)).features!;
    const cos = cosine(nodeFeatures, browserFeatures);
    worstCosine = Math.min(worstCosine, cos);
    const want = (nodeCaptions[i] as { captions: Array<{ text: string }> }).captions[0].text;
    if (fromBrowser.text === want) identical++;
    else differences.push(`${file}: browser "${fromBrowser.text}" · node "${want}" (features cosine ${cos.toFixed(6)})`);
  }
  await encoder.release();
  console.log(`# parity: ${identical}/50 identical captions, worst features cosine ${worstCosine.toFixed(6)}`);
  for (const d of differences) console.log(`# difference: ${d}`);
  assert.ok(worstCosine >= 0.999, `worst features cosine ${worstCosine}`);
  assert.ok(identical >= 48, `${identical}/50 identical captions`);
  await page.close();
});

function cosine(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

test('changedMeaningfully: speaks again only when the content words change', () => {
  assert.equal(changedMeaningfully(null, 'a dog runs on the grass'), true);
  assert.equal(changedMeaningfully('a dog runs on the grass', 'a dog runs on the grass'), false);
  assert.equal(changedMeaningfully('a dog runs on the grass', 'the dog is running on the grass'), false, 'articles and auxiliaries do not count; 2 of 4 content words shared');
  assert.equal(changedMeaningfully('a dog runs on the grass', 'a man is sitting on a bench'), true);
});

test('live camera (fake camera stream): captions the view on the device, speaks once per meaningful change, keyboard and screen reader', { skip, timeout: 300_000 }, async () => {
  const { url, context } = await start();
  const page = await context.newPage();
  const uploads: string[] = [];
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('request', (r) => r.url().includes('/v1/captions') && uploads.push(r.url()));
  await page.goto(url);
  assert.equal(await page.getAttribute('#camera', 'aria-pressed'), 'false');
  assert.equal(await page.getAttribute('#camera-caption', 'aria-live'), 'polite', 'screen readers hear each new description');
  await page.focus('#camera');
  await page.keyboard.press('Enter'); // a <button>: Enter and Space start it
  await page.waitForFunction(() => (window as unknown as { spoken: string[] }).spoken.length > 0, null, { timeout: 240_000 });
  assert.equal(await page.getAttribute('#camera', 'aria-pressed'), 'true');
  assert.equal(await page.isChecked('#on-device'), true, 'the camera captions on this device only');
  const first = await page.evaluate(() => (window as unknown as { spoken: string[] }).spoken[0]);
  console.log(`# camera: "${first}"`);
  assert.match(first, /^[a-z]+( [a-z]+){3,}$/);
  assert.equal(await page.textContent('#camera-caption'), first, 'the spoken description is also on the page (aria-live)');
  // The same scene for three more captions: nothing more is said.
  await page.waitForTimeout(9_000);
  assert.deepEqual(await page.evaluate(() => (window as unknown as { spoken: string[] }).spoken), [first], 'an unchanged scene is not spoken again');
  await page.keyboard.press('Escape');
  assert.equal(await page.getAttribute('#camera', 'aria-pressed'), 'false', 'Escape stops the camera');
  assert.equal(await page.isHidden('#camera-view'), true);
  assert.deepEqual(uploads, [], 'no frame was sent to the server');
  assert.deepEqual(problems, []);
  await page.close();
});
