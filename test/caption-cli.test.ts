import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommanderError } from 'commander';
import sharp from 'sharp';
import { registerCaption } from '../src/cli/commands/caption.js';
import { SMALL_DIMS, toyVocabulary, toyWeights, writeToyModelDir } from './fixtures/decoder/toy-decoder.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { runCommand, type CliRun } from './helpers/cli.js';

const NEEDS_DATA = { skip: !HAVE_FLICKR8K && 'no ../shared' };
const IMAGES = ['1000268201_693b08cb0e.jpg', '1001773457_577c3a7d70.jpg', '1002674143_1b742ab4b8.jpg'];

type Run = CliRun;

const caption = (args: string[]): Promise<Run> => runCommand(registerCaption, ['caption', ...args]);

/**
 * A tmp dir with: a toy model whose words are long (so captions pass 125 characters), a folder holding three
 * real Flickr8k images (one in a subfolder), a truncated JPEG and a text file named .jpg, plus a plain .txt.
 */
function fixture(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'px-caption-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = writeToyModelDir(join(dir, 'model'), toyWeights(SMALL_DIMS, 7, 0));
  const words = toyVocabulary(SMALL_DIMS.vocab).map((w, i) => (i < 4 ? w : `${w}${'x'.repeat(6)}`));
  writeFileSync(join(model, 'vocab.json'), JSON.stringify(words));
  const images = join(dir, 'images');
  mkdirSync(join(images, 'more'), { recursive: true });
  copyFileSync(join(FLICKR8K_IMAGES, IMAGES[0]), join(images, IMAGES[0]));
  copyFileSync(join(FLICKR8K_IMAGES, IMAGES[1]), join(images, IMAGES[1]));
  copyFileSync(join(FLICKR8K_IMAGES, IMAGES[2]), join(images, 'more', IMAGES[2]));
  writeFileSync(join(images, 'broken.jpg'), readFileSync(join(FLICKR8K_IMAGES, IMAGES[0])).subarray(0, 2000));
  writeFileSync(join(images, 'fake.jpg'), 'this is text, not a JPEG');
  writeFileSync(join(images, 'notes.txt'), 'not an image and not an image name: skipped by the folder walk');
  const good = [join(images, IMAGES[0]), join(images, IMAGES[1]), join(images, 'more', IMAGES[2])];
  return { dir, model, images, good, broken: join(images, 'broken.jpg'), fake: join(images, 'fake.jpg'), text: join(images, 'notes.txt') };
}

test('caption a folder: a line per image, each bad file reported on stderr with its code, exit 1; heat-maps per word', NEEDS_DATA, async (t) => {
  const f = fixture(t);
  const heat = join(f.dir, 'heat');
  const run = await caption([f.images, f.text, '--model', f.model, '--no-progress', '--attention-dir', heat, '--max-length', '6']);
  assert.equal(run.code, 1);
  const lines = new Map(run.stdout.map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]));
  assert.deepEqual([...lines.keys()].sort(), [...f.good].sort());
  for (const text of lines.values()) {
    const words = text.split(' ');
    assert.ok(words.length >= 1 && words.length <= 6, text);
    assert.equal(text, text.toLowerCase());
    assert.ok(!text.endsWith('.'));
  }
  assert.equal(run.stderr.length, 3, run.stderr.join('\n'));
  assert.match(run.stderr.find((l) => l.includes('broken.jpg')) ?? '', /IMAGE_TRUNCATED/);
  assert.match(run.stderr.find((l) => l.includes('fake.jpg')) ?? '', /NOT_AN_IMAGE/);
  assert.match(run.stderr.find((l) => l.includes('notes.txt')) ?? '', /NOT_AN_IMAGE/);

  // One PNG per word of each caption, named <stem>_<index>_<word>.png, of the image's size.
  const pngs = readdirSync(heat).sort();
  const expected = [...lines].flatMap(([file, text]) =>
    text.split(' ').map((w, i) => `${file.split('/').pop()!.replace(/\.jpg$/, '')}_${String(i).padStart(2, '0')}_${w}.png`),
  );
  assert.deepEqual(pngs, expected.sort());
  const meta = await sharp(join(heat, pngs[0])).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 224, 224]);
});

