/**
 * Image–text matching on the page, with the real models in headless Chromium (playwright-core): a Flickr8k
 * puppy photo captioned on the Caption tab shows its confidence; in the Query tab a search by meaning for
 * "puppy" finds it first among a few captioned photos without animals, each with its match percentage; the
 * Words toggle switches to full-text search. Skips without Chromium, ../shared or a matcher model directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { buildServer } from '../src/server/app.js';
import { loadCaptionEngine } from '../src/server/index.js';
import { defaultMatcherDir } from '../src/pipeline/captioner.js';
import { LOW_CONFIDENCE } from '../src/server/limits.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const CHROMIUM = '/usr/bin/chromium';
/** Flickr8k test split: "a beige puppy walks across the floor". */
const PUPPY = join(FLICKR8K_IMAGES, '2206960564_325ed0c7ae.jpg');
/** Test-split photos whose five captions name no animal: a boy at the beach, a snowboarder, a crowd, a woman waiting. */
const OTHERS = ['106490881_5a2dd9b7bd.jpg', '113678030_87a6a6e42e.jpg', '1174629344_a2e1a2bdbf.jpg', '1056338697_4f7d7ce270.jpg'].map((f) => join(FLICKR8K_IMAGES, f));
const skip = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}`
  : !HAVE_FLICKR8K
    ? 'no ../shared'
    : !existsSync(join(defaultMatcherDir(), 'model-card.json'))
      ? `no matcher model at ${defaultMatcherDir()}`
      : false;

test('web app with the matcher: confidence on the caption, search by meaning finds the puppy first, words toggle', { skip, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-web-match-'));
  const shots = join(dir, 'screenshots');
  mkdirSync(shots);
  const server = await buildServer({ loadEngine: () => loadCaptionEngine(), library: join(dir, 'library.sqlite'), logger: false });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  let browser: Browser | undefined;
  t.after(async () => {
    await browser?.close();
    await server.app.close();
    rmSync(join(dir, 'library.sqlite'), { force: true });
    console.log(`screenshots: ${shots}`);
  });
  const engine = await server.engineReady;
  assert.ok(engine.matching, 'the engine has the matcher');

  // The photos without animals go in through the API.
  for (const file of OTHERS) {
    const response = await fetch(`${url}/v1/captions?nbest=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(readFileSync(file)) });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(typeof body.captions[0].confidence, 'number');
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  const page = await (await browser.newContext({ viewport: { width: 1180, height: 860 } })).newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`));
  await page.goto(url);

  // --- Caption the puppy on the page: its confidence is shown, as a badge below the threshold ---
  await page.setInputFiles('#file', PUPPY);
  await page.waitForSelector('#dropzone[data-state="loaded"]');
  const answer = page.waitForResponse((r) => r.url().includes('/v1/captions'), { timeout: 90_000 });
  await page.click('#captionize');
  const result = await (await answer).json();
  await page.waitForSelector('#caption .word', { timeout: 90_000 });
  const confidence = result.captions[0].confidence as number;
  assert.ok(confidence >= 0 && confidence <= 1, `confidence ${confidence}`);
  await page.waitForSelector('#confidence:not([hidden]) .confidence');
  const badge = page.locator('#confidence .confidence');
  const percent = Math.round(confidence * 100);
  assert.match((await badge.textContent()) ?? '', new RegExp(`${percent}%`));
  assert.equal(((await badge.getAttribute('class')) ?? '').split(' ').includes('low'), confidence < LOW_CONFIDENCE, 'the low-confidence badge below the threshold');
  assert.match((await page.locator('#confidence .visually-hidden').textContent()) ?? '', /describes the image/, 'said in words for screen readers');
  assert.ok((await page.locator('#caption-live #confidence').count()) === 1, 'inside the live region: announced with the caption');
  assert.equal(await page.locator('#alternatives li .confidence').count(), result.captions.length, 'every alternative shows its confidence');
  await page.locator('.result-card').screenshot({ path: join(shots, 'caption-confidence.png') });

  // --- Query: by meaning (the default with a matcher), "puppy" finds the puppy first ---
  await page.click('#tab-query');
  await page.waitForFunction(() => document.querySelectorAll('#results li').length === 5);
  assert.equal(await page.isChecked('#search-mode input[value="meaning"]'), true, 'meaning is the default');
  await page.fill('#search', 'puppy');
  const search = page.waitForResponse((r) => r.url().includes('/v1/library?') && r.url().includes('q=puppy'));
  await page.press('#search', 'Enter');
  const found = await (await search).json();
  assert.equal(found.mode, 'meaning');
  assert.equal(found.items[0].id, result.id, `top hit: ${found.items.map((i: { caption: string; match: { score: number } }) => `${i.caption} (${i.match?.score.toFixed(3)})`).join(' | ')}`);
  assert.ok(found.items[0].match.score > found.items[1].match.score);
  await page.waitForFunction(() => document.querySelector('#results')?.getAttribute('data-mode') === 'meaning' && document.querySelectorAll('#results .match-score').length === 5);
  assert.equal(await page.getAttribute('#results li:first-child img', 'alt'), result.captions[0].text);
  assert.match((await page.textContent('#results li:first-child .match-score')) ?? '', /^Match \d+%/);
  assert.match((await page.textContent('#search-status')) ?? '', /5 images ranked by how well “puppy” describes them/);
  await page.screenshot({ path: join(shots, 'query-meaning.png') });

  // --- Words: full-text over the captions; no scores ---
  const word = result.captions[0].tokens.find((w: string) => w.length > 3 && !['with', 'through', 'across'].includes(w))!;
  await page.fill('#search', word);
  await page.check('#search-mode input[value="words"]');
  await page.waitForFunction(() => document.querySelector('#results')?.getAttribute('data-mode') === 'words');
  await page.waitForFunction(() => !document.querySelector('#search-status')?.classList.contains('busy'));
  assert.equal(await page.locator('#results .match-score').count(), 0);
  assert.ok((await page.locator('#results li').count()) >= 1, `words search "${word}"`);
  assert.match((await page.textContent('#search-status')) ?? '', new RegExp(`matching “${word}”`));
  assert.equal(await page.locator('#results mark').first().textContent(), word);
  assert.deepEqual(problems, []);
});
