/**
 * Finding 10, the CLI could not resume: `caption` killed halfway kept what --jsonl had printed, 0 bytes with --json
 * (written only at the end), and a re-run started from zero. Now `--out FILE --resume` keeps what a killed run
 * wrote for unchanged inputs and captions only the rest; a run killed with SIGKILL at 50% and resumed ends with
 * exactly one record per input, identical to an uninterrupted run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, photo, waitUntil } from './helpers.js';

const INPUTS = 12;
const COMMON = ['--batch-size', '1', '--threads', '1', '--no-progress'];

function caption(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'caption', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stderr: r.stderr };
}

/** Records in a file: JSON lines, or a JSON array. */
function records(path: string): Array<{ file: string; sha256?: string }> {
  const text = readFileSync(path, 'utf8');
  return text.trimStart().startsWith('[') ? JSON.parse(text) : text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function lineCount(path: string): number {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).length : 0;
}

for (const format of ['jsonl', 'json'] as const) {
  test(`caption --${format} --out: killed with SIGKILL at 50% and resumed, the output is identical to an uninterrupted run`, { timeout: 240_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'px-resume-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const images = join(dir, 'images');
    mkdirSync(images);
    for (let i = 0; i < INPUTS; i++) writeFileSync(join(images, `photo-${String(i).padStart(2, '0')}.jpg`), await photo(320, 240, 300 + i));
    // One input that fails: its error record is a result too, kept and not retried.
    writeFileSync(join(images, 'photo-99-broken.jpg'), Buffer.from('not an image at all'));
    const total = INPUTS + 1;

    const reference = join(dir, `reference.${format}`);
    const full = caption([images, `--${format}`, '--out', reference, ...COMMON]);
    assert.equal(full.code, 1, full.stderr); // the broken input
    assert.equal(records(reference).length, total);

    // Killed halfway through: SIGKILL once half the records are written.
    const out = join(dir, `resumed.${format}`);
    const checkpoint = format === 'json' ? `${out}.partial` : out;
    const child = spawn(process.execPath, [CLI, 'caption', images, `--${format}`, '--out', out, ...COMMON], { cwd: ROOT, stdio: 'ignore' });
    t.after(() => child.exitCode === null && child.kill('SIGKILL'));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const half = await waitUntil(() => lineCount(checkpoint) >= Math.ceil(total / 2), 90_000, 10);
    child.kill('SIGKILL');
    await exited;
    const written = lineCount(checkpoint);
    t.diagnostic(`killed with ${written} of ${total} records in ${checkpoint.slice(dir.length + 1)}${format === 'json' ? `; ${out.slice(dir.length + 1)} exists: ${existsSync(out)}` : ''}`);
    assert.ok(half.ok, 'the run got halfway');
    assert.ok(written < total, 'killed before the end');
    if (format === 'json') assert.equal(existsSync(out), false, '--json never leaves a half-written FILE');

    const resumed = caption([images, `--${format}`, '--out', out, '--resume', ...COMMON]);
    t.diagnostic(resumed.stderr.split('\n').find((l) => l.includes('resuming')) ?? '');
    assert.equal(resumed.code, 1, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming .*: ${written} of ${total} inputs already done`));
    assert.equal(readFileSync(out, 'utf8'), readFileSync(reference, 'utf8'), 'identical to the uninterrupted run');
    const files = records(out).map((r) => r.file);
    assert.equal(new Set(files).size, total, 'exactly one record per input');
    if (format === 'json') assert.equal(existsSync(`${out}.partial`), false, 'the checkpoint is removed');

    if (format === 'jsonl') {
      // A changed input is captioned again (its record replaced); unchanged ones are not.
      const changed = join(images, 'photo-03.jpg');
      writeFileSync(changed, await photo(320, 240, 777));
      const again = caption([images, '--jsonl', '--out', out, '--resume', ...COMMON]);
      assert.match(again.stderr, new RegExp(`${total - 1} of ${total} inputs already done`));
      const after = records(out);
      assert.equal(after.length, total);
      assert.equal(new Set(after.map((r) => r.file)).size, total);
      const { createHash } = await import('node:crypto');
      assert.equal(after.find((r) => r.file === changed)?.sha256, createHash('sha256').update(readFileSync(changed)).digest('hex'));
    }
  });
}

test('caption --resume without --out, or with a format it cannot resume, is a usage error', { timeout: 60_000 }, () => {
  const noOut = caption(['x.jpg', '--jsonl', '--resume']);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /--resume needs --out/);
  const csv = caption(['x.jpg', '--csv', '--out', join(tmpdir(), 'never.csv'), '--resume']);
  assert.equal(csv.code, 2);
  assert.match(csv.stderr, /--resume needs --jsonl or --json/);
  const help = spawnSync(process.execPath, [CLI, 'caption', '--help'], { cwd: ROOT, encoding: 'utf8' });
  assert.match(help.stdout, /--resume/);
  assert.match(help.stdout, /--out <file>/);
});

test('a checkpoint cut in the middle of a record keeps the whole records before it', async () => {
  const { parseRecordLines } = await import('../../src/cli/caption-output.js');
  const a = JSON.stringify({ file: 'a.jpg', captions: [{ text: 'a dog', score: -1, logProb: -1 }], sha256: '1' });
  const b = JSON.stringify({ file: 'b.jpg', error: { code: 'NOT_AN_IMAGE', message: 'b.jpg: not an image' } });
  const c = JSON.stringify({ file: 'c.jpg', captions: [{ text: 'a cat', score: -1, logProb: -1 }] });
  assert.deepEqual(parseRecordLines(`${a}\n${b}\n${c.slice(0, 20)}`).map((r) => r.file), ['a.jpg', 'b.jpg']);
  assert.deepEqual(parseRecordLines(`${a}\n${b}\n${c}`).map((r) => r.file), ['a.jpg', 'b.jpg'], 'a last line without its newline was cut short');
  assert.deepEqual(parseRecordLines(`${a}\n${b}\n${c}\n`).map((r) => r.file), ['a.jpg', 'b.jpg', 'c.jpg']);
  assert.deepEqual(parseRecordLines(`${a}\n{"file":1}\n${c}\n`).map((r) => r.file), ['a.jpg'], 'nothing after a line that is not a record');
});
