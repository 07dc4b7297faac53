/**
 * Finding 5, SIGTERM waited on a stalled upload indefinitely (still up 25 s later; it exited only when the client
 * went). Now the drain has a deadline (--drain-timeout, 10 s by default): then the connections still open are
 * closed and the process exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { rawSocket, send, serve } from './helpers.js';

/** An upload that never finishes but keeps above the minimum pace (so only the drain deadline can end it). */
async function endlessUpload(t: Parameters<typeof rawSocket>[0], port: number) {
  const socket = await rawSocket(t, port);
  socket.write(`POST /v1/captions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: image/jpeg\r\nContent-Length: ${20 * 1024 * 1024}\r\n\r\n`);
  const timer = setInterval(() => !socket.destroyed && socket.write(Buffer.alloc(8 * 1024, 0x43)), 250); // 32 KB/s
  t.after(() => clearInterval(timer));
  socket.once('close', () => clearInterval(timer));
  return socket;
}

for (const { args, deadlineS } of [
  { args: [] as string[], deadlineS: 10 },
  { args: ['--drain-timeout', '2s'], deadlineS: 2 },
]) {
  test(`SIGTERM with an upload in progress that never ends: exit 0 at the ${deadlineS} s drain deadline`, { timeout: 90_000 }, async (t) => {
    const server = await serve(t, args);
    const upload = await endlessUpload(t, server.port);
    await sleep(1000);
    assert.equal((await send(server.port, { path: '/healthz' })).status, 200);
    const signalled = performance.now();
    server.child.kill('SIGTERM');
    const code = await Promise.race([server.exited, sleep(deadlineS * 1000 + 15_000).then(() => 'still running' as const)]);
    const exitS = (performance.now() - signalled) / 1000;
    t.diagnostic(`exit ${code} ${exitS.toFixed(1)} s after SIGTERM (drain deadline ${deadlineS} s)`);
    assert.equal(code, 0);
    assert.ok(exitS >= deadlineS - 0.5, `exited after ${exitS.toFixed(1)} s: before its deadline, with the upload still going`);
    assert.ok(exitS < deadlineS + 3, `exited ${exitS.toFixed(1)} s after SIGTERM`);
    const closed = await Promise.race([upload.closedAt.then(() => true), sleep(2000).then(() => false)]);
    assert.ok(closed, 'the upload connection is closed');
    assert.ok(server.lines.some((l) => l.msg === 'drain deadline passed: closing the connections still open'));
    assert.ok(server.lines.some((l) => l.msg === 'stopped'));
  });
}
