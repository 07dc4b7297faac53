import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp, { type Color, type Sharp } from 'sharp';
import {
  loadImage,
  loadOriginalRgb,
  loadImagesSettled,
  writeCaffeTensor,
  CAFFE_MEAN_BGR,
  IMAGE_FLOATS,
  IMAGE_SIZE,
} from '../src/image/index.js';
import { PixelInfoError, ErrorCodes, type ErrorCode } from '../src/errors.js';

const RED = { r: 255, g: 0, b: 0 };
const BLUE = { r: 0, g: 0, b: 255 };
type Rgb = [number, number, number];

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixel-info-image-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function save(name: string, bytes: Buffer | string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** width x height, left half red, right half blue. */
function halfHalf(width = 320, height = 240) {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const c = x < width / 2 ? RED : BLUE;
      raw.set([c.r, c.g, c.b], (y * width + x) * 3);
    }
  return sharp(raw, { raw: { width, height, channels: 3 } });
}

const solid = (colour: Color, width = 64, height = 48, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: colour } });

const noisy = (width = 600, height = 400) =>
  sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });

function pixelAt(pixels: Uint8Array, x: number, y: number): Rgb {
  const p = (y * IMAGE_SIZE + x) * 3;
  return [pixels[p], pixels[p + 1], pixels[p + 2]];
}

function assertNear(actual: Rgb, expected: Rgb, tolerance: number, what: string) {
  for (let c = 0; c < 3; c++) {
    assert.ok(
      Math.abs(actual[c] - expected[c]) <= tolerance,
      `${what}: got [${actual}], expected [${expected}] ± ${tolerance}`,
    );
  }
}

async function assertFails(promise: Promise<unknown>, code: ErrorCode, subject: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PixelInfoError, `expected a PixelInfoError, got ${String(err)}`);
    assert.equal(err.code, code, `code for ${subject}: ${err.message}`);
    assert.equal(err.subject, subject);
    assert.ok(err.message.includes(subject), `message names the file: ${err.message}`);
    return true;
  });
}

// ---------------------------------------------------------------- formats

const FORMATS: Array<{ format: string; encode: (s: Sharp) => Sharp; tolerance: number }> = [
  { format: 'jpeg', encode: (s) => s.jpeg({ quality: 90 }), tolerance: 12 },
  { format: 'png', encode: (s) => s.png(), tolerance: 0 },
  { format: 'webp', encode: (s) => s.webp({ quality: 90 }), tolerance: 12 },
  { format: 'gif', encode: (s) => s.gif(), tolerance: 4 },
  { format: 'tiff', encode: (s) => s.tiff({ compression: 'lzw' }), tolerance: 0 },
  { format: 'avif', encode: (s) => s.avif({ quality: 80, effort: 0 }), tolerance: 16 },
];

for (const { format, encode, tolerance } of FORMATS) {
  test(`${format} decodes to 224x224x3 with the right colours and original size`, async () => {
    const path = await save(`half.${format}`, await encode(halfHalf(320, 240)).toBuffer());
    const img = await loadImage(path);
    assert.equal(img.format, format);
    assert.equal(img.source, path);
    assert.equal(img.width, 320);
    assert.equal(img.height, 240);
    assert.ok(img.pixels instanceof Uint8Array);
    assert.equal(img.pixels.length, 224 * 224 * 3);
    // Plain resize: the red/blue border stays in the middle of the 224-wide output.
    assertNear(pixelAt(img.pixels, 40, 112), [255, 0, 0], tolerance, `${format} left`);
    assertNear(pixelAt(img.pixels, 184, 112), [0, 0, 255], tolerance, `${format} right`);
    assertNear(pixelAt(img.pixels, 100, 5), [255, 0, 0], tolerance, `${format} top left of border`);
    assertNear(pixelAt(img.pixels, 124, 218), [0, 0, 255], tolerance, `${format} bottom right of border`);
  });
}

