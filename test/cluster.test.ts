/**
 * The distributed mode as deployed (docs/deploy.md), on loopback: Redis with AOF (`appendfsync always`,
 * `noeviction`), PostgreSQL, two `pixel-info serve --redis --database` replicas (A captions in process, B with
 * --remote-captioning) behind one admin API key, and three single-threaded `pixel-info worker` processes.
 *
 * 300 inputs — the Flickr8k test split's first 295 images and 5 broken files — go in through replica A's
 * POST /v1/jobs. At 15 % one worker and replica A are SIGKILLed; at 50 % Redis is SIGKILLed and started again
 * on the same AOF folder; replica B is polled all along (GET /healthz, GET /v1/jobs/:id). The job must end with
 * 295 captions and 5 per-image errors with their codes, each image stored once in PostgreSQL, every caption
 * identical to the embedded mode's (Captioner.caption in this process on the same files), and replica B must
 * have answered every request. The scenario itself is bench/cluster-harness.ts (`npm run bench:cluster` runs
 * it too). About two minutes on two cores.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterSkipReason, runFailover, type FailoverReport } from '../bench/cluster-harness.js';

const SKIP = await clusterSkipReason();
const VERBOSE = process.env.PIXEL_INFO_TEST_VERBOSE === '1';

test('cluster: a worker, a replica and Redis die mid-job; the job ends complete, stored once, captions as embedded, replica B answering', { skip: SKIP, timeout: 600_000 }, async (t) => {
  const report: FailoverReport = await runFailover({ lockMs: 5000, jobTimeoutMs: 300_000, log: VERBOSE ? (m) => t.diagnostic(m) : undefined });
  t.diagnostic(
    `${report.seconds.total} s in all (startup ${report.seconds.startup} s, job ${report.seconds.job} s, embedded reference ${report.seconds.embedded} s); ` +
      `replica B: ${report.replicaB.requests} requests, p50 ${report.replicaB.p50LatencyMs} ms, max ${report.replicaB.maxLatencyMs} ms, longest gap ${report.replicaB.longestGapMs} ms; ` +
      `peak RSS MiB ${JSON.stringify(report.rssMb)}, redis ${report.redisRssMb}, postgres PSS ${report.postgresPssMb}`,
  );
  for (const e of report.events) t.diagnostic(`${e.atSeconds} s, ${e.finished} finished: ${e.what}`);
  t.diagnostic(`surviving workers' log: ${JSON.stringify(report.workerLog)}`);

  // The job: 295 captions and 5 per-image errors, each with its code.
  assert.deepEqual([report.job.state, report.job.total, report.job.done, report.job.failed], ['completed', 300, 295, 5], JSON.stringify(report.job));
  assert.deepEqual([report.results.rows, report.results.done, report.results.failed, report.results.pending], [300, 295, 5, 0]);
  for (const e of report.results.errors) assert.equal(e.code, e.expected, `${e.file}: ${e.code}, expected ${e.expected}`);
  assert.ok(report.captions.embeddedErrorCodesMatch, 'the embedded mode gives the same codes for the broken files');

  // The failures really happened mid-job, and were recovered from.
  assert.ok(report.killedWorkerHeld > 0, 'the killed worker held inputs when it was killed');
  assert.equal(report.killedWorkerExit, 'SIGKILL');
  assert.equal(report.replicaAExit, 'SIGKILL');
  assert.ok(report.workerLog.stalledBeforeRedisKill > 0, "the surviving workers took the killed worker's inputs back (stalled-job check)");
  assert.equal(report.workerLog.gaveUp, 0, 'no input given up on');
  const [killed, crashed, restarted, ended] = report.events;
  assert.ok(killed.finished < 300 && crashed.finished < 300 && restarted.finished < ended.finished, `kills and restart mid-job: ${JSON.stringify(report.events)}`);
  assert.deepEqual(report.redis.afterRestart, { appendonly: 'yes', appendfsync: 'always', maxmemoryPolicy: 'noeviction' });
  assert.deepEqual(report.queueAfter, { waiting: 0, active: 0, delayed: 0, failed: 0 }, 'nothing left in the queue');

  // Each image stored exactly once, under its content hash.
  assert.deepEqual(report.database, {
    images: 295,
    ownerRows: 295,
    distinctOwnedImages: 295,
    itemsWithoutResult: 0,
    idsMatchContentHashes: true,
    missing: 0,
    unexpected: 0,
  });

  // Every caption identical to the embedded mode's.
  assert.deepEqual(report.captions.mismatches, [], 'captions differing from Captioner.caption on the same files');
  assert.equal(report.captions.identical, 295);
  assert.ok(report.captions.maxScoreDifference < 1e-3, `scores within float noise of the embedded ones (${report.captions.maxScoreDifference})`);

  // Replica B answered throughout: before the kills, across the Redis outage, to the end.
  assert.deepEqual(report.replicaB.failures, [], 'requests to replica B that failed');
  assert.ok(report.replicaB.firstAtSeconds <= killed.atSeconds && report.replicaB.lastAtSeconds >= ended.atSeconds - 1, 'polled from before the kills to the end');
  assert.ok(report.replicaB.longestGapMs < 3000, `replica B never went quiet for 3 s (longest gap ${report.replicaB.longestGapMs} ms)`);
});
