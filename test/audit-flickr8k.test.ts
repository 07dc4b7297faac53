/**
 * The audit with the real models on real photos: the fixture site (test/fixtures/audit/site) with Flickr8k
 * test-split images copied into a temp folder, a truncated image, a missing one and a remote one. The audit must
 * flag exactly the images whose data-expect says so. Needs the trained matcher (models/flickr8k-match) and the
 * Flickr8k data; skips without them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { defaultMatcherDir } from '../src/pipeline/captioner.js';
import { registerAudit } from '../src/cli/commands/audit.js';
import type { AuditReport } from '../src/audit/audit.js';
import { FLICKR8K, FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';
import { runCommand } from './helpers/cli.js';
import { writeToyMatcherDir } from './fixtures/match/toy-matcher.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'audit', 'site');
const HAVE_MATCHER = existsSync(join(defaultMatcherDir(), 'model-card.json'));
const NEEDS_DATA = { skip: !HAVE_FLICKR8K && 'no ../shared Flickr8k data' };
const SKIP = { skip: !HAVE_FLICKR8K ? 'no ../shared Flickr8k data' : !HAVE_MATCHER ? `no matcher model at ${defaultMatcherDir()}` : false };

/** Every <img> line of the fixture pages: page (relative to the site), line, src, alt, expected status. */
function expectations() {
  const out: Array<{ page: string; line: number; src: string; alt: string | null; expect: string }> = [];
  for (const page of ['index.html', 'gallery/index.html']) {
    readFileSync(join(FIXTURE, page), 'utf8').split('\n').forEach((text, i) => {
      const expect = /data-expect="(\w+)"/.exec(text)?.[1];
      if (!expect) return;
      out.push({
        page,
        line: i + 1,
        src: /(?:src|srcset)="([^" ]+)/.exec(text)![1], // one image per line; for the <picture>, its source
        alt: /alt="([^"]*)"/.exec(text)?.[1] ?? null,
        expect,
      });
    });
  }
  return out;
}

test('fixture alt texts are real Flickr8k captions, and the photos are from the test split', NEEDS_DATA, () => {
  const tokens = readFileSync(join(FLICKR8K, 'Flickr8k.token.txt'), 'utf8');
  const testSplit = new Set(readFileSync(join(FLICKR8K, 'Flickr_8k.testImages.txt'), 'utf8').split(/\s+/).filter(Boolean));
  const captionsOf = new Map<string, string[]>();
  for (const line of tokens.split('\n')) {
    const m = /^(\S+\.jpg)#\d\t(.*)$/.exec(line.trim());
    if (m) captionsOf.set(m[1], [...(captionsOf.get(m[1]) ?? []), m[2].trim().toLowerCase()]);
  }
  for (const e of expectations()) {
    const file = e.src.split('/').pop()!;
    if (e.expect === 'ok' || e.expect === 'mismatch') {
      assert.ok(testSplit.has(file), `${file} is not in the test split`);
      const own = captionsOf.get(file)!.includes(e.alt!.toLowerCase());
      const anyone = [...captionsOf.values()].some((c) => c.includes(e.alt!.toLowerCase()));
      assert.ok(anyone, `${e.alt} is not a Flickr8k caption`);
      assert.equal(own, e.expect === 'ok', `${e.page}:${e.line}: ${e.alt} ${own ? 'is' : 'is not'} a caption of ${file}`);
    }
  }
});

