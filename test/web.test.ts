/**
 * The web app end to end in headless Chromium (playwright-core): caption a real Flickr8k image, the attention
 * heat-map, reference scores, the library search, the model card, keyboard tabs, and a phone-sized viewport.
 * The page's script is the esbuild bundle of web/src (src/server/plugins/web.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildServer } from '../src/server/app.js';
import { Captioner, defaultModelDir } from '../src/pipeline/captioner.js';
import { parseModelCard } from '../src/decoder/model-card.js';
import type { CaptionResponse } from '../web/src/api.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const CHROMIUM = '/usr/bin/chromium';
const GIRL = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');
const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}` : !HAVE_FLICKR8K ? 'no ../shared' : false;

/** Sum over the canvas of |pixel − reference|, and how many pixels differ. */
async function canvasPixels(page: Page): Promise<number[]> {
  return page.evaluate(() => {
    const canvas = document.getElementById('view') as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    return Array.from(data);
  });
}

function changedPixels(a: number[], b: number[]): number {
  let n = 0;
  for (let i = 0; i < a.length; i += 4) if (Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]) > 12) n++;
  return n;
}

async function noHorizontalOverflow(page: Page, where: string) {
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
  assert.ok(scrollWidth <= clientWidth, `${where}: page is ${scrollWidth}px wide in a ${clientWidth}px viewport`);
}

