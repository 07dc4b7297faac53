/**
 * The alt-text audit without models: placeholder rules, HTML parsing, source resolution, the audit's judgements
 * with a fake engine (real image loading, scripted captions and scores), the reports and the CLI's usage errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommanderError } from 'commander';
import sharp from 'sharp';
import { checkPlaceholder, srcBaseName } from '../src/audit/placeholder.js';
import { bestCandidate, decodeHtml, findImages, parseSrcset } from '../src/audit/html.js';
import { resolveSrc } from '../src/audit/resolve.js';
import { auditImages, collectImages, runAudit, type AuditEngine } from '../src/audit/audit.js';
import { escapeHtml, htmlReport, markdownReport, textLines } from '../src/audit/report.js';
import { registerAudit } from '../src/cli/commands/audit.js';
import { loadImagesSettled } from '../src/image/index.js';
import type { CaptionOutcome } from '../src/pipeline/core.js';
import type { MatchScore } from '../src/match/types.js';
import { runCommand } from './helpers/cli.js';

test('placeholder alt texts: file names, camera names, generic words; real descriptions are not', () => {
  const yes: Array<[string, string | undefined, string]> = [
    ['IMG_1234.jpg', undefined, 'file-name'],
    ['IMG_1234', undefined, 'camera-name'],
    ['DSC0001', undefined, 'camera-name'],
    ['DSCN4567.JPG', undefined, 'file-name'],
    ['PXL_20230101_123456789', undefined, 'camera-name'],
    ['Screenshot 2023-01-01 at 10.00.00', undefined, 'camera-name'],
    ['image001', undefined, 'camera-name'],
    ['photo.jpg', undefined, 'file-name'],
    ['my holiday snap.png', undefined, 'file-name'],
    ['image', undefined, 'generic'],
    ['Photo', undefined, 'generic'],
    ['An image of', undefined, 'generic'],
    ['picture 3', undefined, 'camera-name'],
    ['Insert alt text here', undefined, 'generic'],
    ['spacer', undefined, 'generic'],
    ['untitled', undefined, 'generic'],
    ['placeholder', undefined, 'generic'],
    ['-', undefined, 'no-words'],
    ['12345', undefined, 'camera-name'],
    ['hero-banner', 'img/hero-banner.webp', 'src-name'],
    ['hero banner', 'img/hero-banner.webp?v=2', 'src-name'],
    ['beach.jpg', '/photos/beach.jpg', 'src-name'],
  ];
  for (const [alt, src, reason] of yes) assert.deepEqual(checkPlaceholder(alt, src), { placeholder: true, reason }, alt);
  const no: Array<[string, string | undefined]> = [
    ['A photo of a black dog running through the snow', undefined],
    ['Two children playing football on a beach', 'IMG_1234.jpg'],
    ['image 3 of a red bicycle', undefined],
    ['Logo of the Acme company', 'logo.png'],
    ['beach', '/photos/sunset.jpg'],
    ['Screenshot of the settings page', undefined],
  ];
  for (const [alt, src] of no) assert.deepEqual(checkPlaceholder(alt, src), { placeholder: false }, alt);
  assert.equal(srcBaseName('a/b/My%20Photo.JPG#x'), 'my photo.jpg');
  assert.equal(srcBaseName('data:image/png;base64,AAAA'), undefined);
});

test('findImages: every <img> with its line:col, alt (missing vs empty), decorative markup and chosen source', () => {
  const html = [
    '<!doctype html><html><head><title>t</title><base href="sub/"></head><body>', // 1
    '<p>Hello <img src="a.jpg" alt="A dog"></p>', // 2
    '  <IMG SRC="b.jpg">', // 3
    '<img src="c.jpg" alt="" role="presentation"><img src="d.jpg" alt="" aria-hidden="true"><img src="e.jpg" alt="">', // 4
    '<img srcset="small.jpg 320w, big.jpg 1024w, mid.jpg 640w" alt="Fish &amp; chips">', // 5
    '<picture><source srcset="p.webp 1x, p@2x.webp 2x" type="image/webp"><img alt="pic"></picture>', // 6
    '<template><img src="t.jpg" alt="in a template"></template>', // 7
    '<div><img src="unclosed.jpg" alt=\'quote " inside\'', // 8: a tag cut off by the end of the file is no element (as in browsers)
  ].join('\n');
  const page = findImages(html);
  assert.equal(page.baseHref, 'sub/');
  assert.deepEqual(
    page.images.map((i) => [i.line, i.col, i.src, i.srcFrom, i.alt, i.decorative]),
    [
      [2, 10, 'a.jpg', 'src', 'A dog', false],
      [3, 3, 'b.jpg', 'src', null, false],
      [4, 1, 'c.jpg', 'src', '', true],
      [4, 45, 'd.jpg', 'src', '', true],
      [4, 88, 'e.jpg', 'src', '', false],
      [5, 1, 'big.jpg', 'srcset', 'Fish & chips', false],
      [6, 69, 'p@2x.webp', 'picture', 'pic', false],
      [7, 11, 't.jpg', 'src', 'in a template', false],
    ],
  );
});

test('decodeHtml: BOM, <meta charset>, else UTF-8', () => {
  const latin1 = Buffer.concat([Buffer.from('<meta charset="windows-1252"><img alt="caf'), Buffer.from([0xe9]), Buffer.from(' au lait">')]);
  assert.equal(findImages(decodeHtml(latin1)).images[0].alt, 'café au lait');
  const httpEquiv = Buffer.concat([Buffer.from('<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"><img alt="'), Buffer.from([0xfc]), Buffer.from('">')]);
  assert.equal(findImages(decodeHtml(httpEquiv)).images[0].alt, 'ü');
  assert.equal(decodeHtml(Buffer.from('\ufeff<p>é</p>')), '<p>é</p>');
  assert.equal(decodeHtml(Buffer.from('<meta charset="no-such-charset"><p>é</p>')), '<meta charset="no-such-charset"><p>é</p>');
  assert.equal(decodeHtml(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<p>x</p>', 'utf16le')])), '<p>x</p>');
});

test('parseSrcset: the standard algorithm (data: URIs with commas, trailing commas, descriptors)', () => {
  assert.deepEqual(parseSrcset('a.jpg, b.jpg 2x,c.jpg 300w'), [
    { url: 'a.jpg', density: 1 },
    { url: 'b.jpg', density: 2 },
    { url: 'c.jpg', width: 300 },
  ]);
  assert.deepEqual(parseSrcset('data:image/png;base64,AAAA 1x, x.png 2x').map((c) => c.url), ['data:image/png;base64,AAAA', 'x.png']);
  assert.equal(bestCandidate('  '), undefined);
  assert.equal(bestCandidate('one.jpg'), 'one.jpg');
});

test('resolveSrc: page-relative, root-relative, <base href>, remote, data: URIs, queries and escapes', () => {
  const root = '/site';
  const page = '/site/blog/post.html';
  assert.deepEqual(resolveSrc('img/a.jpg', page, root), { kind: 'file', path: '/site/blog/img/a.jpg' });
  assert.deepEqual(resolveSrc('../a.jpg?v=3#top', page, root), { kind: 'file', path: '/site/a.jpg' });
  assert.deepEqual(resolveSrc('/media/My%20Dog.jpg', page, root), { kind: 'file', path: '/site/media/My Dog.jpg' });
  assert.deepEqual(resolveSrc('a.jpg', page, root, 'assets/'), { kind: 'file', path: '/site/blog/assets/a.jpg' });
  assert.deepEqual(resolveSrc('a.jpg', page, root, '/static/index.html'), { kind: 'file', path: '/site/static/a.jpg' });
  assert.deepEqual(resolveSrc('file:///tmp/x.png', page, root), { kind: 'file', path: '/tmp/x.png' });
  for (const remote of ['https://example.com/a.jpg', 'http://x/y.png', '//cdn.example.com/a.jpg']) {
    const r = resolveSrc(remote, page, root);
    assert.equal(r.kind, 'skipped', remote);
    assert.match((r as { reason: string }).reason, /remote/);
  }
  assert.match((resolveSrc('a.jpg', page, root, 'https://example.com/') as { reason: string }).reason, /remote.*base/);
  assert.equal(resolveSrc('blob:abc', page, root).kind, 'skipped');
  assert.deepEqual(resolveSrc(undefined, page, root), { kind: 'skipped', reason: 'no src or srcset attribute' });

  const b64 = resolveSrc('data:image/png;base64,iVBORw0K', page, root);
  assert.equal(b64.kind, 'data');
  assert.deepEqual((b64 as { bytes: Buffer }).bytes, Buffer.from('iVBORw0K', 'base64'));
  const pct = resolveSrc('data:image/svg+xml,%3Csvg%3E%FF', page, root);
  assert.deepEqual((pct as { bytes: Buffer }).bytes, Buffer.from([0x3c, ...Buffer.from('svg'), 0x3e, 0xff]));
  assert.deepEqual(resolveSrc('data:text/html,<b>x</b>', page, root), { kind: 'error', code: 'NOT_AN_IMAGE', message: 'data: URI of type text/html, not an image' });
  assert.equal((resolveSrc('data:image/png;base64,@@@', page, root) as { code: string }).code, 'DECODE_FAILED');
  assert.equal((resolveSrc('data:image/png;base64', page, root) as { code: string }).code, 'DECODE_FAILED');
  assert.equal((resolveSrc('data:image/png;base64,', page, root) as { code: string }).code, 'FILE_EMPTY');
});

/** A site in a temp folder: real (generated) images, a broken one, an SVG, pages using them in every way. */
async function site(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'px-audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'img'));
  mkdirSync(join(dir, 'blog'));
  const red = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#d00' } }).jpeg().toBuffer();
  const blue = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#00c' } }).png().toBuffer();
  writeFileSync(join(dir, 'img', 'red.jpg'), red);
  writeFileSync(join(dir, 'img', 'blue.png'), blue);
  writeFileSync(join(dir, 'img', 'broken.jpg'), red.subarray(0, 200));
  writeFileSync(join(dir, 'img', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
  const dataUri = `data:image/png;base64,${blue.toString('base64')}`;
  writeFileSync(
    join(dir, 'index.html'),
    [
      '<html><body>',
      '<img src="img/red.jpg" alt="A red square">', // ok (scripted score 0.9)
      '<img src="/img/red.jpg" alt="A cat on a sofa">', // mismatch (0.1), the same image: captioned once
      '<img src="img/blue.png">', // missing
      '<img src="img/blue.png" alt="">', // empty, needs attention
      '<img src="img/blue.png" alt="" role="presentation">', // empty, decorative
      '<img src="img/red.jpg" alt="IMG_1234.jpg">', // placeholder
      '<img src="img/broken.jpg" alt="A red square">', // broken image
      '<img src="img/gone.jpg" alt="A red square">', // missing file
      '<img src="https://example.com/x.jpg" alt="A remote photo">', // skipped, unchecked
      '<img src="img/logo.svg" alt="Acme">', // SVG: skipped, unchecked
      `<img src="${dataUri}" alt="A blue square">`, // ok, from a data: URI
      '</body></html>',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'blog', 'post.htm'), '<p><img src="../img/blue.png" alt="A blue <b>square</b> | &amp; more"></p>');
  writeFileSync(join(dir, 'notes.txt'), '<img src="nothing.jpg">');
  return dir;
}

/** Real image loading (so errors are the captioner's), scripted captions and match scores; counts its calls. */
function fakeEngine(scores: Record<string, number>) {
  const calls = { caption: [] as number[], match: [] as string[][] };
  const engine: AuditEngine = {
    async caption(inputs) {
      calls.caption.push(inputs.length);
      const loaded = await loadImagesSettled(inputs);
      return loaded.map((r): CaptionOutcome =>
        r.ok
          ? {
              source: r.image.source,
              image: { format: r.image.format, width: r.image.width, height: r.image.height },
              captions: [{ text: 'a small coloured square', tokens: [], score: -1, logProb: -5, confidence: 0.8 }],
              timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
            }
          : { source: r.source, error: r.error.toJSON() },
      );
    },
    async match(_image, texts): Promise<MatchScore[]> {
      calls.match.push([...texts]);
      return texts.map((text) => ({ text, score: scores[text] ?? 0.5, logit: 0, cosine: 0 }));
    },
  };
  return { engine, calls };
}

const SCORES = { 'A red square': 0.9, 'A cat on a sofa': 0.1, 'A blue square': 0.7, 'A blue <b>square</b> | & more': 0.6 };

test('audit a folder: each image judged; one caption per distinct image, one match call per image; broken and remote images reported', async (t) => {
  const dir = await site(t);
  const { engine, calls } = fakeEngine(SCORES);
  const { report, inputs } = await runAudit(dir, async () => engine, { minScore: 0.5, batchSize: 2 });
  const rows = report.images.map((r) => [r.page.slice(dir.length + 1), r.line, r.status, r.attention, r.score ?? null, r.error?.code ?? null, r.skipped ? 'skipped' : null]);
  assert.deepEqual(rows, [
    ['blog/post.htm', 1, 'ok', false, 0.6, null, null],
    ['index.html', 2, 'ok', false, 0.9, null, null],
    ['index.html', 3, 'mismatch', true, 0.1, null, null],
    ['index.html', 4, 'missing', true, null, null, null],
    ['index.html', 5, 'empty', true, null, null, null],
    ['index.html', 6, 'empty', false, null, null, null],
    ['index.html', 7, 'placeholder', true, null, null, null],
    ['index.html', 8, 'unchecked', true, null, 'IMAGE_TRUNCATED', null],
    ['index.html', 9, 'unchecked', true, null, 'FILE_NOT_FOUND', null],
    ['index.html', 10, 'unchecked', false, null, null, 'skipped'],
    ['index.html', 11, 'unchecked', false, null, null, 'skipped'],
    ['index.html', 12, 'ok', false, 0.7, null, null],
  ]);
  const byLine = (line: number) => report.images.find((r) => r.page.endsWith('index.html') && r.line === line)!;
  assert.equal(byLine(3).image, join(dir, 'img', 'red.jpg')); // root-relative, against the folder audited
  assert.match(byLine(9).error!.message, /gone\.jpg: no such file/);
  assert.match(byLine(10).skipped!, /remote/);
  assert.match(byLine(11).skipped!, /svg images are not supported/);
  assert.equal(byLine(6).decorative, true);
  assert.match(byLine(12).image!, /^data:image\/png \(\d+ bytes\)$/);
  assert.deepEqual(byLine(4).suggestion, { text: 'A small coloured square.', confidence: 0.8 });
  assert.equal(byLine(9).suggestion, undefined);
  assert.deepEqual(report.summary, {
    pages: 2, images: 12, attention: 6, missing: 1, empty: 2, decorative: 1, placeholder: 1, ok: 3, mismatch: 1, unchecked: 4, skipped: 2, errors: 2,
  });
  // red.jpg (3 tags, one path after resolution), blue.png, broken, gone, svg, data: → 6 distinct inputs in batches of 2
  assert.deepEqual(calls.caption, [2, 2, 2]);
  assert.deepEqual(calls.match.map((m) => m.sort()), [['A blue <b>square</b> | & more'], ['A cat on a sofa', 'A red square'], ['A blue square']]);
  assert.equal(inputs.length, report.images.length);
  assert.ok(Buffer.isBuffer(inputs[11]));

  // --min-score moves the line between ok and mismatch.
  const strict = await runAudit(dir, async () => fakeEngine(SCORES).engine, { minScore: 0.95 });
  assert.deepEqual(strict.report.images.filter((r) => r.status === 'mismatch').length, 4);
});

test('audit without readable images never loads the models', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-audit-remote-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const page = join(dir, 'p.html');
  writeFileSync(page, '<img src="https://example.com/a.jpg"><img src="http://example.com/b.jpg" alt="" aria-hidden="true">');
  const { report } = await runAudit(page, async () => assert.fail('the engine was loaded'));
  assert.deepEqual(report.images.map((r) => [r.status, r.attention]), [['missing', true], ['empty', false]]);
  const found = await collectImages(page);
  assert.equal(found.root, dir);
  await assert.rejects(collectImages(join(dir, 'nope')), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(auditImages(page, found, async () => fakeEngine({}).engine, { minScore: 2 }), { code: 'INVALID_ARGUMENT' });
});

test('reports: text lines, Markdown (escaped cells, relative links) and self-contained HTML (escaped, thumbnails as data: URIs)', async (t) => {
  const dir = await site(t);
  const result = await runAudit(dir, async () => fakeEngine(SCORES).engine);
  const lines = textLines(result.report);
  assert.equal(lines.length, 13);
  assert.match(lines[2], /^! .*index\.html:3:1 {2}mismatch .*alt "A cat on a sofa" {2}score 0\.10 {2}→ suggested "A small coloured square\." \(0\.80\)$/);
  assert.match(lines[12], /^12 images in 2 pages: 6 need attention, missing 1, empty 2 \(1 decorative\), placeholder 1, mismatch 1, ok 3/);

  const md = markdownReport(result.report, join(dir, 'reports', 'audit.md'));
  assert.match(md, /^# Alt-text audit: /);
  assert.match(md, /## Needs attention\n\n\| where \|/);
  assert.ok(md.includes('[/img/red.jpg](../img/red.jpg)'), md);
  assert.ok(md.includes('A blue \\<b\\>square\\</b\\> \\| \\& more'), md); // no raw HTML, no broken table
  const attention = md.slice(md.indexOf('## Needs attention'), md.indexOf('## Fine'));
  assert.equal(attention.split('\n').filter((l) => l.startsWith('| [')).length, 6);

  const html = await htmlReport(result);
  assert.ok(!html.includes('<b>square</b>'));
  assert.ok(html.includes(escapeHtml('A blue <b>square</b> | & more')));
  const thumbs = [...html.matchAll(/<img src="data:image\/jpeg;base64,([^"]+)"/g)];
  assert.equal(thumbs.length, 8); // every readable image row: not broken, missing, remote or SVG
  const meta = await sharp(Buffer.from(thumbs[0][1], 'base64')).metadata();
  assert.equal(meta.format, 'jpeg');
  assert.ok(Math.max(meta.width!, meta.height!) <= 128);
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//); // nothing outside the file
});

const audit = (args: string[]) => runCommand(registerAudit, ['audit', ...args]);

test('audit CLI: usage errors exit 2; without readable images it runs with no model: text, --json, --report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-audit-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const page = join(dir, 'p.html');
  writeFileSync(page, '<img src="https://example.com/a.jpg">\n<img src="https://example.com/b.jpg" alt="image">\n<img src="//x/c.jpg" alt="A sunset">');
  const model = join(dir, 'no-model'); // never loaded: nothing here can be captioned

  // commander's usage errors: main() turns them into exit 2
  await assert.rejects(audit([page, '--min-score', '1.5']), (err: CommanderError) => err.code === 'commander.invalidArgument');
  await assert.rejects(audit([page, '--min-score', 'x']), (err: CommanderError) => err.code === 'commander.invalidArgument');
  await assert.rejects(audit([]), (err: CommanderError) => err.code === 'commander.missingArgument');
  for (const args of [[join(dir, 'missing.html')], [page, '--report', join(dir, 'r.pdf')], [join(dir, 'empty-folder')]]) {
    if (args[0].endsWith('empty-folder')) mkdirSync(args[0]);
    const run = await audit([...args, '--model', model]);
    assert.equal(run.code, 2, args.join(' '));
    assert.match(run.stderr.join('\n'), /^pixel-info audit: INVALID_ARGUMENT: /);
  }

  const text = await audit([page, '--model', model]);
  assert.equal(text.code, 1);
  assert.equal(text.stdout.length, 4);
  assert.match(text.stdout[0], /^! .*p\.html:1:1 {2}missing/);
  assert.match(text.stdout[1], /placeholder .*alt "image"/);
  assert.match(text.stdout[2], /^ {2}.*unchecked .*skipped: remote image/);

  const report = join(dir, 'audit.html');
  const json = await audit([page, '--model', model, '--json', '--report', report]);
  assert.equal(json.code, 1);
  const doc = JSON.parse(json.stdout.join('\n'));
  assert.deepEqual(Object.keys(doc), ['target', 'minScore', 'summary', 'images']);
  assert.equal(doc.minScore, 0.5);
  assert.deepEqual(doc.images.map((r: { status: string }) => r.status), ['missing', 'placeholder', 'unchecked']);
  assert.equal(doc.summary.attention, 2);
  assert.match(readFileSync(report, 'utf8'), /^<!doctype html>/);

  const md = join(dir, 'audit.md');
  writeFileSync(page, '<img src="https://example.com/a.jpg" alt="A sunset over the sea">');
  const fine = await audit([page, '--model', model, '--report', md]);
  assert.equal(fine.code, 0);
  assert.match(readFileSync(md, 'utf8'), /0 need attention/);
});
