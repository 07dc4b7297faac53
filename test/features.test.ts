import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { FeatureStoreReader, readFeatureIndex } from '../src/data/feature-store.js';
import { toFloat16Bits, fromFloat16Bits } from '../src/tensor/float16.js';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const CLI = join(process.cwd(), 'bin', 'pixel-info.js');

function run(args: string[], opts: { killAfterRows?: number; storeDir?: string } = {}): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.killAfterRows && opts.storeDir) {
      timer = setInterval(() => {
        try {
          if (readFeatureIndex(opts.storeDir!).done >= opts.killAfterRows!) child.kill('SIGKILL');
        } catch {
          /* index not written yet */
        }
      }, 20);
    }
    child.on('close', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('float16 round trip matches IEEE half (rounding, subnormals, overflow)', () => {
  assert.equal(toFloat16Bits(1), 0x3c00);
  assert.equal(toFloat16Bits(-2), 0xc000);
  assert.equal(toFloat16Bits(65504), 0x7bff);
  assert.equal(toFloat16Bits(70000), 0x7c00);
  assert.equal(toFloat16Bits(2 ** -24), 0x0001);
  assert.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(toFloat16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  for (const v of [0.1, 3.14159, 1234.5, 6.1e-5, 79.5]) assert.ok(Math.abs(fromFloat16Bits(toFloat16Bits(v)) - v) <= Math.abs(v) * 2 ** -11);
});

test('features: killed mid-run and resumed gives a store identical to an uninterrupted run; bad images keep their row', { skip: !HAVE_FLICKR8K && 'no ../shared', timeout: 600_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'px-features-'));
  const images = join(root, 'data', 'mini', 'images');
  mkdirSync(images, { recursive: true });
  const { readdirSync } = await import('node:fs');
  const names = readdirSync(FLICKR8K_IMAGES).sort().slice(0, 30);
  for (const n of names) copyFileSync(join(FLICKR8K_IMAGES, n), join(images, n));
  writeFileSync(join(images, 'zz_broken.jpg'), 'this is not a jpeg');
  const common = ['features', '--dataset', 'mini', '--data-dir', join(root, 'data'), '--batch-size', '4', '--no-progress', '--json'];

  const full = await run([...common, '--out', join(root, 'full')]);
  assert.equal(full.code, 1, full.stderr); // one image failed → exit 1, the rest written
  const summary = JSON.parse(full.stdout.trim().split('\n').pop()!);
  assert.equal(summary.images, 31);
  assert.equal(summary.failed.length, 1);
  assert.equal(summary.failed[0].name, 'zz_broken.jpg');
  assert.equal(summary.failed[0].code, 'NOT_AN_IMAGE');

  const storeDir = join(root, 'killed');
  const killed = await run([...common, '--out', storeDir], { killAfterRows: 12, storeDir });
  assert.equal(killed.signal, 'SIGKILL');
  const partial = readFeatureIndex(storeDir);
  assert.ok(partial.done >= 12 && partial.done < 31, `done=${partial.done}`);
  assert.equal(partial.complete, false);

  const resumed = await run([...common, '--out', storeDir]);
  const resumedSummary = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
  assert.equal(resumedSummary.resumedFrom, partial.done);
  assert.equal(resumedSummary.written, 31 - partial.done);
  for (const f of ['spatial.f16', 'pooled.f16']) assert.equal(digest(join(storeDir, f)), digest(join(root, 'full', f)), f);
  assert.deepEqual(readFeatureIndex(storeDir), readFeatureIndex(join(root, 'full')));

  // A third run finds nothing to do.
  const again = await run([...common, '--out', storeDir]);
  assert.equal(JSON.parse(again.stdout.trim().split('\n').pop()!).written, 0);

  const reader = new FeatureStoreReader(storeDir);
  const pooled = reader.read(names[0], 'pooled');
  const spatial = reader.read(names[0], 'spatial');
  // pooled is the mean over the 49 regions of the (fp32) map: equal up to fp16 rounding
  for (const c of [0, 100, 2047]) {
    let mean = 0;
    for (let r = 0; r < 49; r++) mean += spatial[r * 2048 + c] / 49;
    assert.ok(Math.abs(mean - pooled[c]) < 0.02 + 0.002 * Math.abs(mean), `channel ${c}: ${mean} vs ${pooled[c]}`);
  }
  assert.ok(reader.read('zz_broken.jpg', 'pooled').every((v) => v === 0));
});

test('features: a store for other images is refused without --overwrite', { skip: !HAVE_FLICKR8K && 'no ../shared', timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'px-features-'));
  const data = join(root, 'data', 'mini', 'images');
  mkdirSync(data, { recursive: true });
  const { readdirSync } = await import('node:fs');
  for (const n of readdirSync(FLICKR8K_IMAGES).sort().slice(0, 2)) copyFileSync(join(FLICKR8K_IMAGES, n), join(data, n));
  const args = ['features', '--dataset', 'mini', '--data-dir', join(root, 'data'), '--out', join(root, 's'), '--no-progress'];
  assert.equal((await run(args)).code, 0);
  assert.equal((await run([...args, '--limit', '1'])).code, 1);
  const r = await run([...args, '--limit', '1', '--overwrite']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFeatureIndex(join(root, 's')).count, 1);
});

test('features: missing dataset folder is a clear error', async () => {
  const r = await run(['features', '--dataset', 'nope', '--data-dir', '/nonexistent-dir']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /DATASET_NOT_FOUND/);
});

test('features: COCO layout (train2014/ + val2014/, no images/ folder) is read through its caption files', { skip: !HAVE_FLICKR8K && 'no ../shared', timeout: 300_000 }, async () => {
  const { makeTmpDataDir, writeCoco, COCO_IMAGES } = await import('./fixtures/data/make-datasets.js');
  const tmp = makeTmpDataDir();
  const root = writeCoco(tmp.dir);
  const { readdirSync } = await import('node:fs');
  const real = readdirSync(FLICKR8K_IMAGES).sort().slice(0, COCO_IMAGES.length);
  // The fixture's placeholder bytes become real pictures.
  COCO_IMAGES.forEach((im, i) => copyFileSync(join(FLICKR8K_IMAGES, real[i]), join(root, im.folder, im.file_name)));
  const out = join(tmp.dir, 'store');
  const r = await run(['features', '--dataset', 'coco', '--data-dir', tmp.dir, '--out', out, '--no-progress', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const index = readFeatureIndex(out);
  assert.deepEqual(index.images.map((im) => im.name), COCO_IMAGES.map((im) => im.file_name).sort());
  assert.ok(index.complete && index.images.every((im) => !im.error));
  tmp.cleanup();
});

test('features: an output folder that cannot be made is one clear IO_ERROR line, no stack trace', { skip: !HAVE_FLICKR8K && 'no ../shared' }, async () => {
  const r = await run(['features', '--dataset', 'flickr8k', '--limit', '1', '--out', '/etc/hostname/store', '--no-progress']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /IO_ERROR: cannot mkdir \/etc\/hostname\/store: ENOTDIR/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