test('web app: caption, heat-map, scores, library search, model card, keyboard tabs, phone layout', { skip, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-web-'));
  const shots = join(dir, 'screenshots');
  mkdirSync(shots);
  const server = await buildServer({ loadEngine: () => Captioner.load(), library: join(dir, 'library.sqlite'), logger: false });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  let browser: Browser | undefined;
  t.after(async () => {
    await browser?.close();
    await server.app.close();
    rmSync(join(dir, 'library.sqlite'), { force: true });
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  const context = await browser.newContext({ viewport: { width: 1180, height: 860 }, deviceScaleFactor: 1 });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`)); // CSP violations land here
  page.on('response', (r) => r.status() >= 500 && problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`)); // which request, when the console only says "failed"

  // The page asks for the model card as it opens; a cold model load on a busy machine can outlast the server's
  // 30 s request timeout (one CI run got a 504 there), and this test is about the page, not about load time.
  await server.engineReady;
  await page.goto(url);
  assert.equal(await page.title(), 'Pixel Info — image captioning');
  assert.match((await page.request.get(`${url}/app.js`)).headers()['content-type'] ?? '', /javascript/, 'the bundle is served');
  assert.equal(await page.isDisabled('#captionize'), true, 'nothing to caption yet');

  // --- Caption ---
  await page.setInputFiles('#file', GIRL);
  await page.waitForSelector('#dropzone[data-state="loaded"]');
  const answer = page.waitForResponse((r) => r.url().includes('/v1/captions'), { timeout: 60_000 });
  await page.click('#captionize');
  const result = (await (await answer).json()) as CaptionResponse;
  await page.waitForSelector('#caption .word', { timeout: 60_000 });
  const words = await page.$$eval('#caption .word', (els) => els.map((e) => e.textContent ?? ''));
  const sentence = words.join(' ');
  assert.match(sentence, /^[a-z]+( [a-z]+){3,}$/, `caption "${sentence}"`);
  assert.ok(words.includes('girl'), `caption "${sentence}"`);
  assert.equal(await page.getAttribute('#caption-live', 'aria-live'), 'polite');
  assert.equal(await page.locator('#alternatives li').count(), 3, 'three alternatives (nbest 3 by default)');
  assert.match((await page.textContent('#alternatives li:first-child')) ?? '', new RegExp(sentence));

  // Hovering a word draws its heat-map over the image; leaving restores the image; focusing draws it too.
  const plain = await canvasPixels(page);
  const girl = page.locator('#caption .word', { hasText: /^girl$/ });
  await girl.hover();
  const hovered = await canvasPixels(page);
  const total = plain.length / 4;
  assert.ok(changedPixels(plain, hovered) > total * 0.3, `hover changed ${changedPixels(plain, hovered)} of ${total} pixels`);
  assert.equal(await girl.getAttribute('class'), 'word active');
  await page.screenshot({ path: join(shots, 'caption-hover.png') });
  const shot = await page.screenshot();
  await page.mouse.move(5, 5);
  assert.equal(changedPixels(plain, await canvasPixels(page)), 0, 'leaving the word restores the image');
  await page.locator('#caption .word').first().focus();
  const focused = await canvasPixels(page);
  assert.ok(changedPixels(plain, focused) > total * 0.3, 'focusing a word draws its heat-map');
  assert.ok(changedPixels(hovered, focused) > 0, 'different words, different maps');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => (document.activeElement as HTMLElement).dataset.index), '1', 'arrow keys move between words');

  // References → BLEU and CIDEr.
  await page.fill('#references', 'a little girl in a pink dress climbing the stairs\na girl going into a wooden building');
  await page.waitForSelector('#scores:not([hidden])');
  const bleu1 = Number(await page.textContent('#scores td[data-metric="BLEU-1"]'));
  const bleu4 = Number(await page.textContent('#scores td[data-metric="BLEU-4"]'));
  assert.ok(bleu1 > 0.3 && bleu1 <= 1, `BLEU-1 ${bleu1}`);
  assert.ok(bleu4 >= 0 && bleu4 <= bleu1, `BLEU-4 ${bleu4}`);
  assert.match((await page.textContent('#scores td[data-metric="CIDEr-D"]')) ?? '', /^\d+\.\d{3}$/);

  // Copy alt text: the server's alt text for the best caption (the shared rule of src/text/alt-text.ts).
  await page.click('#copy');
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(clip, result.altText);
  assert.equal(clip, sentence[0].toUpperCase() + sentence.slice(1) + '.');
  assert.match((await page.textContent('#status')) ?? '', /Copied/);
  assert.equal(await page.isDisabled('#refresh'), false);

  // Screenshot of the heat-map of "girl", palette-quantised to stay small.
  const png = await sharp(shot).png({ palette: true, quality: 90, compressionLevel: 9, effort: 8 }).toBuffer();
  writeFileSync(join(shots, 'web-caption-small.png'), png);
  assert.ok(png.length < 300 * 1024, `palette screenshot is ${png.length} bytes`);

  // Another alternative: its words, its heat-maps, its alt text.
  await page.click('#alternatives li:nth-child(2) button');
  assert.equal(await page.getAttribute('#alternatives li:nth-child(2) button', 'aria-pressed'), 'true');
  assert.equal((await page.$$eval('#caption .word', (els) => els.map((e) => e.textContent).join(' '))), result.captions[1].text);
  await page.locator('#caption .word').first().hover();
  assert.ok(changedPixels(plain, await canvasPixels(page)) > total * 0.3, 'the alternative has heat-maps too');
  await page.click('#copy');
  const second = result.captions[1].text;
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), second[0].toUpperCase() + second.slice(1) + '.');
  await page.click('#alternatives li:first-child button');

  // --- Query: keyboard to the tab, search a word of the caption, see its thumbnail ---
  await page.focus('#tab-caption');
  await page.keyboard.press('End');
  assert.equal(await page.getAttribute('#tab-info', 'aria-selected'), 'true', 'End: the last tab');
  await page.keyboard.press('Home');
  assert.equal(await page.getAttribute('#tab-caption', 'aria-selected'), 'true', 'Home: the first tab');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getAttribute('#tab-query', 'aria-selected'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-query');
  assert.equal(await page.isVisible('#panel-query'), true);
  assert.equal(await page.isVisible('#panel-caption'), false);
  // By words (search by meaning, with a matcher, is test/web-match.test.ts).
  await page.check('#search-mode input[value="words"]');
  await page.fill('#search', 'pink dress');
  await page.press('#search', 'Enter');
  await page.waitForFunction(() => {
    const img = document.querySelector('#results img') as HTMLImageElement | null;
    return img !== null && img.complete && img.naturalWidth > 0;
  });
  assert.equal(await page.locator('#results li').count(), 1);
  assert.equal(await page.getAttribute('#results img', 'alt'), sentence);
  assert.match((await page.textContent('#search-status')) ?? '', /1 image matching/);
  await page.screenshot({ path: join(shots, 'query.png') });
  await page.fill('#search', 'submarine');
  await page.press('#search', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('#results li').length === 0);
  assert.match((await page.textContent('#search-status')) ?? '', /No images match/);

  // --- Info: the model card, its metrics by their real keys ---
  await page.click('#tab-info');
  assert.equal(new URL(page.url()).hash, '#info');
  await page.waitForSelector('#info dl');
  const info = (await page.textContent('#info')) ?? '';
  const card = parseModelCard(JSON.parse(readFileSync(join(defaultModelDir(), 'model-card.json'), 'utf8')));
  const needles = ['flickr8k-sat', 'show-attend-tell', 'resnet50-imagenet', 'BLEU-4', 'CIDEr', 'dataset_flickr8k.json'];
  needles.push(`CIDEr-D${card.metrics!.val!.cider!.toFixed(3)}`, `Distinct words used${card.metrics!.val!.vocab_used}`);
  if (card.metrics?.test) needles.push(`ROUGE-L${card.metrics.test['ROUGE-L']!.toFixed(3)}`, `METEOR${card.metrics.test.METEOR!.toFixed(3)}`);
  for (const needle of needles) assert.ok(info.includes(needle), `Info tab lacks ${needle}`);
  await page.screenshot({ path: join(shots, 'info.png'), fullPage: true });

  // --- Phone: 375 px wide, no horizontal overflow on any tab ---
  await page.setViewportSize({ width: 375, height: 812 });
  for (const tab of ['info', 'query', 'caption']) {
    await page.click(`#tab-${tab}`);
    await noHorizontalOverflow(page, `${tab} tab at 375px`);
  }
  await page.locator('#caption .word').nth(2).hover();
  await page.screenshot({ path: join(shots, 'phone-caption.png'), fullPage: true });

  // Refresh: the same image again with the current settings (greedy, so one alternative).
  await page.setViewportSize({ width: 1180, height: 860 });
  await page.selectOption('#beam', '1');
  await page.click('#refresh');
  await page.waitForFunction(() => document.querySelectorAll('#alternatives li').length === 1);
  assert.ok((await page.locator('#caption .word').count()) > 3);
  await page.click('#speak'); // speechSynthesis exists in Chromium; the click must not throw

  // New image: clears everything for the next one.
  await page.click('#clear');
  assert.equal(await page.locator('#caption .word').count(), 0);
  assert.equal(await page.getAttribute('#dropzone', 'data-state'), 'empty');
  assert.equal(await page.isDisabled('#captionize'), true);

  // Drag and drop, then paste, each load an image ready to caption.
  const jpegBase64 = readFileSync(GIRL).toString('base64');
  for (const how of ['drop', 'paste'] as const) {
    if (!(await page.isDisabled('#clear'))) await page.click('#clear');
    await page.evaluate(
      ({ how, b64 }) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], `${how}.jpg`, { type: 'image/jpeg' }));
        const target = how === 'drop' ? document.getElementById('dropzone')! : document;
        const event = how === 'drop' ? new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }) : new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
        target.dispatchEvent(event);
      },
      { how, b64: jpegBase64 },
    );
    await page.waitForSelector('#dropzone[data-state="loaded"]');
    assert.match((await page.textContent('#file-name')) ?? '', new RegExp(`${how}\\.jpg`));
    assert.equal(await page.isDisabled('#captionize'), false, `${how}: ready to caption`);
  }

  assert.deepEqual(problems, [], 'no page errors or console errors (CSP included)');
  t.diagnostic(`screenshots in ${shots}; small copy web-caption-small.png (${png.length} bytes)`);
});
