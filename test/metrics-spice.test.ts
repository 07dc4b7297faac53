/**
 * SPICE (src/metrics/spice.ts) against the COCO caption toolkit's own SPICE: test/fixtures/spice/expected.json was made
 * by pycocoevalcap's PTBTokenizer and Spice().compute_score on test/fixtures/spice/captions.json
 * (`python3 test/fixtures/spice/make_expected.py`). Needs Java and the jars of `bash scripts/fetch-spice.sh` (which
 * scripts/setup.sh runs): without them these tests fail, saying so; they are never skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCodes, PixelInfoError } from '../src/errors.js';
import { checkSpiceInstall, evaluateCaptions, METRIC_NAMES, spice } from '../src/metrics/index.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const FIXTURES = join(import.meta.dirname, 'fixtures', 'spice');

interface FixtureImage {
  id: string;
  refs: string[];
  candidate: string;
}
interface ExpectedImage {
  id: string;
  candidate: string;
  refs: string[];
  SPICE: number;
  categories: Record<string, Record<string, number | null>>;
}
const fixture: { images: FixtureImage[] } = JSON.parse(readFileSync(join(FIXTURES, 'captions.json'), 'utf8'));
const expected: { SPICE: number; images: ExpectedImage[] } = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8'));
const expectedById = new Map(expected.images.map((im) => [im.id, im]));

// Image ids as `pixel-info score` and `eval` key them (JSON of the COCO id); the file's order, not sorted.
const key = (id: string) => JSON.stringify(id);
const refs = new Map(fixture.images.map((im) => [key(im.id), im.refs]));
const candidates = new Map(fixture.images.map((im) => [key(im.id), im.candidate]));

const work = mkdtempSync(join(tmpdir(), 'pixel-info-spice-test-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

const TOL = 1e-9; // the same jar on the same tokens: identical but for the last bit of the mean

/** Compares an evaluation's SPICE with the toolkit's, image by image. */
function assertToolkitSpice(ev: Awaited<ReturnType<typeof evaluateCaptions>>): void {
  assert.ok(ev.spice, 'SPICE was asked for');
  ev.imageIds.forEach((k, i) => {
    const id = JSON.parse(k) as string;
    const want = expectedById.get(id)!;
    // the captions SPICE saw are the toolkit's tokenisation
    assert.equal(ev.tokenized.candidates[i], want.candidate, `${id}: tokenised candidate`);
    assert.deepEqual(ev.tokenized.refs[i], want.refs, `${id}: tokenised references`);
    assert.ok(Math.abs(ev.spice!.perImage[i] - want.SPICE) <= TOL, `${id}: SPICE ${ev.spice!.perImage[i]} vs toolkit ${want.SPICE}`);
    for (const [category, scores] of Object.entries(want.categories)) {
      const got = ev.spice!.categories[i][category];
      assert.ok(got, `${id}: category ${category}`);
      for (const [name, v] of Object.entries(scores)) {
        const g = got[name as keyof typeof got];
        if (v === null) assert.ok(Number.isNaN(g), `${id} ${category}.${name}: ${g} vs toolkit NaN`);
        else assert.ok(Math.abs(g - v) <= TOL, `${id} ${category}.${name}: ${g} vs toolkit ${v}`);
      }
    }
  });
  assert.ok(Math.abs(ev.spice!.score - expected.SPICE) <= TOL, `corpus SPICE ${ev.spice!.score} vs toolkit ${expected.SPICE}`);
}

test('the SPICE jars are installed (bash scripts/fetch-spice.sh)', () => {
  checkSpiceInstall(); // throws MODEL_NOT_FOUND naming the missing file and scripts/fetch-spice.sh
});

test('SPICE equals the toolkit: corpus and per image, from raw captions (PTB-tokenised as the toolkit), empty parse cache', async () => {
  const cacheDir = join(work, 'cache');
  const ev = await evaluateCaptions(refs, candidates, { meteor: 'off', spice: { cacheDir } });
  assert.equal(ev.imageIds.length, fixture.images.length);
  assertToolkitSpice(ev);

  // again with the parse cache the first run filled (read back through FST, which needs the --add-opens)
  const again = await evaluateCaptions(refs, candidates, { meteor: 'off', spice: { cacheDir, threads: 1 } });
  assertToolkitSpice(again);
});

