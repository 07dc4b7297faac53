/**
 * The web page's alt text (web/src/caption-view.ts) is the server's: both come from src/text/alt-text.ts, so
 * Copy alt text gives exactly the API's `altText` for the best caption, cut to 125 characters like it, and the
 * same rule for the alternatives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildServer } from '../src/server/app.js';
import type { CaptionEngine } from '../src/server/engine.js';
import type { CaptionOutcome } from '../src/pipeline/captioner.js';
import { ALT_TEXT_MAX, toAltText } from '../src/text/alt-text.js';
import { altTextOf } from '../web/src/caption-view.js';
import type { CaptionResponse } from '../web/src/api.js';

const LONG = 'a man in a red shirt and a woman in a blue dress are walking with a brown dog along the sandy beach near the water while two children are building a sand castle';
const SHORT = 'a dog runs on the beach';

/** An engine whose every image gets the long caption, then the short one. */
const engine: CaptionEngine = {
  card: { name: 'fake' },
  async caption(inputs) {
    return inputs.map(
      (_, i): CaptionOutcome => ({
        source: `<buffer ${i}>`,
        image: { format: 'jpeg', width: 8, height: 8 },
        captions: [LONG, SHORT].map((text) => ({ text, tokens: text.split(' '), score: -1, logProb: -10 })),
        timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
      }),
    );
  },
  release: async () => {},
};

test("web alt text equals the server's altText, including the 125-character cut", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-alt-'));
  const server = await buildServer({ loadEngine: async () => engine, library: join(dir, 'library.sqlite'), logger: false });
  t.after(async () => {
    await server.app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const image = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } }).jpeg().toBuffer();
  const res = await server.app.inject({ method: 'POST', url: '/v1/captions?beam=2&nbest=2', headers: { 'content-type': 'image/jpeg' }, payload: image });
  assert.equal(res.statusCode, 200, res.body);
  const result = res.json() as CaptionResponse;

  assert.ok(LONG.length + 1 > ALT_TEXT_MAX, 'the caption is long enough to be cut');
  assert.equal(altTextOf(result, 0), result.altText, "Copy alt text gives the API's altText");
  assert.ok(result.altText.length <= ALT_TEXT_MAX, `${result.altText.length} characters`);
  assert.notEqual(result.altText, `${LONG[0].toUpperCase()}${LONG.slice(1)}.`, 'cut, not just capitalised');
  assert.equal(altTextOf(result, 1), toAltText(SHORT));
  assert.equal(altTextOf(result, 1), 'A dog runs on the beach.');
  assert.equal(altTextOf(null, 0), '');
});