test('a buffer input decodes too and is named <buffer> or by the caller', async () => {
  const bytes = await halfHalf().png().toBuffer();
  assert.equal((await loadImage(bytes)).source, '<buffer>');
  const named = await loadImage(bytes, { name: 'upload.png' });
  assert.equal(named.source, 'upload.png');
  assertNear(pixelAt(named.pixels, 10, 10), [255, 0, 0], 0, 'buffer left');
});

test('aspect ratio is not kept: a 400x100 image fills the whole 224x224', async () => {
  const img = await loadImage(await save('wide.png', await halfHalf(400, 100).png().toBuffer()));
  assert.equal(img.width, 400);
  assert.equal(img.height, 100);
  assertNear(pixelAt(img.pixels, 5, 0), [255, 0, 0], 0, 'top left');
  assertNear(pixelAt(img.pixels, 218, 223), [0, 0, 255], 0, 'bottom right');
});

test('a 1x1 image is enlarged to 224x224', async () => {
  const img = await loadImage(await solid({ r: 10, g: 200, b: 30 }, 1, 1).png().toBuffer());
  assertNear(pixelAt(img.pixels, 0, 0), [10, 200, 30], 0, '1x1 corner');
  assertNear(pixelAt(img.pixels, 223, 223), [10, 200, 30], 0, '1x1 other corner');
});

for (const format of ['gif', 'webp'] as const) {
  test(`animated ${format}: only the first frame is used`, async () => {
    const frames = [RED, BLUE, { r: 0, g: 255, b: 0 }].map((c) => solid(c).png().toBuffer());
    const animated = sharp(await Promise.all(frames), { join: { animated: true } });
    const bytes = await (format === 'gif' ? animated.gif() : animated.webp({ lossless: true })).toBuffer();
    assert.equal((await sharp(bytes).metadata()).pages, 3, 'fixture is animated');
    const img = await loadImage(await save(`anim.${format}`, bytes));
    assert.equal(img.format, format);
    assert.equal(img.width, 64);
    assert.equal(img.height, 48, 'height of one frame, not of the frame strip');
    assertNear(pixelAt(img.pixels, 112, 112), [255, 0, 0], 4, 'first frame is red');
    assertNear(pixelAt(img.pixels, 112, 223), [255, 0, 0], 4, 'bottom row is still the first frame');
  });
}

test('multi-page TIFF: only the first page is used', async () => {
  const pages = [await solid(BLUE).png().toBuffer(), await solid(RED).png().toBuffer()];
  const bytes = await sharp(pages, { join: { animated: true } }).tiff({ compression: 'lzw' }).toBuffer();
  assert.equal((await sharp(bytes).metadata()).pages, 2, 'fixture has two pages');
  const img = await loadImage(bytes);
  assert.equal(img.height, 48);
  assertNear(pixelAt(img.pixels, 112, 200), [0, 0, 255], 0, 'first page is blue');
});

// ---------------------------------------------------------------- orientation, alpha, colour

test('EXIF orientation 6 rotates the image 90° clockwise', async () => {
  // Stored 200x100, left half red, right half blue; orientation 6 displays it rotated 90° clockwise,
  // 100x200 with the stored left side (red) on top.
  const bytes = await halfHalf(200, 100).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(bytes).metadata()).orientation, 6, 'fixture carries orientation 6');
  const img = await loadImage(await save('oriented.jpg', bytes));
  assert.equal(img.width, 100);
  assert.equal(img.height, 200);
  assertNear(pixelAt(img.pixels, 20, 40), [255, 0, 0], 12, 'top left');
  assertNear(pixelAt(img.pixels, 200, 40), [255, 0, 0], 12, 'top right');
  assertNear(pixelAt(img.pixels, 20, 190), [0, 0, 255], 12, 'bottom left');
  assertNear(pixelAt(img.pixels, 200, 190), [0, 0, 255], 12, 'bottom right');

  const original = await loadOriginalRgb(bytes, 1000);
  assert.equal(original.width, 100);
  assert.equal(original.height, 200);
  assertNear([original.data[0], original.data[1], original.data[2]], [255, 0, 0], 12, 'original top left');
});

