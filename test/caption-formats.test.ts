/**
 * The shipped model on a folder holding one image of every supported kind and broken files of every
 * kind: every valid image gets a caption, every broken one its own error, and the process exits 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const CLI = join(process.cwd(), 'bin', 'pixel-info.js');
const HAVE_MODEL = existsSync(join(process.cwd(), 'models', 'flickr8k-sat', 'decoder_step.onnx'));

test('caption: every supported kind is captioned, every broken file reported, the batch goes on', { skip: (!HAVE_FLICKR8K && 'no ../shared') || (!HAVE_MODEL && 'no shipped model'), timeout: 300_000 }, async () => {
  const dir = join(await mkdtemp(join(tmpdir(), 'px-formats-')), 'mixed');
  mkdirSync(dir);
  const source = sharp(join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg'));
  const good: Record<string, Buffer> = {
    'photo.jpg': readFileSync(join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg')),
    'photo.png': await source.clone().png().toBuffer(),
    'photo.webp': await source.clone().webp().toBuffer(),
    'photo.gif': await source.clone().gif().toBuffer(),
    'photo.tiff': await source.clone().tiff().toBuffer(),
    'photo.avif': await source.clone().avif({ effort: 0 }).toBuffer(),
    'gray16.png': await source.clone().grayscale().toColourspace('grey16').png().toBuffer(),
    'rotated-exif.jpg': await source.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer(),
  };
  for (const [name, bytes] of Object.entries(good)) writeFileSync(join(dir, name), bytes);
  // A PNG header claiming 30000x30000 (decompression bomb): only the header is needed to refuse it.
  const bomb = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
  bomb.writeUInt32BE(30000, 16);
  bomb.writeUInt32BE(30000, 20);
  const broken: Record<string, RegExp> = {
    'empty.jpg': /FILE_EMPTY/,
    'notes.png': /NOT_AN_IMAGE/,
    'cut.jpg': /IMAGE_TRUNCATED/,
    'bomb.png': /IMAGE_TOO_LARGE|DECODE_FAILED/,
  };
  writeFileSync(join(dir, 'empty.jpg'), Buffer.alloc(0));
  writeFileSync(join(dir, 'notes.png'), 'not an image at all');
  writeFileSync(join(dir, 'cut.jpg'), good['photo.jpg'].subarray(0, good['photo.jpg'].length >> 1));
  writeFileSync(join(dir, 'bomb.png'), bomb);

  const r = spawnSync(process.execPath, [CLI, 'caption', dir, '--json', '--no-progress'], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const results = JSON.parse(r.stdout) as Array<{ file: string; captions?: Array<{ text: string }>; error?: { code: string; message: string } }>;
  const byName = new Map(results.map((x) => [x.file.split('/').pop()!, x]));
  assert.equal(results.length, Object.keys(good).length + Object.keys(broken).length);
  for (const name of Object.keys(good)) {
    const text = byName.get(name)?.captions?.[0]?.text ?? '';
    assert.ok(text.split(' ').length >= 4, `${name}: "${text}" ${JSON.stringify(byName.get(name)?.error)}`);
  }
  for (const [name, code] of Object.entries(broken)) {
    const e = byName.get(name)?.error;
    assert.ok(e, `${name} should fail`);
    assert.match(e!.code, code, `${name}: ${e!.code}`);
    assert.ok(e!.message.includes(name), `${name}: message names the file: ${e!.message}`);
  }
  // A lossless copy of the JPEG's pixels gives the same caption as the JPEG itself.
  assert.equal(byName.get('photo.png')!.captions![0].text, byName.get('photo.jpg')!.captions![0].text);
});