test('pixel-info score --spice --json: a real process prints the seven metrics and SPICE, equal to the toolkit', async () => {
  const refsFile = join(work, 'refs.json');
  const resultsFile = join(work, 'results.json');
  writeFileSync(
    refsFile,
    JSON.stringify({
      images: fixture.images.map((im) => ({ id: im.id })),
      annotations: fixture.images.flatMap((im, i) => im.refs.map((caption, k) => ({ image_id: im.id, id: i * 10 + k, caption }))),
    }),
  );
  writeFileSync(resultsFile, JSON.stringify(fixture.images.map((im) => ({ image_id: im.id, caption: im.candidate }))));
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'metrics', 'score-cli.ts'), 'score', '--refs', refsFile, '--results', resultsFile, '--json', '--meteor', 'off', '--spice'],
    { cwd: ROOT },
  );
  const out = JSON.parse(stdout);
  assert.deepEqual(Object.keys(out), [...METRIC_NAMES, 'SPICE']);
  assert.ok(Math.abs(out.SPICE - expected.SPICE) <= TOL, `SPICE ${out.SPICE} vs toolkit ${expected.SPICE}`);
});

test('missing jars: MODEL_NOT_FOUND naming the file and scripts/fetch-spice.sh, from the library and from the CLI (exit 2)', async () => {
  const empty = mkdtempSync(join(work, 'empty-cache-'));
  await assert.rejects(spice([['a dog runs']], ['a dog runs'], { dir: join(empty, 'spice') }), (err: unknown) => {
    assert.ok(err instanceof PixelInfoError);
    assert.equal(err.code, ErrorCodes.MODEL_NOT_FOUND);
    assert.match(err.message, /spice-1\.0\.jar/);
    assert.match(err.message, /bash scripts\/fetch-spice\.sh/);
    return true;
  });
  // evaluateCaptions refuses before it computes anything
  await assert.rejects(evaluateCaptions(refs, candidates, { meteor: 'off', spice: { dir: empty } }), /fetch-spice\.sh/);

  const refsFile = join(work, 'refs-small.json');
  const resultsFile = join(work, 'results-small.json');
  writeFileSync(refsFile, JSON.stringify({ images: [{ id: 1 }], annotations: [{ image_id: 1, id: 1, caption: 'a dog runs on the grass' }] }));
  writeFileSync(resultsFile, JSON.stringify([{ image_id: 1, caption: 'a dog runs' }]));
  const r = await run(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'metrics', 'score-cli.ts'), 'score', '--refs', refsFile, '--results', resultsFile, '--meteor', 'off', '--spice'],
    { cwd: ROOT, env: { ...process.env, PIXEL_INFO_CACHE_DIR: empty, XDG_CACHE_HOME: empty } },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => err,
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /MODEL_NOT_FOUND/);
  assert.match(r.stderr, /bash scripts\/fetch-spice\.sh/);
});

test('a Java failure is an error with the last lines Java wrote', async () => {
  // a heap too small for the JVM to start: a real java failure, in a moment
  await assert.rejects(spice([['a dog runs']], ['a dog runs'], { maxHeap: '1k', cacheDir: join(work, 'cache-fail') }), (err: unknown) => {
    assert.ok(err instanceof PixelInfoError);
    assert.equal(err.code, ErrorCodes.INTERNAL);
    assert.match(err.message, /exited with code \d+/);
    assert.match(err.message, /heap/i);
    return true;
  });
  await assert.rejects(spice([['a dog runs']], ['a dog runs'], { java: join(work, 'no-such-java') }), (err: unknown) => {
    assert.ok(err instanceof PixelInfoError);
    assert.equal(err.code, ErrorCodes.PYTHON_UNAVAILABLE);
    assert.match(err.message, /Java/);
    return true;
  });
});
