/**
 * `pixel-info keys create/list/revoke` (their output and JSON shapes, the library they work on) and `serve`'s
 * refusal to listen on a non-loopback address while the library has no key, unless `--no-auth`.
 *
 * No test listens beyond loopback: the non-loopback address used is 203.0.113.1 (TEST-NET-3, documentation
 * only, on no interface here), so a `serve` that gets past the check fails to bind it (EADDRNOTAVAIL).
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli/index.js';
import { registerKeys } from '../src/cli/commands/keys.js';
import { parseDuration } from '../src/cli/commands/serve.js';
import { API_KEY_PREFIX, openLibrary } from '../src/library/index.js';
import { runCommand } from './helpers/cli.js';

const NOT_LOCAL = '203.0.113.1';

function tempLibrary(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'library.sqlite');
}

const keys = (args: string[]) => runCommand(registerKeys, ['keys', ...args]);

test('keys create / list / revoke: output, JSON shapes, and the key works only until revoked', async (t) => {
  const library = tempLibrary(t);

  const created = await keys(['create', '--name', 'ci', '--library', library]);
  assert.equal(created.code, 0, created.stderr.join('\n'));
  assert.equal(created.stdout.length, 1, 'only the key on stdout');
  const plain = created.stdout[0];
  assert.ok(plain.startsWith(API_KEY_PREFIX), plain);
  assert.match(created.stderr.join('\n'), /created key key_[0-9a-f]+ "ci" in .*library\.sqlite; copy it now/);

  const admin = await keys(['create', '--name', 'ops', '--admin', '--json', '--library', library]);
  assert.equal(admin.code, 0, admin.stderr.join('\n'));
  const json = JSON.parse(admin.stdout.join('\n'));
  assert.deepEqual(Object.keys(json), ['id', 'name', 'admin', 'key']);
  assert.deepEqual({ name: json.name, admin: json.admin }, { name: 'ops', admin: true });
  assert.match(json.id, /^key_[0-9a-f]{16}$/);

  const listed = await keys(['list', '--json', '--library', library]);
  const list = JSON.parse(listed.stdout.join('\n')) as Array<Record<string, unknown>>;
  assert.deepEqual(
    list.map((k) => Object.keys(k)),
    [
      ['id', 'name', 'admin', 'created', 'revoked'],
      ['id', 'name', 'admin', 'created', 'revoked'],
    ],
  );
  assert.deepEqual(
    list.map((k) => [k.name, k.admin, k.revoked]),
    [
      ['ci', false, null],
      ['ops', true, null],
    ],
  );
  assert.ok(!listed.stdout.join('\n').includes(plain), 'never the key itself');
  const table = (await keys(['list', '--library', library])).stdout.join('\n');
  assert.match(table, /^ID +NAME +ADMIN +CREATED +REVOKED$/m);
  assert.match(table, /^key_\w+ +ops +yes +\S+ +-$/m);

  const store = await openLibrary(library);
  t.after(() => store.close());
  assert.deepEqual(await store.verifyKey(plain), { keyId: list[0].id, admin: false }, 'the printed key is the stored one');

  const revoked = await keys(['revoke', 'ci', '--json', '--library', library]);
  assert.equal(revoked.code, 0, revoked.stderr.join('\n'));
  const info = JSON.parse(revoked.stdout.join('\n'));
  assert.deepEqual([info.id, info.name], [list[0].id, 'ci']);
  assert.match(info.revoked, /^\d{4}-\d\d-\d\dT/);
  assert.equal(await store.verifyKey(plain), undefined, 'a revoked key is refused');
  assert.deepEqual((await keys(['revoke', String(json.id), '--library', library])).stdout, [`revoked ${json.id} "ops"`], 'by id');
  assert.equal(await store.hasKeys(), false);
});

test('keys: usage errors and unknown keys', async (t) => {
  const library = tempLibrary(t);
  const run = async (args: string[]) => {
    const lines: string[] = [];
    const error = mock.method(console, 'error', (...a: unknown[]) => void lines.push(a.join(' ')));
    const log = mock.method(console, 'log', () => undefined);
    process.exitCode = undefined;
    try {
      await main(['node', 'pixel-info', 'keys', ...args]);
      return { code: Number(process.exitCode ?? 0), stderr: lines.join('\n') };
    } finally {
      error.mock.restore();
      log.mock.restore();
      process.exitCode = undefined;
    }
  };
  assert.equal((await run(['create', '--library', library])).code, 2, '--name is required');
  assert.equal((await run(['create', '--name', 'dup', '--library', library])).code, 0);
  const dup = await run(['create', '--name', 'dup', '--library', library]);
  assert.equal(dup.code, 2);
  assert.match(dup.stderr, /INVALID_ARGUMENT: a key named "dup" already exists/);
  const unknown = await run(['revoke', 'nobody', '--library', library]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /NOT_FOUND: no API key with id or name "nobody"/);
  const both = await run(['list', '--library', library, '--database', 'postgres://127.0.0.1/x']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--database and --library/);
});

/** `pixel-info serve ...` in this process: its exit code, stderr, and the error it threw, if any. */
async function serve(args: string[]): Promise<{ code: number; stderr: string; thrown?: NodeJS.ErrnoException }> {
  const lines: string[] = [];
  const error = mock.method(console, 'error', (...a: unknown[]) => void lines.push(a.join(' ')));
  process.exitCode = undefined;
  try {
    await main(['node', 'pixel-info', 'serve', '--port', '0', '--log-level', 'silent', '--model', '/nonexistent/model', ...args]);
    return { code: Number(process.exitCode ?? 0), stderr: lines.join('\n') };
  } catch (err) {
    return { code: Number(process.exitCode ?? 1), stderr: lines.join('\n'), thrown: err as NodeJS.ErrnoException };
  } finally {
    error.mock.restore();
    process.exitCode = undefined;
  }
}

