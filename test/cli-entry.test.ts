import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const BIN = join(process.cwd(), 'bin', 'pixel-info.js');

test('importing src/cli/index.ts runs nothing; buildProgram and main do the work', async () => {
  process.exitCode = undefined;
  const log = mock.method(console, 'log', () => undefined);
  const error = mock.method(console, 'error', () => undefined);
  let imported: typeof import('../src/cli/index.js');
  try {
    imported = await import('../src/cli/index.js');
    assert.equal(process.exitCode, undefined, 'the import ran the command line');
    assert.equal(log.mock.callCount() + error.mock.callCount(), 0, 'the import printed something');
  } finally {
    log.mock.restore();
    error.mock.restore();
  }

  const commands = imported.buildProgram().commands.map((c) => c.name());
  for (const name of ['caption', 'classify', 'features', 'prepare', 'score', 'eval', 'serve', 'train', 'encoder']) {
    assert.ok(commands.includes(name), `no ${name} command in ${commands.join(', ')}`);
  }

  // commander prints the version with process.stdout.write, which the test runner also uses: keep only that line.
  const written: string[] = [];
  const out = mock.method(process.stdout, 'write', (chunk: unknown) => {
    written.push(String(chunk));
    return true;
  });
  try {
    await imported.main(['node', 'pixel-info', '--version']);
  } finally {
    out.mock.restore();
  }
  assert.equal(process.exitCode, 0);
  process.exitCode = undefined;
  assert.ok(written.some((chunk) => /^\d+\.\d+\.\d+\n$/.test(chunk)), `no version printed: ${JSON.stringify(written)}`);
});

test('bin/pixel-info.js runs the CLI from the TypeScript sources, with its exit codes', () => {
  const version = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);

  const usage = spawnSync(process.execPath, [BIN, 'no-such-command'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /unknown command/);
});
