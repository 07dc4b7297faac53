/** `pixel-info score` end to end: COCO files in, the toolkit's numbers out; bad input is a usage error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command, CommanderError } from 'commander';
import { registerScore } from '../src/cli/commands/score.js';
import { METRIC_NAMES } from '../src/metrics/index.js';

const run = promisify(execFile);
const FIXTURES = join(import.meta.dirname, 'fixtures', 'metrics');
const { sets } = JSON.parse(readFileSync(join(FIXTURES, 'sets.json'), 'utf8'));
const set = sets.find((s: { name: string }) => s.name === 'styled');

const dir = mkdtempSync(join(tmpdir(), 'pixel-info-score-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

// COCO files with numeric image ids, like captions_val2014.json and a results file
const numericId = (i: number) => 1000 + i;
const refsFile = join(dir, 'refs.json');
const resultsFile = join(dir, 'results.json');
writeFileSync(
  refsFile,
  JSON.stringify({
    info: {},
    images: set.images.map((_: unknown, i: number) => ({ id: numericId(i), file_name: `${i}.jpg` })),
    annotations: set.images.flatMap((im: { refs: string[] }, i: number) => im.refs.map((caption, k) => ({ image_id: numericId(i), id: i * 10 + k, caption }))),
  }),
);
// results in another order than the references: the order of the references file counts, as in the toolkit
writeFileSync(resultsFile, JSON.stringify(set.images.map((im: { candidate: string }, i: number) => ({ image_id: numericId(i), caption: im.candidate })).reverse()));

test('pixel-info score --json: a real process prints exactly the seven metrics, equal to the toolkit', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(FIXTURES, 'score-cli.ts'), 'score', '--refs', refsFile, '--results', resultsFile, '--json', '--meteor', 'native'], { cwd: join(import.meta.dirname, '..') });
  const out = JSON.parse(stdout);
  assert.deepEqual(Object.keys(out), [...METRIC_NAMES]);
  for (const m of METRIC_NAMES) {
    const tol = m === 'METEOR' ? 0.03 : 1e-6; // native METEOR: see test/metrics.test.ts
    assert.ok(Math.abs(out[m] - set.scores[m]) <= tol, `${m}: ${out[m]} vs toolkit ${set.scores[m]}`);
  }
});

/** Runs the command in this process, capturing output and the exit code. */
async function score(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void (stdout += `${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void (stderr += `${a.join(' ')}\n`);
  const program = new Command('pixel-info').exitOverride().configureOutput({ writeOut: (s) => void (stdout += s), writeErr: (s) => void (stderr += s) });
  registerScore(program);
  let code = 0;
  try {
    await program.parseAsync(['node', 'pixel-info', 'score', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    code = err.exitCode === 0 ? 0 : 2;
  } finally {
    console.log = log;
    console.error = error;
    process.exitCode = 0;
  }
  return { code, stdout, stderr };
}

test('pixel-info score: table output, METEOR off', async () => {
  const r = await score(['--refs', refsFile, '--results', resultsFile, '--meteor', 'off']);
  assert.equal(r.code, 0, r.stderr);
  for (const m of METRIC_NAMES) assert.match(r.stdout, new RegExp(`^${m}\\s`, 'm'));
  assert.match(r.stdout, new RegExp(`CIDEr\\s+${set.scores.CIDEr.toFixed(4)}`));
  assert.match(r.stdout, /^METEOR\s+-\s+\(off\)/m);
  const json = await score(['--refs', refsFile, '--results', resultsFile, '--meteor', 'off', '--json']);
  assert.equal(JSON.parse(json.stdout).METEOR, null);
});

test('pixel-info score: bad input is a usage error (exit 2) naming the file and the reason', async () => {
  const write = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const cases: [string[], RegExp][] = [
    [['--refs', join(dir, 'missing.json'), '--results', resultsFile], /missing\.json: file not found/],
    [['--refs', write('empty.json', ''), '--results', resultsFile], /empty\.json: file is empty/],
    [['--refs', write('broken.json', '{"images": ['), '--results', resultsFile], /broken\.json: not valid JSON/],
    [['--refs', write('nocaption.json', '{"images":[{"id":1}],"annotations":[{"image_id":1}]}'), '--results', resultsFile], /nocaption\.json: annotations\[0\]\.caption: Required/],
    [['--refs', refsFile, '--results', write('notarray.json', '{"image_id":1}')], /notarray\.json: Expected array/],
    [['--refs', refsFile, '--results', write('unknown.json', '[{"image_id":5,"caption":"a dog"}]')], /unknown\.json: image_id 5 is not in/],
    [['--refs', refsFile, '--results', write('stringid.json', '[{"image_id":"1000","caption":"a dog"}]')], /image_id "1000" is not in/],
    [['--refs', refsFile, '--results', write('twice.json', '[{"image_id":1000,"caption":"a"},{"image_id":1000,"caption":"b"}]')], /image_id 1000 has more than one caption/],
    [['--refs', refsFile, '--results', write('none.json', '[]')], /no results to score/],
    [['--refs', refsFile, '--results', resultsFile, '--meteor', 'maybe'], /Allowed choices are auto, jar, native, off/],
    [['--results', resultsFile], /required option '--refs <file>' not specified/],
  ];
  for (const [args, message] of cases) {
    const r = await score(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit code`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '');
  }
});
