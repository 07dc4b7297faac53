/**
 * The web page on a server that needs an API key, in headless Chromium (playwright-core), with a fake engine:
 * the first 401 opens the key dialog; a refused key says so; an accepted key is kept for the tab and sent as
 * `Authorization: Bearer` on every API call; the Query tab then shows only that key's images, their thumbnails
 * fetched with the key (blob: URLs); captioning works; "Forget API key" asks again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { chromium, type Browser } from 'playwright-core';
import { buildServer } from '../src/server/app.js';
import type { CaptionEngine } from '../src/server/engine.js';
import type { CaptionOutcome } from '../src/pipeline/captioner.js';
import { openLibrary } from '../src/library/index.js';

const CHROMIUM = '/usr/bin/chromium';

const TOKENS = ['a', 'red', 'kite', 'flying'];
const engine: CaptionEngine = {
  card: { name: 'fake' },
  async caption(inputs) {
    return inputs.map(
      (_, i): CaptionOutcome => ({
        source: `<buffer ${i}>`,
        image: { format: 'png', width: 120, height: 90 },
        captions: [{ text: TOKENS.join(' '), tokens: TOKENS, score: -1, logProb: -1, attention: TOKENS.map(() => Array(49).fill(1 / 49)) }],
        timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
      }),
    );
  },
  release: async () => {},
};

function png(background: string): Promise<Buffer> {
  return sharp({ create: { width: 120, height: 90, channels: 3, background } }).png().toBuffer();
}

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;

test('web page with API keys: asks on 401, keeps the key for the tab, thumbnails and captions work', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-web-auth-'));
  const store = await openLibrary(join(dir, 'library.sqlite'));
  let browser: Browser | undefined;
  const server = await buildServer({ loadEngine: async () => engine, library: store, logger: false, keysCacheMs: 0 });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => {
    await browser?.close();
    await server.app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const alice = await store.createKey('alice', false);
  const bob = await store.createKey('bob', false);
  const caption = (text: string) => [{ text, score: -1 }];
  const mine = { id: 'a'.repeat(64), bytes: await png('#d33'), width: 120, height: 90, format: 'png', model: 'fake' };
  await store.put({ ...mine, captions: caption('a red kite in the sky'), owner: alice.info.id });
  await store.put({ ...mine, id: 'b'.repeat(64), bytes: await png('#33d'), captions: caption('a blue kite on the beach'), owner: bob.info.id });
  const upload = join(dir, 'upload.png');
  writeFileSync(upload, await png('#3d3'));

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  // 401s are expected here (Chromium logs each failed load); anything else, CSP violations included, is not.
  page.on('console', (msg) => msg.type() === 'error' && !/status of 401/.test(msg.text()) && problems.push(`console: ${msg.text()}`));
  const apiCalls: Array<{ path: string; authorization: string | undefined }> = [];
  page.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (pathname.startsWith('/v1/')) apiCalls.push({ path: pathname, authorization: request.headers().authorization });
  });

  // The page's first API call (the model card) is refused: the dialog opens, focused on the key field.
  await page.goto(url);
  await page.waitForSelector('#key-dialog[open]');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'api-key');
  assert.equal(await page.getAttribute('#key-dialog', 'aria-labelledby'), 'key-title');
  assert.equal(await page.isVisible('#key-error'), false);
  assert.equal(await page.isVisible('#forget-key'), false, 'no key kept yet');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#key-dialog', { state: 'hidden' });

  // Query: refused again; a wrong key is refused with a message; the right one shows her image only.
  await page.click('#tab-query');
  await page.waitForSelector('#key-dialog[open]');
  await page.fill('#api-key', `pxi_${'x'.repeat(43)}`);
  await page.click('#key-dialog button[type="submit"]');
  await page.waitForSelector('#key-error:not([hidden])');
  assert.match((await page.textContent('#key-error')) ?? '', /did not accept this key/);
  assert.equal(await page.getAttribute('#key-error', 'role'), 'alert');
  await page.fill('#api-key', alice.key);
  await page.press('#api-key', 'Enter');
  await page.waitForSelector('#key-dialog', { state: 'hidden' });
  await page.waitForFunction(() => {
    const img = document.querySelector('#results img') as HTMLImageElement | null;
    return img !== null && img.complete && img.naturalWidth > 0;
  });
  assert.equal(await page.locator('#results li').count(), 1, "only her image, not bob's");
  assert.match((await page.textContent('#results li')) ?? '', /red kite/);
  assert.match((await page.getAttribute('#results img', 'src')) ?? '', /^blob:/, 'the thumbnail came with the key');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('pixel-info.api-key')), alice.key);
  assert.equal(await page.isVisible('#forget-key'), true);

  // Captioning sends the key too.
  await page.click('#tab-caption');
  await page.setInputFiles('#file', upload);
  await page.waitForSelector('#dropzone[data-state="loaded"]');
  await page.click('#captionize');
  await page.waitForSelector('#caption .word');
  assert.equal(await page.$$eval('#caption .word', (els) => els.map((e) => e.textContent).join(' ')), TOKENS.join(' '));
  assert.equal(await page.isVisible('#key-dialog'), false);
  const sentAfterKey = apiCalls.slice(apiCalls.findIndex((c) => c.authorization === `Bearer ${alice.key}`));
  assert.ok(sentAfterKey.length >= 3, JSON.stringify(apiCalls));
  assert.ok(
    sentAfterKey.every((c) => c.authorization === `Bearer ${alice.key}`),
    `every API call after the key was given carries it: ${JSON.stringify(sentAfterKey.map((c) => [c.path, c.authorization?.slice(0, 12)]))}`,
  );
  assert.ok(sentAfterKey.some((c) => c.path.endsWith('/thumbnail')) && sentAfterKey.some((c) => c.path === '/v1/captions'));

  // A reload keeps the key (this tab); "Forget API key" drops it and the page asks again.
  await page.reload();
  await page.click('#tab-query');
  await page.waitForSelector('#results li');
  assert.equal(await page.isVisible('#key-dialog'), false);
  await page.click('#forget-key');
  await page.waitForSelector('#key-dialog[open]');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('pixel-info.api-key')), null);

  assert.deepEqual(problems, [], 'no page errors or console errors (CSP included)');
});
