/**
 * src/server/worker-pool.ts: a task's time limit counts its computation only. A thread that takes longer to load
 * than the limit (tsx compiling the score worker on a busy CI machine did; the page then got a 504) still runs the
 * task; a task that computes for longer than the limit gets TIMEOUT and its thread is replaced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerPool } from '../src/server/worker-pool.js';
import { ErrorCodes, PixelInfoError } from '../src/errors.js';

const entry = new URL('./fixtures/pool/slow-worker.ts', import.meta.url);

test('the time limit starts once the thread has loaded, and still cuts a slow task', async () => {
  const pool = new WorkerPool<{ ms: number }, number>({ size: 1, maxPending: 4, timeoutMs: 300, entry, name: 'test work' });
  try {
    // the thread loads for ~600 ms (> 300 ms), then computes for 50 ms: within the limit
    assert.equal(await pool.run({ ms: 50 }), 50);
    // 800 ms of computation: cut at 300 ms
    await assert.rejects(pool.run({ ms: 800 }), (err: unknown) => err instanceof PixelInfoError && err.code === ErrorCodes.TIMEOUT && /test work took longer than 300 ms/.test(err.message));
    // the replacement thread loads again and works
    assert.equal(await pool.run({ ms: 10 }), 10);
  } finally {
    await pool.close();
  }
});
