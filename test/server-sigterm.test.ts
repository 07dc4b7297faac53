import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FLICKR8K_IMAGES, HAVE_FLICKR8K } from './helpers/dataset.js';

const NEEDS_DATA = { skip: !HAVE_FLICKR8K && 'no ../shared' };
const GIRL = join(FLICKR8K_IMAGES, '1000268201_693b08cb0e.jpg');

/** `pixel-info serve` through bin/ once the command is wired into the CLI, else through the same registerServe. */
const WIRED = readFileSync('src/cli/index.ts', 'utf8').includes('registerServe');
const ENTRY = WIRED ? ['bin/pixel-info.js'] : ['--import', 'tsx', 'test/fixtures/server/serve-cli.ts'];

interface LogLine {
  msg: string;
  url?: string;
  status?: number;
  route?: string;
  [k: string]: unknown;
}

test('serve: SIGTERM stops accepting, finishes the in-flight request, then exits 0', NEEDS_DATA, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'px-serve-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A long batch wait keeps the request in flight (queued) when the signal arrives.
  const child = spawn(process.execPath, [...ENTRY, 'serve', '--port', '0', '--library', join(dir, 'lib.sqlite'), '--max-wait-ms', '400', '--threads', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.exitCode === null && child.kill('SIGKILL'));
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let buffered = '';
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const part of parts) {
      if (!part.trim()) continue;
      const line = JSON.parse(part) as LogLine; // every stdout line is one JSON log record
      lines.push(line);
      for (const w of waiters.splice(0)) (w.match(line) ? w.resolve(line) : waiters.push(w));
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitFor = (match: (l: LogLine) => boolean, what: string) =>
    Promise.race([
      new Promise<LogLine>((resolve) => {
        const seen = lines.find(match);
        if (seen) resolve(seen);
        else waiters.push({ match, resolve });
      }),
      exited.then((code) => Promise.reject(new Error(`server exited (${code}) before "${what}"; stderr: ${stderr}`))),
      sleep(60_000, undefined, { ref: false }).then(() => Promise.reject(new Error(`no "${what}" within 60 s`))),
    ]);

  const url = (await waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('pixel-info serving on'), 'serving')).url!;
  await waitFor((l) => l.msg === 'model loaded; ready', 'ready');

  const inFlight = fetch(`${url}/v1/captions`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: readFileSync(GIRL) });
  await sleep(150); // the request is queued, waiting for its batch
  child.kill('SIGTERM');
  const res = await inFlight;
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.ok(body.captions[0].text.length > 0);
  assert.equal(await exited, 0, stderr);

  await assert.rejects(fetch(`${url}/healthz`), 'nothing listens after exit');
  const shutdown = lines.find((l) => l.msg.startsWith('shutting down'));
  assert.ok(shutdown, 'logs the shutdown');
  assert.equal(shutdown.signal, 'SIGTERM');
  assert.ok(lines.some((l) => l.msg === 'stopped'));
  const requestLines = lines.filter((l) => l.msg === 'request');
  assert.deepEqual(requestLines.map((l) => [l.route, l.status]), [['/v1/captions', 200]], 'one log line per request');
  assert.ok(lines.findIndex((l) => l.msg === 'request') > lines.indexOf(shutdown), 'the request finished after the signal');
});

test('serve: a bad option is a usage error (exit 2); a missing model exits 1 naming it', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [...ENTRY, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });
  const bad = await run(['--body-limit', 'lots']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /--body-limit.*expected a size/s);
  if (WIRED) assert.equal(bad.code, 2);

  const dir = mkdtempSync(join(tmpdir(), 'px-serve-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = await run(['--port', '0', '--model', join(dir, 'no-model'), '--library', join(dir, 'lib.sqlite')]);
  assert.equal(missing.code, 1, missing.out);
  assert.match(missing.out, /MODEL_NOT_FOUND/);
  assert.match(missing.out, /no-model/);
});
