import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const CLI = join(process.cwd(), 'bin', 'pixel-info.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

test('train: without a Python that has torch, a clear PYTHON_UNAVAILABLE error', () => {
  const r = run(['train', '--features', 'x'], { PIXEL_INFO_PYTHON: '/nonexistent/python3' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /PYTHON_UNAVAILABLE: training needs Python 3 with PyTorch/);
  assert.match(r.stderr, /PIXEL_INFO_PYTHON/);
});

const HAVE_TORCH = spawnSync(process.env.PIXEL_INFO_PYTHON ?? '/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

test('train: options go to the trainer; a missing feature store is one clear line, exit 2', { skip: !HAVE_TORCH && 'no torch' }, () => {
  const help = run(['train', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--scst-baseline/);
  const r = run(['train', '--features', '/nonexistent-store', '--captions', '/nonexistent.json', '--out', '/tmp/px-never']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /nonexistent-store/);
  assert.doesNotMatch(r.stderr, /Traceback/);
});
