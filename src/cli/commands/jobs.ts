/**
 * `pixel-info jobs`: batch captioning on the worker pool.
 *
 *   jobs submit <files|folders|globs|s3://bucket/prefix...>  records a job, queues its inputs, prints its id
 *        [--wait] [--json]                                    (--wait: until it ends, a progress bar on stderr)
 *   jobs status <id> [--json]                                {"id","state","total","done","failed","rate","eta"}
 *   jobs results <id> [--jsonl|--csv]                        one row per input: caption or error
 *   jobs cancel <id>                                         inputs not yet taken are dropped
 *   jobs requeue <id>                                        puts inputs without a result back on the queue
 *
 * Progress and results are read from the library store (the source of truth), so `status` and `results` need
 * only `--database`; submitting, cancelling and re-queueing also need `--redis`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { EVERYONE, libraryTarget, openLibrary, type LibraryStore } from '../../library/index.js';
import { csvRow } from '../../pipeline/format.js';
import { REDIS_URL_ENV, requireRedisUrl } from '../../queue/connection.js';
import type { JobGenerationOptions } from '../../queue/definitions.js';
import { JobQueue } from '../../queue/job-queue.js';
import { s3SettingsFrom } from '../../queue/s3.js';
import { expandSources } from '../../queue/sources.js';
import { RESULT_CSV_COLUMNS, isFinished, jobResults, jobStatus, resultCsvFields, type JobStatus } from '../../queue/status.js';
import { createProgress } from '../progress.js';
import { addGenerationOptions, generationOptionsFrom, parsePositiveInt, type GenerationFlags } from '../options.js';

export interface QueueCliOptions {
  redis?: string;
  database?: string;
  s3Endpoint?: string;
}

/** --redis and --database (and, where S3 is read, --s3-endpoint), shared by `jobs` and `worker`. */
export function addQueueOptions(command: Command, { s3 = false } = {}): Command {
  command
    .option('--redis <url>', `Redis of the job queue, redis://host:port (default $${REDIS_URL_ENV})`)
    .option('--database <url>', 'the library: postgres://user:password@host/db or an SQLite file (default $PIXEL_INFO_DATABASE_URL, $PIXEL_INFO_LIBRARY, ./pixel-info-library.sqlite)');
  if (s3) command.option('--s3-endpoint <url>', 'S3-compatible endpoint for s3:// inputs (default $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL, else AWS)');
  return command;
}

interface SubmitCliOptions extends QueueCliOptions, GenerationFlags {
  wait?: boolean;
  json?: boolean;
  progress: boolean;
  pollMs: number;
  timeout?: number;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description('batch captioning on the worker pool: submit, status, results, cancel, requeue');

