/**
 * How the server serves the web page (src/server/plugins/web.ts): index.html and styles.css from the web folder,
 * /app.js as esbuild's bundle of web/src/main.ts (with its source map, revalidated by ETag), nothing else of the
 * folder, and a clear error when the script cannot be had.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../src/server/app.js';
import type { CaptionEngine } from '../src/server/engine.js';
import { buildWebBundle, WEB_ROOT } from '../src/server/plugins/web.js';

const engine: CaptionEngine = { card: { name: 'fake' }, caption: async () => [], release: async () => {} };

async function server(t: { after: (fn: () => unknown) => void }, webRoot?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'px-web-plugin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const built = await buildServer({ loadEngine: async () => engine, library: join(dir, 'library.sqlite'), logger: false, webRoot });
  t.after(() => built.app.close());
  return built.app;
}

test('the page, its styles and its bundled script; nothing else of the web folder', async (t) => {
  const app = await server(t);
  const page = await app.inject('/');
  assert.equal(page.statusCode, 200);
  assert.match(page.headers['content-type'] as string, /text\/html/);
  assert.match(page.body, /<script type="module" src="\/app\.js"><\/script>/);
  assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.equal((await app.inject('/index.html')).statusCode, 200);
  const css = await app.inject('/styles.css');
  assert.equal(css.statusCode, 200);
  assert.match(css.headers['content-type'] as string, /text\/css/);

  const js = await app.inject('/app.js');
  assert.equal(js.statusCode, 200);
  assert.match(js.headers['content-type'] as string, /text\/javascript/);
  assert.match(js.body, /sourceMappingURL=app\.js\.map/);
  assert.doesNotMatch(js.body, /^\s*import\s/m, 'one self-contained module: every import bundled');
  const etag = js.headers.etag as string;
  assert.ok(etag, 'an ETag');
  assert.equal((await app.inject({ url: '/app.js', headers: { 'if-none-match': etag } })).statusCode, 304);
  const map = await app.inject('/app.js.map');
  assert.equal(map.statusCode, 200);
  const sources = (map.json() as { sources: string[] }).sources;
  for (const shared of ['src/text/alt-text.ts', 'src/render/colormap.ts', 'src/decoder/model-card.ts', 'web/src/main.ts']) {
    assert.ok(sources.some((s) => s.endsWith(shared)), `the bundle holds ${shared}`);
  }

  for (const hidden of ['/src/main.ts', '/tsconfig.json', '/heatmap.js']) {
    assert.equal((await app.inject(hidden)).statusCode, 404, hidden);
  }
});

test('webRoot: another folder is served, its own src/main.ts bundled; a folder without index.html serves no page', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'px-web-root-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'src'));
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>other</title><script type="module" src="/app.js"></script>');
  writeFileSync(join(root, 'styles.css'), 'body { color: red }');
  writeFileSync(join(root, 'src', 'main.ts'), "const greeting: string = 'hello from another page';\ndocument.title = greeting;\n");
  const app = await server(t, root);
  assert.match((await app.inject('/')).body, /<title>other<\/title>/);
  assert.match((await app.inject('/app.js')).body, /hello from another page/);

  const empty = mkdtempSync(join(tmpdir(), 'px-web-none-'));
  t.after(() => rmSync(empty, { recursive: true, force: true }));
  const none = await server(t, empty);
  assert.equal((await none.inject('/')).statusCode, 404);
  assert.equal((await none.inject('/v1/model')).statusCode, 200, 'the API works without the page');
});

test('a clear error when the script cannot be built', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'px-web-bad-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  cpSync(join(WEB_ROOT, 'index.html'), join(root, 'index.html'));
  await assert.rejects(buildWebBundle(root), { code: 'INTERNAL', message: /no .*app\.js and no .*main\.ts to build it from/ });
  mkdirSync(join(root, 'src'));
  writeFileSync(join(root, 'src', 'main.ts'), "import { nothing } from './missing.js';\nnothing();\n");
  await assert.rejects(buildWebBundle(root), { code: 'INTERNAL', message: /does not build: .*main\.ts:1: Could not resolve "\.\/missing\.js"/ });
  await assert.rejects(server(t, root), { code: 'INTERNAL' }, 'the server does not start with a broken page');
});
