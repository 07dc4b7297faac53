/**
 * Finding 8, no bound on disk: originals were stored as sent (EXIF GPS position, artist, description included),
 * with no quota. Now: a quota on the whole library and one per API key (413 QUOTA_EXCEEDED, decided before the
 * upload is read when its Content-Length says it would not fit), originals stored without their metadata unless
 * `keepMetadata` (orientation applied), and library content marked `Cache-Control: private`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openLibrary } from '../../src/library/index.js';
import { photo, rawSocket, send, serve } from './helpers.js';

/** A photo carrying what a phone writes: GPS position, artist, description, and a rotation to apply. */
async function phonePhoto(seed: number): Promise<Buffer> {
  return sharp(await photo(400, 300, seed, 90))
    .withMetadata({ orientation: 6 })
    .withExifMerge({
      IFD0: { Artist: 'Jane Doe', ImageDescription: 'our house at 12 Elm Street' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1', GPSLongitudeRef: 'W', GPSLongitude: '0/1 7/1 0/1' },
    })
    .jpeg({ quality: 90 })
    .toBuffer();
}

test('quotas per key and in total, metadata stripped unless asked, library content private', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-quota-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const libraryPath = join(dir, 'lib.sqlite');
  const setup = await openLibrary(libraryPath);
  const keys: Record<string, string> = {};
  for (const name of ['alice', 'bob', 'carol']) keys[name] = (await setup.createKey(name, false)).key;
  await setup.close();

  const server = await serve(t, ['--quota-bytes', '400KB', '--key-quota-bytes', '200KB'], { library: libraryPath });
  const { port } = server;
  const upload = (who: string, body: Buffer, query = '') =>
    send(port, { method: 'POST', path: `/v1/captions${query}`, headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${keys[who]}` }, body });
  const as = (who: string) => ({ authorization: `Bearer ${keys[who]}` });
  const images = await Promise.all(Array.from({ length: 6 }, (_, i) => photo(400, 300, 20 + i, 90)));
  t.diagnostic(`images of ${images.map((b) => Math.round(b.length / 1024)).join(', ')} KB`);

  // Metadata: gone from the stored original, orientation applied; kept when asked.
  const tagged = await phonePhoto(1);
  const stripped = await upload('alice', tagged);
  assert.equal(stripped.status, 200, stripped.text);
  const strippedId = stripped.json().id as string;
  const original = await send(port, { path: `/v1/library/${strippedId}/image`, headers: as('alice') });
  assert.equal(original.status, 200);
  const storedBytes = await fetchBytes(port, `/v1/library/${strippedId}/image`, as('alice'));
  const meta = await sharp(storedBytes).metadata();
  assert.equal(meta.exif, undefined, 'no EXIF left');
  assert.deepEqual([meta.width, meta.height, meta.orientation ?? 1], [300, 400, 1], 'turned upright, nothing left to rotate');
  assert.ok(!storedBytes.includes('Jane Doe') && !storedBytes.includes('Elm Street'));
  assert.match(String(original.headers['cache-control']), /\bprivate\b/);
  for (const path of ['/v1/library', `/v1/library/${strippedId}`, `/v1/library/${strippedId}/thumbnail`]) {
    const answer = await send(port, { path, headers: as('alice') });
    assert.equal(answer.status, 200, path);
    assert.match(String(answer.headers['cache-control']), /\bprivate\b/, `Cache-Control of ${path}`);
  }
  const kept = await upload('bob', await phonePhoto(2), '?keepMetadata=true');
  assert.equal(kept.status, 200, kept.text);
  const keptMeta = await sharp(await fetchBytes(port, `/v1/library/${kept.json().id}/image`, as('bob'))).metadata();
  assert.ok(keptMeta.exif?.toString('latin1').includes('Jane Doe'), 'keepMetadata=true stores the upload as sent');

  // Per key: alice has ~80 KB; one more fits, the next does not. Refused before its body is read.
  assert.equal((await upload('alice', images[0])).status, 200);
  const over = await upload('alice', images[1]);
  t.diagnostic(`alice over her quota → ${over.status} ${over.text}`);
  assert.equal(over.status, 413);
  assert.equal(over.json().error?.code, 'QUOTA_EXCEEDED');
  assert.match(over.json().error!.message, /API key/);
  assert.equal((await upload('alice', images[1], '?store=false')).status, 200, 'store=false keeps nothing and is not counted');
  const headersOnly = await rawSocket(t, port);
  headersOnly.write(`POST /v1/captions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${keys.alice}\r\nContent-Type: image/jpeg\r\nContent-Length: ${images[1].length}\r\n\r\n`);
  const early = await Promise.race([headersOnly.closedAt.then(() => headersOnly.received()), new Promise<string>((r) => setTimeout(() => r(headersOnly.received()), 5000))]);
  assert.match(early, /^HTTP\/1\.1 413 /, 'answered from the headers alone, before any of the body was sent');

  // In total: bob adds one more (~330 KB in the library), then carol's first image would pass 400 KB.
  assert.equal((await upload('bob', images[2])).status, 200);
  const full = await upload('carol', images[3]);
  t.diagnostic(`carol with the library full → ${full.status} ${full.text}`);
  assert.equal(full.status, 413);
  assert.equal(full.json().error?.code, 'QUOTA_EXCEEDED');
  assert.match(full.json().error!.message, /library holds/);
  // Deleting makes room again.
  assert.equal((await send(port, { method: 'DELETE', path: `/v1/library/${strippedId}`, headers: as('alice') })).status, 204);
  await new Promise((r) => setTimeout(r, 5200)); // usage is re-read at most every 5 s
  assert.equal((await upload('carol', images[3])).status, 200);
});

async function fetchBytes(port: number, path: string, headers: Record<string, string>): Promise<Buffer> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  assert.equal(res.status, 200, path);
  return Buffer.from(await res.arrayBuffer());
}