test('audit the fixture site with the real models: exactly the bad alt texts and images are flagged; reports written', SKIP, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-audit-real-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const site = join(dir, 'site');
  cpSync(FIXTURE, site, { recursive: true });
  mkdirSync(join(site, 'images'));
  const wanted = new Set(expectations().map((e) => e.src.split('/').pop()!).filter((f) => /^\d+_\w+\.jpg$/.test(f)));
  for (const f of wanted) cpSync(join(FLICKR8K_IMAGES, f), join(site, 'images', f));
  writeFileSync(join(site, 'images', 'broken.jpg'), readFileSync(join(FLICKR8K_IMAGES, '1131800850_89c7ffd477.jpg')).subarray(0, 3000));

  const html = join(dir, 'report.html');
  const md = join(dir, 'report.md');
  const run = await runCommand(registerAudit, ['audit', site, '--json', '--report', html, '--no-progress']);
  assert.equal(run.code, 1, run.stderr.join('\n'));
  const report: AuditReport = JSON.parse(run.stdout.join('\n'));
  const expected = expectations();
  assert.equal(report.images.length, expected.length);
  const rows = expected.map((e) => ({ e, r: report.images.find((x) => relative(site, x.page) === e.page && x.line === e.line) }));
  // For the record, before any assertion: how far from the bar each alt text is.
  t.diagnostic(
    rows.map(({ e, r }) => `${e.page}:${e.line} expect ${e.expect}, got ${r?.status} ${r?.score?.toFixed(3) ?? '-'} | ${r?.suggestion?.text ?? ''} (${r?.suggestion?.confidence?.toFixed(2) ?? '-'})`).join('\n'),
  );
  for (const { e, r } of rows) {
    assert.ok(r, `${e.page}:${e.line} not in the report`);
    if (e.expect === 'broken') {
      assert.ok(r.error, `${e.page}:${e.line}: expected a broken image`);
      assert.equal(r.attention, true);
      continue;
    }
    assert.equal(r.status, e.expect, `${e.page}:${e.line}: ${e.alt} → ${r.status} (score ${r.score})`);
    assert.equal(r.attention, ['missing', 'placeholder', 'mismatch'].includes(e.expect), `${e.page}:${e.line} attention`);
    if (e.expect === 'unchecked') assert.match(r.skipped!, /remote/);
    else {
      assert.ok(r.suggestion && r.suggestion.text.endsWith('.') && r.suggestion.text.length <= 125, JSON.stringify(r.suggestion));
      assert.ok(r.suggestion.confidence! >= 0 && r.suggestion.confidence! <= 1);
    }
  }
  assert.equal(report.images.find((r) => r.src === 'images/broken.jpg')!.error!.code, 'IMAGE_TRUNCATED');
  assert.equal(report.images.find((r) => r.src === '/images/missing.jpg')!.error!.code, 'FILE_NOT_FOUND');
  assert.deepEqual(
    { ...report.summary },
    { pages: 2, images: 16, attention: 8, missing: 1, empty: 1, decorative: 1, placeholder: 2, ok: 6, mismatch: 3, unchecked: 3, skipped: 1, errors: 2 },
  );

  // The HTML report: one thumbnail per readable image row, nothing fetched from outside.
  const page = readFileSync(html, 'utf8');
  assert.equal([...page.matchAll(/<img src="data:image\/jpeg;base64,/g)].length, 13);
  // The Markdown report from a second run (each run loads one captioner); the ok alts stay ok at a lower bar.
  const run2 = await runCommand(registerAudit, ['audit', join(site, 'gallery', 'index.html'), '--root', site, '--report', md, '--min-score', '0.2', '--no-progress']);
  assert.equal(run2.code, 1); // the missing image
  assert.equal(run2.stdout.length, 4);
  assert.match(run2.stdout[0], /^ {2}\S+:5:1 {2}ok /);
  assert.match(run2.stdout[1], /^ {2}\S+:6:1 {2}ok /);
  assert.match(run2.stdout[2], /^! \S+:7:1 {2}broken \(FILE_NOT_FOUND\)/);
  assert.ok(readFileSync(md, 'utf8').includes('[/images/1107246521\\_d16a476380.jpg](site/images/1107246521_d16a476380.jpg)'));
  assert.deepEqual(readdirSync(dir).sort(), ['report.html', 'report.md', 'site']);
});

test('audit --matcher DIR: the real captioner with a given (toy, random) matcher: scores and confidences in [0, 1], the rules as ever', NEEDS_DATA, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-audit-toy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const matcher = writeToyMatcherDir(join(dir, 'matcher')).dir;
  cpSync(join(FLICKR8K_IMAGES, '1107246521_d16a476380.jpg'), join(dir, 'dog.jpg'));
  const page = join(dir, 'p.html');
  writeFileSync(page, '<img src="dog.jpg" alt="A black dog jumping to catch a rope toy">\n<img src="dog.jpg" alt="dog.jpg">\n<img src="dog.jpg">');
  const run = await runCommand(registerAudit, ['audit', page, '--matcher', matcher, '--json', '--no-progress']);
  assert.equal(run.code, 1, run.stderr.join('\n'));
  const report: AuditReport = JSON.parse(run.stdout.join('\n'));
  assert.deepEqual(report.images.slice(1).map((r) => r.status), ['placeholder', 'missing']);
  assert.ok(['ok', 'mismatch'].includes(report.images[0].status));
  assert.ok(report.images[0].score! >= 0 && report.images[0].score! <= 1);
  for (const r of report.images) {
    assert.equal(r.image, join(dir, 'dog.jpg'));
    assert.ok(r.suggestion!.confidence! >= 0 && r.suggestion!.confidence! <= 1, JSON.stringify(r.suggestion));
    assert.match(r.suggestion!.text, /^[A-Z].*\.$/);
  }
  // A matcher directory that is not there: the model error, exit by main()
  await assert.rejects(runCommand(registerAudit, ['audit', page, '--matcher', join(dir, 'none'), '--no-progress']), { code: 'MODEL_NOT_FOUND' });
});