test('serve on a non-loopback address: refused without keys (exit 2), unless --no-auth or a key exists', async (t) => {
  const library = tempLibrary(t);

  const refused = await serve(['--host', NOT_LOCAL, '--library', library]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.thrown, undefined);
  assert.match(refused.stderr, new RegExp(`INVALID_ARGUMENT: refusing to serve on ${NOT_LOCAL.replace(/\./g, '\\.')} without API keys`));
  assert.match(refused.stderr, /--no-auth/);
  assert.match(refused.stderr, /pixel-info keys create/);

  // Past the check, the server goes on to listen: on this address, which no interface has, that fails.
  const noAuth = await serve(['--host', NOT_LOCAL, '--library', library, '--no-auth']);
  assert.equal(noAuth.thrown?.code, 'EADDRNOTAVAIL', `--no-auth goes on to listen (${noAuth.stderr})`);

  assert.equal((await keys(['create', '--name', 'k', '--library', library])).code, 0);
  const withKey = await serve(['--host', NOT_LOCAL, '--library', library]);
  assert.equal(withKey.thrown?.code, 'EADDRNOTAVAIL', `with a key the server goes on to listen (${withKey.stderr})`);
});

test('serve on loopback needs no key; --rate-window durations', async (t) => {
  const library = tempLibrary(t);
  // Loopback: no refusal, so the only failure is the port, taken here on purpose (nothing is left running).
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => blocker.close(r)));
  const port = String((blocker.address() as { port: number }).port);
  const local = await serve(['--host', '127.0.0.1', '--library', library, '--port', port]);
  assert.equal(local.thrown?.code, 'EADDRINUSE', local.stderr);

  assert.deepEqual(['1m', '30s', '1.5s', '500ms', '2h', '45'].map(parseDuration), [60_000, 30_000, 1500, 500, 7_200_000, 45_000]);
  for (const bad of ['soon', '0s', '-1m', '1d', '']) assert.throws(() => parseDuration(bad), /expected a duration/, bad);
});
