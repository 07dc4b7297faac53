import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MicroBatcher } from '../src/server/batcher.js';

/** A fake worker that records its batches and takes `ms` per batch; item "bad" fails alone, "boom" fails the batch. */
function fakeWorker(ms = 0) {
  const batches: string[][] = [];
  const worker = async (items: string[]) => {
    batches.push([...items]);
    if (items.includes('boom')) throw new Error('worker crashed');
    await sleep(ms);
    return items.map((x) => (x === 'bad' ? new Error(`bad item ${x}`) : x.toUpperCase()));
  };
  return { batches, worker };
}

test('concurrent submissions are batched up to maxBatch, in arrival order, results to the right caller', async () => {
  const { batches, worker } = fakeWorker(20);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 3, maxWaitMs: 30, maxQueue: 100 });
  const items = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const out = await Promise.all(items.map((x) => b.submit(x)));
  assert.deepEqual(out.map((o) => o.result), items.map((x) => x.toUpperCase()));
  assert.deepEqual(batches, [['a', 'b', 'c'], ['d', 'e', 'f'], ['g']]);
  assert.deepEqual(out.map((o) => o.batchSize), [3, 3, 3, 3, 3, 3, 1]);
});

test('a lone item waits at most about maxWaitMs; a full batch starts at once', async () => {
  const { batches, worker } = fakeWorker(0);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 4, maxWaitMs: 300, maxQueue: 10 });
  const t0 = performance.now();
  const one = await b.submit('x');
  const waited = performance.now() - t0;
  assert.ok(waited >= 290 && waited < 1500, `lone item waited ${waited} ms`);
  assert.ok(one.queuedMs >= 290);

  const t1 = performance.now();
  await Promise.all(['p', 'q', 'r', 's'].map((x) => b.submit(x)));
  const full = performance.now() - t1;
  assert.ok(full < 200, `a full batch should not wait for the 300 ms timer (took ${full} ms)`);
  assert.deepEqual(batches, [['x'], ['p', 'q', 'r', 's']]);
});

test('items arriving while a batch runs form the next batch; only one batch runs at a time', async () => {
  let running = 0;
  let maxRunning = 0;
  const batches: number[][] = [];
  const b = new MicroBatcher<number, number>({
    worker: async (items) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      batches.push(items);
      await sleep(40);
      running--;
      return items.map((x) => x * 2);
    },
    maxBatch: 8,
    maxWaitMs: 0,
    maxQueue: 100,
  });
  const first = b.submit(1);
  await sleep(5); // the first batch is running now
  const rest = [2, 3, 4, 5].map((x) => b.submit(x));
  const out = await Promise.all([first, ...rest]);
  assert.deepEqual(out.map((o) => o.result), [2, 4, 6, 8, 10]);
  assert.equal(maxRunning, 1);
  assert.deepEqual(batches, [[1], [2, 3, 4, 5]]);
});

test('items with different keys never share a batch; each key keeps arrival order', async () => {
  const { batches, worker } = fakeWorker(5);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 4, maxWaitMs: 20, maxQueue: 100, keyOf: (x) => x[0] });
  const items = ['a1', 'b1', 'a2', 'b2', 'a3', 'c1', 'b3'];
  const out = await Promise.all(items.map((x) => b.submit(x)));
  assert.deepEqual(out.map((o) => o.result), items.map((x) => x.toUpperCase()));
  for (const batch of batches) assert.equal(new Set(batch.map((x) => x[0])).size, 1, `mixed batch ${batch}`);
  assert.deepEqual(batches, [['a1', 'a2', 'a3'], ['b1', 'b2', 'b3'], ['c1']]);
});

test('a per-item Error fails only that caller; a thrown worker fails its whole batch; the batcher keeps working', async () => {
  const { worker } = fakeWorker(0);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 3, maxWaitMs: 10, maxQueue: 10 });
  const results = await Promise.allSettled(['ok', 'bad', 'fine'].map((x) => b.submit(x)));
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.match(String((results[1] as PromiseRejectedResult).reason), /bad item/);
  const crashed = await Promise.allSettled(['boom', 'x'].map((x) => b.submit(x)));
  assert.deepEqual(crashed.map((r) => r.status), ['rejected', 'rejected']);
  assert.equal((await b.submit('after')).result, 'AFTER');
});

