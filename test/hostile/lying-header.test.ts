/**
 * Finding 7, a JPEG whose header claims 6000x6000 over 224x224 of data was accepted, captioned and stored as
 * 6000x6000, against the documented rule that truncated data is an error. Now it is 422 IMAGE_TRUNCATED, and the
 * library (and the CLI, through the same decoder) refuse it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadImage } from '../../src/image/index.js';
import { PixelInfoError } from '../../src/errors.js';
import { photo, send, serve } from './helpers.js';

/** A real 224x224 JPEG whose frame header (SOF) is rewritten to claim `width` x `height`. */
async function lyingJpeg(width: number, height: number): Promise<Buffer> {
  const bytes = Buffer.from(await photo(224, 224, 7, 90));
  for (let at = 2; at + 9 < bytes.length; ) {
    assert.equal(bytes[at], 0xff, 'a JPEG marker');
    const marker = bytes[at + 1];
    if (marker >= 0xc0 && marker <= 0xc3) {
      bytes.writeUInt16BE(height, at + 5);
      bytes.writeUInt16BE(width, at + 7);
      return bytes;
    }
    at += 2 + bytes.readUInt16BE(at + 2);
  }
  throw new Error('no SOF marker');
}

test('a JPEG claiming 6000x6000 over 224x224 of data is IMAGE_TRUNCATED, to the server and the library', { timeout: 120_000 }, async (t) => {
  const liar = await lyingJpeg(6000, 6000);
  await assert.rejects(loadImage(liar, { maxPixels: 40_000_000 }), (err: unknown) => err instanceof PixelInfoError && err.code === 'IMAGE_TRUNCATED');

  const server = await serve(t);
  const answer = await send(server.port, { method: 'POST', path: '/v1/captions', headers: { 'content-type': 'image/jpeg' }, body: liar });
  t.diagnostic(`POST of the 6000x6000 liar → ${answer.status} ${answer.text.slice(0, 200)}`);
  assert.equal(answer.status, 422, answer.text);
  assert.equal(answer.json().error?.code, 'IMAGE_TRUNCATED');
  assert.equal((await send(server.port, { path: '/v1/library' })).json().total, 0, 'nothing stored');

  // The same photo with its true header is fine.
  const honest = await send(server.port, { method: 'POST', path: '/v1/captions', headers: { 'content-type': 'image/jpeg' }, body: await photo(224, 224, 7, 90) });
  assert.equal(honest.status, 200, honest.text);
  assert.deepEqual(honest.json().image, { format: 'jpeg', width: 224, height: 224 });
});
