/**
 * How a batch job is reported, by the CLI and the HTTP API alike: its status (`{ id, state, total, done, failed,
 * rate, eta }`, computed from the store's record, the source of truth for progress) and one result row per
 * input (source, image id and caption, or the error).
 */
import { z } from 'zod';
import type { JobItem, JobRecord, JobState, LibraryStore, Viewer } from '../library/types.js';

export const JOB_STATES = ['queued', 'running', 'completed', 'cancelled'] as const satisfies readonly JobState[];

export const jobStatusSchema = z.object({
  id: z.string().describe('The job id'),
  state: z.enum(JOB_STATES).describe('queued (nothing finished yet), running, completed (every input has a result) or cancelled'),
  total: z.number().int().describe('Inputs of the job'),
  done: z.number().int().describe('Inputs captioned'),
  failed: z.number().int().describe('Inputs that ended in a per-image error'),
  rate: z.number().nullable().describe('Images finished per second since the job was submitted; null before the first'),
  eta: z.number().nullable().describe('Seconds until every input is finished at that rate; 0 once ended, null when unknown or cancelled'),
});

export type JobStatus = z.infer<typeof jobStatusSchema>;

/** Whether a job can change any more. */
export function isFinished(state: JobState): boolean {
  return state === 'completed' || state === 'cancelled';
}

/** The status of `job` at `now` (ms since the epoch). */
export function jobStatus(job: JobRecord, now: number = Date.now()): JobStatus {
  const finishedItems = job.done + job.failed;
  const end = job.finished && isFinished(job.state) ? Date.parse(job.finished) : now;
  const seconds = (end - Date.parse(job.created)) / 1000;
  const rate = finishedItems > 0 && seconds > 0 ? round2(finishedItems / seconds) : null;
  let eta: number | null;
  if (job.state === 'completed') eta = 0;
  else if (job.state === 'cancelled' || rate === null || rate === 0) eta = null;
  else eta = Math.ceil(Math.max(0, job.total - finishedItems) / rate);
  return { id: job.id, state: job.state, total: job.total, done: job.done, failed: job.failed, rate, eta };
}

export const jobResultSchema = z.object({
  index: z.number().int().describe('Position of the input in the job'),
  source: z.string().describe('The input as submitted: a path or s3://bucket/key'),
  status: z.enum(['done', 'failed', 'pending']),
  imageId: z.string().nullable().describe('SHA-256 of the image (its library id) when captioned'),
  caption: z.string().nullable().describe('The best caption when captioned'),
  error: z.object({ code: z.string(), message: z.string() }).nullable().describe('Why the input has no caption'),
});

export type JobResult = z.infer<typeof jobResultSchema>;

/** One result row per input, in input order, read from the store a page at a time. */
export async function* jobResults(store: LibraryStore, jobId: string, viewer: Viewer, pageSize = 500): AsyncGenerator<JobResult> {
  for (let offset = 0; ; offset += pageSize) {
    const rows = await jobResultsPage(store, jobId, viewer, { offset, limit: pageSize });
    yield* rows;
    if (rows.length < pageSize) return;
  }
}

/** The result rows of inputs offset .. offset + limit - 1. */
export async function jobResultsPage(store: LibraryStore, jobId: string, viewer: Viewer, page: { offset: number; limit: number }): Promise<JobResult[]> {
  const items = await store.jobItems(jobId, viewer, page);
  const captions = new Map<string, string | null>(); // a job may list an image twice
  const rows: JobResult[] = [];
  for (const item of items) rows.push(await toResult(store, item, viewer, captions));
  return rows;
}

async function toResult(store: LibraryStore, item: JobItem, viewer: Viewer, captions: Map<string, string | null>): Promise<JobResult> {
  const { index, source, result } = item;
  if (!result) return { index, source, status: 'pending', imageId: null, caption: null, error: null };
  if ('error' in result) return { index, source, status: 'failed', imageId: null, caption: null, error: result.error };
  const { imageId } = result;
  if (!captions.has(imageId)) captions.set(imageId, (await store.get(imageId, viewer))?.caption ?? null);
  return { index, source, status: 'done', imageId, caption: captions.get(imageId) ?? null, error: null };
}

/** The CSV columns of `jobs results --csv` and GET /v1/jobs/:id/results?format=csv. */
export const RESULT_CSV_COLUMNS = ['index', 'source', 'status', 'image_id', 'caption', 'error_code', 'error_message'] as const;

export function resultCsvFields(r: JobResult): string[] {
  return [String(r.index), r.source, r.status, r.imageId ?? '', r.caption ?? '', r.error?.code ?? '', r.error?.message ?? ''];
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
