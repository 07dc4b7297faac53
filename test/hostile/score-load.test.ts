/**
 * Finding 4, POST /v1/score on the event loop: 16 concurrent 100 KB bodies made /healthz take 3013 ms (4 ms idle).
 * Now scoring runs on worker threads and /healthz stays fast under the same load.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { send, serve } from './helpers.js';

const WORDS = 'a dog runs across the green grass with a red ball in its mouth while two children play near the water'.split(' ');

/** A ~2000-character sentence, different per seed. */
function sentence(seed: number): string {
  let text = '';
  for (let i = seed; text.length < 1980; i = (i * 7 + 3) % 9973) text += `${WORDS[i % WORDS.length]} `;
  return text.trim();
}

test('16 concurrent 100 KB score requests: /healthz stays fast; the scores are still right', { timeout: 120_000 }, async (t) => {
  const server = await serve(t);
  const { port } = server;
  const body = JSON.stringify({ references: Array.from({ length: 50 }, (_, i) => sentence(i + 1)), candidate: sentence(999) });
  t.diagnostic(`score body: ${(body.length / 1024).toFixed(0)} KB`);
  const idle = await send(port, { path: '/healthz' });

  // Load: rounds of 16 concurrent score requests for ~4 s; /healthz sampled every 50 ms meanwhile.
  const until = performance.now() + 4000;
  const scoreStatuses: number[] = [];
  const load = (async () => {
    while (performance.now() < until) {
      const round = await Promise.all(
        Array.from({ length: 16 }, () => send(port, { method: 'POST', path: '/v1/score', headers: { 'content-type': 'application/json' }, body, timeoutMs: 60_000 })),
      );
      scoreStatuses.push(...round.map((r) => r.status));
    }
  })();
  const healthz: number[] = [];
  while (performance.now() < until) {
    const r = await send(port, { path: '/healthz', timeoutMs: 30_000 });
    assert.equal(r.status, 200);
    healthz.push(r.ms);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await load;
  healthz.sort((a, b) => a - b);
  const p50 = healthz[Math.floor(healthz.length / 2)];
  const max = healthz[healthz.length - 1];
  t.diagnostic(`/healthz idle ${idle.ms.toFixed(1)} ms; under score load (${scoreStatuses.length} score requests): median ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms over ${healthz.length} samples`);
  assert.ok(scoreStatuses.length >= 16, 'the load ran');
  assert.ok(scoreStatuses.every((s) => s === 200 || s === 503), `score statuses ${[...new Set(scoreStatuses)]}`);
  assert.ok(scoreStatuses.filter((s) => s === 200).length >= 16, 'most are scored');
  assert.ok(max < 500, `/healthz took up to ${max.toFixed(0)} ms under score load`);
  assert.ok(p50 < 100, `/healthz median ${p50.toFixed(0)} ms under score load`);

  // The worker threads give the same numbers as before.
  const small = await send(port, { method: 'POST', path: '/v1/score', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ references: ['a dog runs', 'a dog is running'], candidate: 'a dog runs' }) });
  assert.equal(small.status, 200);
  const { sentenceScores } = await import('../../src/metrics/sentence.js');
  assert.deepEqual(small.json().scores, sentenceScores(['a dog runs', 'a dog is running'], 'a dog runs'));
});
