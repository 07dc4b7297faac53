import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { csvField, csvRow } from '../src/pipeline/format.js';
import { ALT_TEXT_MAX, toAltText } from '../src/text/alt-text.js';
import { expandInputs, segmentRegExp } from '../src/pipeline/inputs.js';
import { renderAttentionHeatmap } from '../src/render/heatmap.js';

test('alt text: sentence case, one final period, short captions untouched', () => {
  assert.equal(toAltText('a dog runs through the grass'), 'A dog runs through the grass.');
  assert.equal(toAltText('  two  people on a beach . '), 'Two people on a beach.');
  assert.equal(toAltText(''), '');
});

test('alt text: longer captions are cut at a word boundary to at most 125 characters, without a dangling "a"', () => {
  const words = 'a man in a red shirt and a woman in a blue dress are walking with a brown dog along the sandy beach near the water and the';
  const long = `${words} ${words}`;
  const alt = toAltText(long);
  assert.ok(alt.length <= ALT_TEXT_MAX, `${alt.length} characters`);
  assert.ok(alt.endsWith('.') && !alt.endsWith('..'));
  const body = alt.slice(0, -1).toLowerCase();
  assert.ok(long.startsWith(body + ' '), 'a prefix of whole words');
  assert.ok(!/ (a|the|and|in|with)$/.test(body), `ends with a function word: "${body}"`);
  // Exactly at the limit: 124 characters + the period fit.
  const exact = 'x'.repeat(60) + ' ' + 'y'.repeat(63);
  assert.equal(toAltText(exact).length, 125);
  assert.equal(toAltText('z'.repeat(300)).length, 125, 'one giant word is hard-cut');
});

test('CSV fields are quoted only when needed, quotes doubled', () => {
  assert.equal(csvField('plain text'), 'plain text');
  assert.equal(csvField('a, b'), '"a, b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField(' padded'), '" padded"');
  assert.equal(csvRow(['dir/a,b.jpg', 'a dog', '-1.2500']), '"dir/a,b.jpg",a dog,-1.2500');
});

test('inputs: files kept as given, folders walked recursively for images, globs expanded, duplicates dropped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-inputs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'photos', 'trip', 'day1'), { recursive: true });
  mkdirSync(join(dir, 'photos', '.hidden'));
  mkdirSync(join(dir, 'empty'));
  for (const f of ['photos/b.jpg', 'photos/a.PNG', 'photos/notes.txt', 'photos/trip/c.jpeg', 'photos/trip/day1/d.webp', 'photos/.hidden/e.jpg', 'photos/trip/x1.jpg', 'photos/trip/x2.gif']) {
    writeFileSync(join(dir, f), 'x');
  }
  const p = (f: string) => join(dir, f);
  const walked = await expandInputs([p('photos')]);
  assert.deepEqual(walked.files, ['photos/a.PNG', 'photos/b.jpg', 'photos/trip/c.jpeg', 'photos/trip/day1/d.webp', 'photos/trip/x1.jpg', 'photos/trip/x2.gif'].map(p));

  const mixed = await expandInputs([p('photos/notes.txt'), p('missing.jpg'), p('photos/trip/x?.*'), p('photos/**/*.jpg'), p('photos/b.jpg'), p('empty'), p('nothing-*.png')]);
  assert.deepEqual(mixed.files, [
    p('photos/notes.txt'), // named explicitly: kept, the loader reports it
    p('missing.jpg'),
    p('photos/trip/x1.jpg'),
    p('photos/trip/x2.gif'),
    p('photos/b.jpg'),
  ]);
  assert.deepEqual(mixed.empty, [p('empty'), p('nothing-*.png')]);
  const classes = await expandInputs([p('photos/trip/x[!1].gif'), p('photos/[ab].*')]);
  assert.deepEqual(classes.files, [p('photos/trip/x2.gif'), p('photos/a.PNG'), p('photos/b.jpg')]);
});

test('glob segments: * ? and classes, anchored, regex characters literal', () => {
  assert.ok(segmentRegExp('*.jpg').test('dog.jpg'));
  assert.ok(!segmentRegExp('*.jpg').test('dog.jpgx'));
  assert.ok(!segmentRegExp('*.jpg').test('dogxjpg'));
  assert.ok(segmentRegExp('img_??.png').test('img_01.png'));
  assert.ok(segmentRegExp('[0-9]*(1).jpg').test('7 copy(1).jpg'));
});

test('heat-map: PNG of the image size, the attended region hot (red), the rest cold (dark), word written', async () => {
  const width = 300;
  const height = 200;
  const grey = new Uint8Array(width * height * 3).fill(128);
  const weights = new Float32Array(49).fill(0.002);
  weights[3 * 7 + 5] = 1 - 48 * 0.002; // row 3, column 5
  const png = await renderAttentionHeatmap({ data: grey, width, height }, weights, { word: 'dog' });
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.format, 'raw');
  assert.deepEqual([info.width, info.height], [width, height]);
  const px = (x: number, y: number) => Array.from(data.subarray((y * width + x) * info.channels, (y * width + x) * info.channels + 3));
  const hot = px(Math.round((5.5 * width) / 7), Math.round((3.5 * height) / 7)); // the centre of that cell
  const cold = px(10, height - 10);
  assert.ok(hot[0] > hot[2] + 40, `hot pixel ${hot}`);
  assert.ok(cold[0] < hot[0] - 40 && cold[0] + cold[1] + cold[2] < 3 * 128, `cold pixel ${cold}`);
  // The label box darkens the top-left corner where the word is written.
  const plain = await renderAttentionHeatmap({ data: grey, width, height }, weights);
  const unlabelled = (await sharp(plain).raw().toBuffer()).subarray(0, 3 * 5);
  assert.notDeepEqual(Array.from(data.subarray(0, 15)), Array.from(unlabelled));
  await assert.rejects(renderAttentionHeatmap({ data: grey, width, height }, new Float32Array(10)), { code: 'INVALID_ARGUMENT' });
});