  const submit = jobs
    .command('submit')
    .description('caption many images on the worker pool; prints the job id')
    .argument('<inputs...>', 'image files, folders, glob patterns, s3://bucket/key or s3://bucket/prefix (paths must be readable by the workers)');
  addGenerationOptions(addQueueOptions(submit, { s3: true }), { nBest: true })
    .option('--wait', 'wait until the job ends (progress bar on stderr); exit 1 when an input failed or the job was cancelled')
    .option('--json', 'print the job status as JSON: {"id","state","total","done","failed","rate","eta"} (with --wait: when it ends)')
    .option('--no-progress', 'no progress bar with --wait')
    .option('--poll-ms <ms>', 'how often --wait reads the progress', parsePositiveInt, 500)
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the job goes on)', parsePositiveInt)
    .action(async (inputs: string[], opts: SubmitCliOptions) => {
      const redisUrl = requireRedisUrl(opts.redis);
      const { sources, empty } = await expandSources(inputs, s3SettingsFrom(opts.s3Endpoint));
      for (const e of empty) console.error(`pixel-info jobs submit: no images found in ${e}`);
      if (sources.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `no images to caption in ${inputs.join(', ')}`);

      await withStore(opts, async (store) => {
        const queue = await JobQueue.open(redisUrl, store);
        let id: string;
        try {
          id = (await queue.submit(sources, { owner: null, options: jobOptions(opts) })).id;
        } finally {
          await queue.close();
        }
        if (!opts.wait) {
          const status = await requireJob(store, id);
          console.log(opts.json ? JSON.stringify(status) : id);
          return;
        }
        if (!opts.json) console.error(`pixel-info jobs submit: job ${id}, ${sources.length} image${sources.length === 1 ? '' : 's'}`);
        const status = await waitForJob(store, id, opts);
        console.log(opts.json ? JSON.stringify(status) : describeStatus(status));
        process.exitCode = status.state === 'completed' && status.failed === 0 ? 0 : 1;
      });
    });

  addQueueOptions(jobs.command('status').description("a job's progress").argument('<id>', 'the job id'))
    .option('--json', 'print {"id","state","total","done","failed","rate","eta"} (rate: images/s; eta: seconds; null when unknown)')
    .action(async (id: string, opts: QueueCliOptions & { json?: boolean }) => {
      await withStore(opts, async (store) => {
        const status = await requireJob(store, id);
        console.log(opts.json ? JSON.stringify(status) : describeStatus(status));
      });
    });

  const formats = ['json', 'jsonl', 'csv'];
  const format = (name: string, description: string) => new Option(`--${name}`, description).conflicts(formats.filter((f) => f !== name));
  addQueueOptions(jobs.command('results').description("a job's captions and errors, one per input, in input order").argument('<id>', 'the job id'))
    .addOption(format('jsonl', 'one JSON object per input: {"index","source","status","imageId","caption","error"}'))
    .addOption(format('json', 'a JSON array of those objects'))
    .addOption(format('csv', `CSV with a header: ${RESULT_CSV_COLUMNS.join(',')}`))
    .action(async (id: string, opts: QueueCliOptions & { json?: boolean; jsonl?: boolean; csv?: boolean }) => {
      await withStore(opts, async (store) => {
        await requireJob(store, id);
        if (opts.csv) console.log(csvRow([...RESULT_CSV_COLUMNS]));
        const all = [];
        for await (const r of jobResults(store, id, EVERYONE)) {
          if (opts.json) all.push(r);
          else if (opts.jsonl) console.log(JSON.stringify(r));
          else if (opts.csv) console.log(csvRow(resultCsvFields(r)));
          else if (r.status === 'done') console.log(`${r.source}: ${r.caption}`);
          else if (r.status === 'failed') console.log(`${r.source}: ${r.error!.code}: ${r.error!.message}`);
          else console.log(`${r.source}: (not captioned yet)`);
        }
        if (opts.json) console.log(JSON.stringify(all, null, 2));
      });
    });

  addQueueOptions(jobs.command('cancel').description('cancel a job: inputs not yet taken by a worker are dropped').argument('<id>', 'the job id'))
    .option('--json', 'print the job status as JSON afterwards')
    .action(async (id: string, opts: QueueCliOptions & { json?: boolean }) => {
      const redisUrl = requireRedisUrl(opts.redis);
      await withStore(opts, async (store) => {
        const queue = await JobQueue.open(redisUrl, store);
        try {
          const status = await queue.cancel(id, EVERYONE);
          if (!status) throw noSuchJob(id);
          console.log(opts.json ? JSON.stringify(status) : describeStatus(status));
        } finally {
          await queue.close();
        }
      });
    });

  addQueueOptions(
    jobs
      .command('requeue')
      .description('put the inputs of a job that have no result back on the queue (after Redis lost them, or a submission was cut short)')
      .argument('<id>', 'the job id'),
  ).action(async (id: string, opts: QueueCliOptions) => {
    const redisUrl = requireRedisUrl(opts.redis);
    await withStore(opts, async (store) => {
      const queue = await JobQueue.open(redisUrl, store);
      try {
        const n = await queue.requeuePending(id);
        console.log(`${id}: ${n} input${n === 1 ? '' : 's'} queued again`);
      } finally {
        await queue.close();
      }
    });
  });
}

/** "…  running  12/20 done, 1 failed  3.4 images/s  ETA 3 s" */
export function describeStatus(s: JobStatus): string {
  const parts = [s.id, s.state, `${s.done}/${s.total} done, ${s.failed} failed`];
  if (s.rate !== null) parts.push(`${s.rate} images/s`);
  if (s.eta !== null && !isFinished(s.state)) parts.push(`ETA ${s.eta} s`);
  return parts.join('  ');
}

async function withStore<T>(opts: QueueCliOptions, fn: (store: LibraryStore) => Promise<T>): Promise<T> {
  const store = await openLibrary(libraryTarget({ database: opts.database }));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function requireJob(store: LibraryStore, id: string): Promise<JobStatus> {
  const job = await store.getJob(id, EVERYONE);
  if (!job) throw noSuchJob(id);
  return jobStatus(job);
}

function noSuchJob(id: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `no job ${id} in this library`, { subject: id });
}

/** Polls the store until the job ends (or --timeout passes: TIMEOUT), with a progress bar on stderr. */
async function waitForJob(store: LibraryStore, id: string, opts: SubmitCliOptions): Promise<JobStatus> {
  let status = await requireJob(store, id);
  const bar = createProgress(status.total, 'job', { enabled: opts.progress && !opts.json });
  const deadline = opts.timeout === undefined ? Infinity : Date.now() + opts.timeout * 1000;
  try {
    while (!isFinished(status.state)) {
      bar.update(status.done + status.failed, { failed: status.failed });
      if (Date.now() >= deadline) {
        throw new PixelInfoError(ErrorCodes.TIMEOUT, `job ${id} did not end within ${opts.timeout} s (${status.done + status.failed}/${status.total} finished); it goes on: pixel-info jobs status ${id}`);
      }
      await sleep(opts.pollMs);
      status = await requireJob(store, id);
    }
    bar.update(status.done + status.failed, { failed: status.failed });
  } finally {
    bar.stop();
  }
  return status;
}

/** The decoding flags given, as job options (flags left out are not sent: the worker's model card decides). */
function jobOptions(flags: GenerationFlags): JobGenerationOptions {
  const options = generationOptionsFrom(flags);
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as JobGenerationOptions;
}
