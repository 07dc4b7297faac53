/** `pixel-info match` (one image, or --pairs FILE.tsv) and the matcher flags of `pixel-info caption`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommanderError } from 'commander';
import { registerMatch } from '../src/cli/commands/match.js';
import { registerCaption } from '../src/cli/commands/caption.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { runCommand } from './helpers/cli.js';
import { writeToyMatcherDir } from './fixtures/match/toy-matcher.js';

const NEEDS_DATA = { skip: HAVE_FLICKR8K ? false : 'needs ../shared/datasets/flickr8k' };
const GIRL = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');
const DOGS = join(FLICKR8K_IMAGES, '1001773457_577c3a7d70.jpg');

const match = (args: string[]) => runCommand(registerMatch, ['match', ...args]);
const caption = (args: string[]) => runCommand(registerCaption, ['caption', ...args]);

function fixture(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'px-match-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, matcher: writeToyMatcherDir(join(dir, 'matcher')).dir };
}

test('match --pairs: one JSON line per pair in file order; a bad line and a bad image are error lines, the rest go on, exit 1', NEEDS_DATA, async (t) => {
  const f = fixture(t);
  const pairs = join(f.dir, 'pairs.tsv');
  const missing = join(f.dir, 'missing.jpg');
  writeFileSync(
    pairs,
    [`${GIRL}\tA little girl climbing into a wooden playhouse .`, `${DOGS}\tTwo dogs on the road`, 'no tab on this line', '', `${missing}\ta cat`, `${GIRL}\ttwo dogs`, `${GIRL}\t`].join('\n') + '\n',
  );
  const run = await match(['--pairs', pairs, '--json', '--matcher', f.matcher, '--threads', '1']);
  assert.equal(run.code, 1, run.stderr.join('\n'));
  const lines = run.stdout.map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.line), [1, 2, 3, 5, 6, 7]);
  for (const l of [lines[0], lines[1], lines[4], lines[5]]) {
    assert.ok(l.score >= 0 && l.score <= 1, JSON.stringify(l));
    assert.equal(typeof l.logit, 'number');
    assert.ok(Math.abs(l.score - 1 / (1 + Math.exp(-l.logit))) < 1e-9);
    assert.equal(l.error, undefined);
  }
  assert.equal(lines[0].image, GIRL);
  assert.equal(lines[0].text, 'A little girl climbing into a wooden playhouse .');
  assert.equal(lines[5].text, '', 'an empty sentence is scored (as one unknown word)');
  assert.equal(lines[2].error.code, 'INVALID_ARGUMENT');
  assert.match(lines[2].error.message, /line 3.*image-path<TAB>sentence/);
  assert.equal(lines[3].image, missing);
  assert.equal(lines[3].error.code, 'FILE_NOT_FOUND');
  assert.match(lines[3].error.message, /missing\.jpg/);

  // The same pair scored on its own gives the same number: grouping by image changes nothing.
  const single = await match([GIRL, 'two dogs', 'A little girl climbing into a wooden playhouse .', '--json', '--matcher', f.matcher, '--threads', '1']);
  assert.equal(single.code, 0, single.stderr.join('\n'));
  const alone = single.stdout.map((l) => JSON.parse(l));
  assert.deepEqual(alone.map((l) => l.text), ['two dogs', 'A little girl climbing into a wooden playhouse .']);
  assert.ok(Math.abs(alone[0].score - lines[4].score) < 1e-6);
  assert.ok(Math.abs(alone[1].score - lines[0].score) < 1e-6);
});

test('match: usage errors exit 2 before loading anything; a missing matcher directory is MODEL_NOT_FOUND', async (t) => {
  const f = fixture(t);
  for (const args of [[GIRL], [], ['--pairs', 'x.tsv', GIRL, 'a dog']]) {
    await assert.rejects(match(args), (err: CommanderError) => err.exitCode === 2, args.join(' '));
  }
  await assert.rejects(match([GIRL, 'a dog', '--matcher', join(f.dir, 'absent')]), (err: { code: string; message: string }) => err.code === 'MODEL_NOT_FOUND' && err.message.includes('absent'));
  await assert.rejects(match(['--pairs', join(f.dir, 'none.tsv'), '--matcher', f.matcher]), (err: { code: string }) => err.code === 'FILE_NOT_FOUND');
});

test('caption --json has confidence per caption; --alt-text-min-confidence empties the alt text below it, saying why; --rerank match', NEEDS_DATA, async (t) => {
  const f = fixture(t);
  const base = [GIRL, DOGS, '--json', '--no-progress', '--threads', '1', '--matcher', f.matcher, '--beam', '3', '--n-best', '3'];
  const plain = await caption(base);
  assert.equal(plain.code, 0, plain.stderr.join('\n'));
  const records = JSON.parse(plain.stdout.join('\n'));
  const confidences = records.flatMap((r: { captions: Array<{ confidence: number }> }) => r.captions.map((c) => c.confidence));
  assert.equal(confidences.length, 6);
  for (const c of confidences) assert.ok(c > 0 && c < 1, `confidence ${c}`);

  // A threshold between the confidences: exactly the captions below it are "" with a reason.
  const sorted = [...confidences].sort((a, b) => a - b);
  const threshold = (sorted[2] + sorted[3]) / 2;
  const alt = await caption([...base, '--alt-text', '--alt-text-min-confidence', String(threshold)]);
  assert.equal(alt.code, 0, alt.stderr.join('\n'));
  const altCaptions = JSON.parse(alt.stdout.join('\n')).flatMap((r: { captions: unknown[] }) => r.captions) as Array<{ text: string; confidence: number; emptyReason?: string }>;
  assert.equal(altCaptions.filter((c) => c.text === '').length, 3);
  for (const c of altCaptions) {
    if (c.confidence < threshold) {
      assert.equal(c.text, '');
      assert.match(c.emptyReason!, /confidence 0\.\d+ is below --alt-text-min-confidence/);
    } else {
      assert.match(c.text, /^[A-Z].*\.$/, 'alt text: sentence case and a period');
      assert.equal(c.emptyReason, undefined);
    }
  }

  const reranked = await caption([...base, '--rerank', 'match']);
  for (const r of JSON.parse(reranked.stdout.join('\n')) as Array<{ captions: Array<{ confidence: number }> }>) {
    for (let i = 1; i < r.captions.length; i++) assert.ok(r.captions[i - 1].confidence >= r.captions[i].confidence);
  }

  // Usage: the threshold needs --alt-text, a matcher, and a number in [0, 1].
  // (commander errors: `pixel-info` exits 2 on every one of them.)
  await assert.rejects(caption([GIRL, '--alt-text', '--alt-text-min-confidence', '1.5']), (err: CommanderError) => err.code === 'commander.invalidArgument');
  for (const bad of [['--alt-text-min-confidence', '0.5'], ['--alt-text', '--alt-text-min-confidence', '0.5', '--no-matcher'], ['--rerank', 'match', '--no-matcher']]) {
    await assert.rejects(caption([GIRL, ...bad]), (err: CommanderError) => err.exitCode === 2, bad.join(' '));
  }
  await assert.rejects(caption([GIRL, '--rerank', 'best']), (err: CommanderError) => err.code === 'commander.invalidArgument');
});