test('caption --json / --jsonl / --csv: the documented shapes; --alt-text: sentence case, period, <= 125 characters', NEEDS_DATA, async (t) => {
  const f = fixture(t);
  const inputs = [...f.good.slice(0, 2), f.broken];

  const json = await caption([...inputs, '--model', f.model, '--json', '--alt-text', '--beam', '3', '--n-best', '2']);
  assert.equal(json.code, 1);
  const records = JSON.parse(json.stdout.join('\n'));
  assert.deepEqual(records.map((r: { file: string }) => r.file), inputs);
  for (const r of records.slice(0, 2)) {
    assert.equal(r.captions.length, 2);
    assert.ok(r.captions[0].score >= r.captions[1].score);
    for (const c of r.captions) {
      assert.equal(typeof c.score, 'number');
      assert.ok(c.text.length <= 125, `${c.text.length}: ${c.text}`);
      assert.match(c.text, /^[A-Z].*[^.]\.$/);
    }
  }
  assert.ok(records.slice(0, 2).some((r: { captions: Array<{ text: string }> }) => r.captions[0].text.length > 100), 'long captions were cut, not short ones');
  assert.deepEqual(Object.keys(records[2]), ['file', 'error']);
  assert.equal(records[2].error.code, 'IMAGE_TRUNCATED');

  const jsonl = await caption([...inputs, '--model', f.model, '--jsonl']);
  assert.equal(jsonl.code, 1);
  const rows = jsonl.stdout.map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((r) => r.file), inputs);
  assert.equal(rows[0].captions.length, 1);
  assert.equal(rows[2].error.code, 'IMAGE_TRUNCATED');
  // Without --alt-text the text is the model's: lower case, no period, and the same best caption as --json's
  // first (n-best does not change the 1-best).
  assert.equal(rows[0].captions[0].text, rows[0].captions[0].text.toLowerCase());

  const csv = await caption([...inputs, '--model', f.model, '--csv']);
  assert.equal(csv.code, 1);
  assert.equal(csv.stdout[0], 'file,caption,score');
  assert.equal(csv.stdout.length, 3);
  const cells = csv.stdout[1].split(',');
  assert.equal(cells[0], inputs[0]);
  assert.equal(cells[1], rows[0].captions[0].text);
  assert.ok(Math.abs(Number(cells[2]) - rows[0].captions[0].score) < 1e-4);
  assert.match(csv.stderr.join('\n'), /broken\.jpg: IMAGE_TRUNCATED/);
});

test('caption: all good → exit 0; usage errors; a missing model is MODEL_NOT_FOUND', NEEDS_DATA, async (t) => {
  const f = fixture(t);
  const ok = await caption([join(f.images, '*.jpg'), '--model', f.model, '--max-length', '3', '--beam', '1']);
  // The glob matches the two images at the top, broken.jpg and fake.jpg.
  assert.equal(ok.stdout.length, 2);
  assert.equal(ok.code, 1);
  const good = await caption([join(f.images, 'more'), '--model', f.model, '--beam', '1']);
  assert.equal(good.code, 0);
  assert.equal(good.stdout.length, 1);

  await assert.rejects(caption([f.good[0], '--model', f.model, '--json', '--csv']), (err: CommanderError) => err.code === 'commander.conflictingOption');
  await assert.rejects(caption([f.good[0], '--model', f.model, '--beam', '2', '--n-best', '3']), (err: CommanderError) => err.exitCode === 2);
  await assert.rejects(caption([f.good[0], '--model', f.model, '--beam', '0']), (err: CommanderError) => err.code === 'commander.invalidArgument');
  mkdirSync(join(f.dir, 'empty'));
  await assert.rejects(caption([join(f.dir, 'empty'), '--model', f.model]), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(caption([f.good[0], '--model', join(f.dir, 'no-model')]), { code: 'MODEL_NOT_FOUND' });
});
