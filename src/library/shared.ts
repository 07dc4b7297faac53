/**
 * The rules both stores share, so that the SQL of each dialect only stores and finds: who sees what, what a
 * valid entry or job is, and the errors a caller can act on.
 *
 * Owners: an image belongs to every key that stored it. Without keys (the embedded server, the CLI) the owner
 * is null, kept in the owner tables as NO_KEY_OWNER ('' — primary keys cannot hold NULL), so an image stored
 * before keys existed keeps an owner of its own and is not removed when a key that stored it too lets it go.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { JobItemResult, NewEntry, StoredEmbedding, Viewer } from './types.js';

/** The owner recorded for an image stored without an API key. */
export const NO_KEY_OWNER = '';

export function ownerValue(owner: string | null): string {
  return owner ?? NO_KEY_OWNER;
}

/** Admin keys, and callers without keys (nothing is configured), see every image and job. */
export function seesEverything(viewer: Viewer): boolean {
  return viewer.admin || viewer.keyId === null;
}

const IMAGE_ID = /^[0-9a-f]{64}$/;
const JOB_ID_MAX = 128;

export function checkEntry(entry: NewEntry): void {
  if (!IMAGE_ID.test(entry.id)) throw invalid('id', `an image id is the SHA-256 of its bytes, 64 lower-case hex digits; got ${JSON.stringify(entry.id)}`);
  if (!Buffer.isBuffer(entry.bytes) || entry.bytes.length === 0) throw invalid('bytes', `image ${entry.id}: no bytes to store`);
  if (!Array.isArray(entry.captions)) throw invalid('captions', `image ${entry.id}: captions must be an array`);
  if (typeof entry.model !== 'string') throw invalid('model', `image ${entry.id}: model must be a string`);
  entry.captions.forEach((c, i) => {
    if (c.confidence !== undefined && !(Number.isFinite(c.confidence) && c.confidence >= 0 && c.confidence <= 1)) {
      throw invalid('captions', `image ${entry.id}: caption ${i}: confidence must be a number from 0 to 1, got ${c.confidence}`);
    }
  });
  if (entry.tags !== undefined) {
    if (!Array.isArray(entry.tags)) throw invalid('tags', `image ${entry.id}: tags must be an array`);
    entry.tags.forEach((t, i) => {
      if (typeof t?.word !== 'string' || !t.word || !(Number.isFinite(t.probability) && t.probability >= 0 && t.probability <= 1)) {
        throw invalid('tags', `image ${entry.id}: tag ${i}: a word and a probability from 0 to 1 are required`);
      }
    });
  }
  if (entry.embedding) checkEmbedding(entry.embedding, `image ${entry.id}: embedding`);
}

/** What the full-text index of an image holds: every caption, then the tag words, one per line. */
export function searchText(entry: NewEntry): string {
  return [...entry.captions.map((c) => c.text), ...(entry.tags ?? []).map((t) => t.word)].join('\n');
}

/** The tags as stored (JSON), and back: only word and probability are kept. */
export function tagsJson(entry: NewEntry): string {
  return JSON.stringify((entry.tags ?? []).map((t) => ({ word: t.word, probability: t.probability })));
}

/** Most dimensions of an embedding (pgvector stores at most 16000). */
export const EMBEDDING_MAX_DIM = 16_000;

export function checkEmbedding(embedding: StoredEmbedding, where: string): void {
  if (typeof embedding.model !== 'string' || !embedding.model) throw invalid('embedding', `${where}: the matcher's id (model) is required`);
  const v = embedding.vector;
  if (!(v instanceof Float32Array || Array.isArray(v)) || v.length === 0 || v.length > EMBEDDING_MAX_DIM) {
    throw invalid('embedding', `${where}: a vector of 1 to ${EMBEDDING_MAX_DIM} numbers is required`);
  }
  let norm = 0;
  for (const x of v) {
    if (!Number.isFinite(x)) throw invalid('embedding', `${where}: every component must be a finite number`);
    norm += x * x;
  }
  if (norm === 0) throw invalid('embedding', `${where}: the zero vector has no direction`);
}

/** The vector scaled to unit length, as float32 (so that a dot product is the cosine). */
export function unitVector(v: Float32Array | readonly number[]): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  return Float32Array.from(v, (x) => x / norm);
}

/** The best caption's confidence of an entry, or null. */
export function entryConfidence(entry: NewEntry): number | null {
  return entry.captions[0]?.confidence ?? null;
}

export function checkNewJob(job: { id: string; sources: string[] }): void {
  if (typeof job.id !== 'string' || !job.id || job.id.length > JOB_ID_MAX) throw invalid('id', `a job id must be 1-${JOB_ID_MAX} characters, got ${JSON.stringify(job.id)}`);
  if (!Array.isArray(job.sources) || job.sources.length === 0) throw invalid('sources', `job ${job.id}: a job needs at least one input`);
  // NUL: no path or object key holds one, and PostgreSQL text cannot.
  if (job.sources.some((s) => typeof s !== 'string' || !s || s.includes('\0'))) {
    throw invalid('sources', `job ${job.id}: every input must be a non-empty string without NUL characters`);
  }
}

/** An item index that cannot exist (negative, fractional) is NOT_FOUND, as one past the end. */
export function checkItemIndex(jobId: string, index: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index > 2 ** 31 - 1) throw jobNotFound(jobId, index);
}

/** Whether a recorded item counts as done (captioned) rather than failed. */
export function isSuccess(result: JobItemResult): result is { imageId: string } {
  return 'imageId' in result;
}

export function jobNotFound(jobId: string, index?: number): PixelInfoError {
  const what = index === undefined ? `no job ${jobId}` : `job ${jobId} has no item ${index}`;
  return new PixelInfoError(ErrorCodes.NOT_FOUND, what, { subject: jobId });
}

export function imageNotFound(id: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.NOT_FOUND, `no image ${id} in the library`, { subject: id });
}

function invalid(subject: string, message: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, message, { subject });
}