test('alpha is flattened onto white', async () => {
  // Left: fully transparent black, right: half-transparent red.
  const raw = Buffer.alloc(100 * 50 * 4);
  for (let y = 0; y < 50; y++)
    for (let x = 50; x < 100; x++) raw.set([255, 0, 0, 128], (y * 100 + x) * 4);
  const bytes = await sharp(raw, { raw: { width: 100, height: 50, channels: 4 } }).png().toBuffer();
  const img = await loadImage(bytes);
  assertNear(pixelAt(img.pixels, 30, 112), [255, 255, 255], 1, 'transparent → white');
  assertNear(pixelAt(img.pixels, 190, 112), [255, 127, 127], 2, 'half-transparent red over white');
});

test('grayscale PNG and JPEG become R=G=B', async () => {
  for (const [name, encode] of [
    ['grey.png', (s: Sharp) => s.png()],
    ['grey.jpg', (s: Sharp) => s.jpeg({ quality: 95 })],
  ] as const) {
    const bytes = await encode(solid({ r: 100, g: 100, b: 100 }).toColourspace('b-w')).toBuffer();
    assert.equal((await sharp(bytes).metadata()).channels, 1, `${name} fixture is single-channel`);
    const img = await loadImage(bytes, { name });
    assertNear(pixelAt(img.pixels, 112, 112), [100, 100, 100], 2, name);
  }
});

test('CMYK JPEG becomes sRGB', async () => {
  const bytes = await solid(RED).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
  assert.equal((await sharp(bytes).metadata()).space, 'cmyk', 'fixture is CMYK');
  const img = await loadImage(await save('cmyk.jpg', bytes));
  const [r, g, b] = pixelAt(img.pixels, 112, 112);
  assert.ok(r > 200 && g < 60 && b < 60, `CMYK red decoded as [${r},${g},${b}]`);
});