test('a full queue refuses at once with OVERLOADED and a Retry-After estimate; queue depth is reported', async () => {
  const depths: number[] = [];
  const { worker } = fakeWorker(60);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 1, maxWaitMs: 0, maxQueue: 2, onQueueDepth: (d) => depths.push(d) });
  const first = b.submit('running');
  await sleep(5); // first batch running; the queue is empty
  const queued = [b.submit('q1'), b.submit('q2')];
  assert.equal(b.depth, 2);
  await assert.rejects(b.submit('q3'), (err: { code: string; message: string }) => err.code === 'OVERLOADED' && /limit 2/.test(err.message));
  assert.ok(b.retryAfterSeconds() >= 1);
  await Promise.all([first, ...queued]);
  assert.equal(b.depth, 0);
  assert.ok(depths.includes(2) && depths.at(-1) === 0, `depths ${depths}`);
});

test('timeouts: a queued item is dropped with TIMEOUT; a running one gets TIMEOUT and its late result is discarded', async () => {
  const { batches, worker } = fakeWorker(100);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 1, maxWaitMs: 0, maxQueue: 10 });
  const running = b.submit('slow', { timeoutMs: 30 });
  const queued = b.submit('queued', { timeoutMs: 30 });
  await assert.rejects(running, (err: { code: string }) => err.code === 'TIMEOUT');
  await assert.rejects(queued, (err: { code: string }) => err.code === 'TIMEOUT');
  assert.equal(b.depth, 0);
  await sleep(150);
  assert.deepEqual(batches, [['slow']], 'the timed-out queued item never reached the worker');
  assert.equal((await b.submit('next', { timeoutMs: 1000 })).result, 'NEXT');
});

test('an aborted signal: a queued item leaves the queue at once (CLIENT_CLOSED), a running one is not waited for; onStart tells when a batch starts', async () => {
  const { batches, worker } = fakeWorker(80);
  const depths: number[] = [];
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 1, maxWaitMs: 0, maxQueue: 10, onQueueDepth: (d) => depths.push(d) });
  const running = new AbortController();
  const queued = new AbortController();
  const started: string[] = [];
  const first = b.submit('a', { signal: running.signal, onStart: () => started.push('a') });
  const second = b.submit('b', { signal: queued.signal, onStart: () => started.push('b') });
  const third = b.submit('c');
  await sleep(10);
  assert.deepEqual(started, ['a'], 'the first batch started; b still queued');
  const t0 = performance.now();
  queued.abort();
  await assert.rejects(second, (err: Error & { code?: string }) => err.code === 'CLIENT_CLOSED' && /queued/.test(err.message));
  assert.equal(b.depth, 1, 'b left the queue; c waits');
  running.abort();
  await assert.rejects(first, (err: Error & { code?: string }) => err.code === 'CLIENT_CLOSED' && /batch ran/.test(err.message));
  assert.ok(performance.now() - t0 < 40, 'neither waited for the running batch');
  assert.equal((await third).result, 'C');
  assert.deepEqual(batches, [['a'], ['c']], 'b was never captioned');
  await assert.rejects(b.submit('d', { signal: AbortSignal.abort() }), (err: Error & { code?: string }) => err.code === 'CLIENT_CLOSED');
  assert.equal(depths.at(-1), 0);
});

test('drain finishes queued and running work, then refuses new items', async () => {
  const { worker } = fakeWorker(30);
  const b = new MicroBatcher<string, string>({ worker, maxBatch: 2, maxWaitMs: 1000, maxQueue: 10 });
  const pending = ['a', 'b', 'c'].map((x) => b.submit(x));
  await b.drain(); // does not wait for the 1000 ms fill timer
  const out = await Promise.all(pending);
  assert.deepEqual(out.map((o) => o.result), ['A', 'B', 'C']);
  await assert.rejects(b.submit('late'), (err: { code: string }) => err.code === 'OVERLOADED');
});

test('bad options are INVALID_ARGUMENT', () => {
  const worker = async (items: number[]) => items;
  assert.throws(() => new MicroBatcher({ worker, maxBatch: 0, maxWaitMs: 1, maxQueue: 1 }), /maxBatch/);
  assert.throws(() => new MicroBatcher({ worker, maxBatch: 1, maxWaitMs: -1, maxQueue: 1 }), /maxWaitMs/);
  assert.throws(() => new MicroBatcher({ worker, maxBatch: 1, maxWaitMs: 1, maxQueue: 1.5 }), /maxQueue/);
});