test('16-bit PNG becomes 8-bit', async () => {
  const width = 32, height = 32;
  const raw = new Uint16Array(width * height * 3);
  for (let i = 0; i < raw.length; i += 3) raw.set([65535, 32896, 0], i); // 32896 = 128.5 * 256
  const bytes = await sharp(raw, { raw: { width, height, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(bytes).metadata()).depth, 'ushort', 'fixture is 16-bit');
  const img = await loadImage(bytes);
  assertNear(pixelAt(img.pixels, 112, 112), [255, 128, 0], 1, '16-bit');
});

test('loadOriginalRgb scales down to maxSide and never enlarges', async () => {
  const bytes = await halfHalf(400, 300).png().toBuffer();
  const small = await loadOriginalRgb(bytes, 200);
  assert.deepEqual([small.width, small.height, small.data.length], [200, 150, 200 * 150 * 3]);
  assertNear([small.data[0], small.data[1], small.data[2]], [255, 0, 0], 0, 'left');
  const last = small.data.length - 3;
  assertNear([small.data[last], small.data[last + 1], small.data[last + 2]], [0, 0, 255], 0, 'right');
  const same = await loadOriginalRgb(bytes, 1000);
  assert.deepEqual([same.width, same.height], [400, 300]);
  await assert.rejects(loadOriginalRgb(bytes, 0), { code: ErrorCodes.INVALID_ARGUMENT });
});

// ---------------------------------------------------------------- bad input

test('not an image: text, random bytes, a PDF', async () => {
  const random = Buffer.alloc(4096);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  const pdf = '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n';
  for (const [name, bytes] of [['notes.txt', 'hello, I am text\n'], ['noise.jpg', random], ['doc.pdf', pdf]] as const) {
    await assertFails(loadImage(await save(name, bytes)), ErrorCodes.NOT_AN_IMAGE, join(dir, name));
  }
});

test('SVG and BMP are refused as unsupported formats', async () => {
  const svg = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>';
  await assertFails(loadImage(await save('drawing.svg', svg)), ErrorCodes.UNSUPPORTED_FORMAT, join(dir, 'drawing.svg'));
  const bmp = Buffer.alloc(54 + 4 * 4 * 3);
  bmp.write('BM', 0, 'latin1');
  bmp.writeUInt32LE(bmp.length, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(4, 18);
  bmp.writeInt32LE(4, 22);
  bmp.writeUInt16LE(1, 26);
  bmp.writeUInt16LE(24, 28);
  await assertFails(loadImage(bmp, { name: 'paint.bmp' }), ErrorCodes.UNSUPPORTED_FORMAT, 'paint.bmp');
});

test('zero bytes is FILE_EMPTY, as a file and as a buffer', async () => {
  await assertFails(loadImage(await save('empty.jpg', Buffer.alloc(0))), ErrorCodes.FILE_EMPTY, join(dir, 'empty.jpg'));
  await assertFails(loadImage(Buffer.alloc(0), { name: 'upload' }), ErrorCodes.FILE_EMPTY, 'upload');
});

test('a missing file and a directory are FILE_NOT_FOUND', async () => {
  const missing = join(dir, 'does-not-exist.jpg');
  await assertFails(loadImage(missing), ErrorCodes.FILE_NOT_FOUND, missing);
  const folder = join(dir, 'a-folder.jpg');
  await mkdir(folder);
  await assertFails(loadImage(folder), ErrorCodes.FILE_NOT_FOUND, folder);
});

test('truncated JPEG (baseline and progressive), PNG, GIF, WebP and TIFF are IMAGE_TRUNCATED', async () => {
  const jpeg = await noisy().jpeg().toBuffer();
  const progressive = await noisy().jpeg({ progressive: true }).toBuffer();
  const png = await noisy().png().toBuffer();
  const cases: Array<[string, Buffer]> = [
    ['cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6))],
    ['cut-header.jpg', jpeg.subarray(0, 300)],
    ['cut-progressive.jpg', progressive.subarray(0, Math.floor(progressive.length * 0.6))],
    ['cut.png', png.subarray(0, Math.floor(png.length * 0.6))],
    ['cut-header.png', png.subarray(0, 40)],
  ];
  for (const [format, bytes] of [
    ['gif', await noisy(160, 120).gif({ effort: 1 }).toBuffer()],
    ['webp', await noisy(160, 120).webp().toBuffer()],
    ['tiff', await noisy(160, 120).tiff().toBuffer()], // its directory comes last: cut, libvips no longer sees a TIFF
  ] as const) {
    cases.push([`cut.${format}`, bytes.subarray(0, bytes.length >> 1)]);
  }
  for (const [name, bytes] of cases) {
    await assertFails(loadImage(await save(name, bytes)), ErrorCodes.IMAGE_TRUNCATED, join(dir, name));
  }
});

test('corrupt (not truncated) PNG data is DECODE_FAILED', async () => {
  const png = Buffer.from(await noisy(200, 100).png().toBuffer());
  const idat = png.indexOf('IDAT', 0, 'latin1');
  for (let i = idat + 40; i < idat + 200; i++) png[i] ^= 0x5a; // breaks the zlib stream and the chunk CRC, IEND stays
  await assertFails(loadImage(png, { name: 'corrupt.png' }), ErrorCodes.DECODE_FAILED, 'corrupt.png');
});

/** A small PNG whose IHDR claims width x height, with a valid CRC: a decompression bomb's header. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await solid(RED, 8, 8).png().toBuffer());
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

/** A small JPEG whose SOF claims width x height. */
async function jpegClaiming(width: number, height: number): Promise<Buffer> {
  const jpeg = Buffer.from(await solid(RED, 8, 8).jpeg().toBuffer());
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  assert.ok(sof > 0, 'baseline SOF0 marker present');
  jpeg.writeUInt16BE(height, sof + 5);
  jpeg.writeUInt16BE(width, sof + 7);
  return jpeg;
}

test('decompression bombs are refused from the header, before decoding', async () => {
  const pngBomb = await pngClaiming(30000, 30000);
  assert.equal((await sharp(pngBomb, { limitInputPixels: false }).metadata()).width, 30000, 'fixture header says 30000 wide');
  const jpegBomb = await jpegClaiming(30000, 30000);
  assert.equal((await sharp(jpegBomb, { limitInputPixels: false }).metadata()).height, 30000, 'fixture header says 30000 high');
  const started = performance.now();
  await assertFails(loadImage(await save('bomb.png', pngBomb)), ErrorCodes.IMAGE_TOO_LARGE, join(dir, 'bomb.png'));
  await assertFails(loadImage(jpegBomb, { name: 'bomb.jpg' }), ErrorCodes.IMAGE_TOO_LARGE, 'bomb.jpg');
  assert.ok(performance.now() - started < 2000, 'refused without decoding 900 million pixels');
});

test('maxPixels and maxBytes limits', async () => {
  const bytes = await halfHalf(320, 240).png().toBuffer();
  await assertFails(loadImage(bytes, { name: 'big.png', maxPixels: 320 * 240 - 1 }), ErrorCodes.IMAGE_TOO_LARGE, 'big.png');
  assert.equal((await loadImage(bytes, { maxPixels: 320 * 240 })).width, 320, 'exactly at the limit is fine');
  const path = await save('heavy.png', bytes);
  await assertFails(loadImage(path, { maxBytes: bytes.length - 1 }), ErrorCodes.IMAGE_TOO_LARGE, path);
  await assertFails(loadImage(bytes, { name: 'heavy', maxBytes: 100 }), ErrorCodes.IMAGE_TOO_LARGE, 'heavy');
  assert.equal((await loadImage(path, { maxBytes: bytes.length })).format, 'png');
});

test('a batch of good and bad files: every good one loads, every bad one gets its own error', async () => {
  const good1 = await save('batch-good1.jpg', await halfHalf().jpeg().toBuffer());
  const good2 = await save('batch-good2.webp', await solid(BLUE).webp().toBuffer());
  const jpeg = await noisy().jpeg().toBuffer();
  const inputs: Array<[string, ErrorCode | 'ok']> = [
    [good1, 'ok'],
    [join(dir, 'batch-missing.jpg'), ErrorCodes.FILE_NOT_FOUND],
    [await save('batch-text.png', 'not a png'), ErrorCodes.NOT_AN_IMAGE],
    [good2, 'ok'],
    [await save('batch-cut.jpg', jpeg.subarray(0, jpeg.length >> 1)), ErrorCodes.IMAGE_TRUNCATED],
    [await save('batch-empty.gif', ''), ErrorCodes.FILE_EMPTY],
    [await save('batch-bomb.png', await pngClaiming(20000, 20000)), ErrorCodes.IMAGE_TOO_LARGE],
  ];
  const results = await loadImagesSettled(inputs.map(([p]) => p));
  assert.equal(results.length, inputs.length);
  results.forEach((r, i) => {
    const [path, expected] = inputs[i];
    if (expected === 'ok') {
      assert.ok(r.ok, `${path} should load: ${r.ok ? '' : r.error.message}`);
      assert.equal(r.image.source, path);
      assert.equal(r.image.pixels.length, IMAGE_FLOATS);
    } else {
      assert.ok(!r.ok, `${path} should fail`);
      assert.equal(r.error.code, expected, `${path}: ${r.error.message}`);
      assert.equal(r.source, path);
    }
  });
});

// ---------------------------------------------------------------- caffe tensor

/** Keras computes in float32: float32(pixel) - float32(mean), rounded to float32. */
const caffe = (value: number, mean: number) => Math.fround(value - Math.fround(mean));

test('writeCaffeTensor writes B,G,R planes minus the caffe mean at the given batch index', () => {
  assert.deepEqual([...CAFFE_MEAN_BGR], [103.939, 116.779, 123.68]);
  const pixels = new Uint8Array(IMAGE_FLOATS);
  const at = (x: number, y: number) => (y * IMAGE_SIZE + x) * 3;
  pixels.set([10, 20, 30], at(5, 7)); // R, G, B at column 5, row 7
  pixels.set([255, 0, 128], at(223, 0));
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const batch = new Float32Array(3 * IMAGE_FLOATS).fill(42);
  writeCaffeTensor(pixels, batch, 1);
  const image = batch.subarray(IMAGE_FLOATS, 2 * IMAGE_FLOATS);
  const i = 7 * IMAGE_SIZE + 5;
  assert.equal(image[i], caffe(30, 103.939), 'B plane');
  assert.equal(image[plane + i], caffe(20, 116.779), 'G plane');
  assert.equal(image[2 * plane + i], caffe(10, 123.68), 'R plane');
  assert.equal(image[223], caffe(128, 103.939));
  assert.equal(image[plane + 223], caffe(0, 116.779));
  assert.equal(image[2 * plane + 223], caffe(255, 123.68));
  assert.equal(image[0], caffe(0, 103.939), 'a black pixel is minus the mean');
  assert.ok(batch.subarray(0, IMAGE_FLOATS).every((v) => v === 42), 'image 0 untouched');
  assert.ok(batch.subarray(2 * IMAGE_FLOATS).every((v) => v === 42), 'image 2 untouched');
});

test('writeCaffeTensor with hflip mirrors columns', () => {
  const pixels = new Uint8Array(IMAGE_FLOATS);
  for (let p = 0; p < pixels.length; p++) pixels[p] = (p * 7 + (p >> 5)) & 255;
  const plain = new Float32Array(IMAGE_FLOATS);
  const flipped = new Float32Array(IMAGE_FLOATS);
  writeCaffeTensor(pixels, plain, 0);
  writeCaffeTensor(pixels, flipped, 0, { hflip: true });
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < IMAGE_SIZE; y++)
      for (let x = 0; x < IMAGE_SIZE; x++) {
        const a = flipped[c * plane + y * IMAGE_SIZE + x];
        const b = plain[c * plane + y * IMAGE_SIZE + (IMAGE_SIZE - 1 - x)];
        if (a !== b) assert.fail(`channel ${c} row ${y} column ${x}: ${a} != ${b}`);
      }
  assert.notDeepEqual(plain, flipped);
});

test('writeCaffeTensor rejects wrong sizes and indices', () => {
  const batch = new Float32Array(2 * IMAGE_FLOATS);
  assert.throws(() => writeCaffeTensor(new Uint8Array(10), batch, 0), { code: ErrorCodes.INVALID_ARGUMENT });
  assert.throws(() => writeCaffeTensor(new Uint8Array(IMAGE_FLOATS), batch, 2), { code: ErrorCodes.INVALID_ARGUMENT });
  assert.throws(() => writeCaffeTensor(new Uint8Array(IMAGE_FLOATS), batch, -1), { code: ErrorCodes.INVALID_ARGUMENT });
});

// ---------------------------------------------------------------- Flickr8k

const FLICKR_IMAGES = join(process.env.PIXEL_INFO_DATA_DIR ?? join(process.cwd(), '..', 'shared', 'datasets'), 'flickr8k', 'images');

test('Flickr8k JPEGs (already 224x224) come through unchanged', async (t) => {
  if (!existsSync(FLICKR_IMAGES)) return t.skip('dataset not available');
  const names = (await readdir(FLICKR_IMAGES)).filter((n) => n.endsWith('.jpg')).sort().slice(0, 5);
  for (const name of names) {
    const path = join(FLICKR_IMAGES, name);
    const img = await loadImage(path);
    assert.deepEqual([img.format, img.width, img.height], ['jpeg', 224, 224]);
    const plain = await sharp(path).raw().toBuffer();
    assert.deepEqual(Buffer.from(img.pixels), plain, `${name}: a 224x224 input is not resampled`);
  }
});
