/**
 * The library's storage seam: one small async interface, two implementations — SQLite (embedded default, one
 * file, nothing to install) and PostgreSQL (shared by any number of API replicas and workers). Both pass the
 * same contract suite (test/library-contract.test.ts), so the dialects cannot drift.
 *
 * What is stored:
 *   images     one row per distinct image, keyed by the SHA-256 of its bytes: original bytes, thumbnail, size,
 *              format, and the captions of the model that captioned it (`model`), with full-text search; when an
 *              image–text matcher was loaded, the best caption's confidence and the image's embedding (semantic
 *              search: SQLite compares every stored embedding, PostgreSQL uses pgvector)
 *   owners     which API keys stored an image (a key sees only its own images; an admin key sees all)
 *   api_keys   hashed API keys (the plain key is shown once, at creation)
 *   jobs       batch captioning jobs and their items (one per input), the source of truth for job progress:
 *              the queue (BullMQ on Redis) only carries work, so losing Redis loses no result
 *
 * Every write is idempotent (delivery from the queue is at-least-once): putting an image again, recording a
 * job item again, adding an owner again change nothing but the captions/result they carry.
 */

/** Who is asking. `keyId` null: no API keys are configured (embedded use), everything is visible. */
export interface Viewer {
  keyId: string | null;
  admin: boolean;
}

/** Sees everything: the embedded server without keys, the CLI, admin tools. */
export const EVERYONE: Viewer = Object.freeze({ keyId: null, admin: true });

export interface LibraryCaption {
  text: string;
  score: number;
  /** The matcher's calibrated probability that the caption describes the image (0..1); absent without a matcher. */
  confidence?: number;
}

/** An ImageNet-guided tag of an image (src/encoder/tags.ts) as the library keeps it. */
export interface LibraryTag {
  /** A caption vocabulary word, e.g. "cat". */
  word: string;
  /** The summed probability of the ImageNet classes mapped to the word (0..1). */
  probability: number;
}

/**
 * An image's embedding in the matcher's space (unit length), and which matcher made it: embeddings of different
 * matchers are never compared.
 */
export interface StoredEmbedding {
  /** The matcher's id (its card name and a hash of its files). */
  model: string;
  vector: Float32Array | readonly number[];
}

export interface LibraryEntry {
  /** SHA-256 of the image bytes, 64 lower-case hex digits. */
  id: string;
  /** ISO 8601, when the image was first stored. */
  created: string;
  width: number;
  height: number;
  format: string;
  /** The best caption. */
  caption: string;
  /** Every caption of the latest captioning, best first. */
  captions: LibraryCaption[];
  /** The model that wrote the captions (model card name and a hash of its files): a resubmission by the same model is not recomputed. */
  model: string;
  /** The best caption's confidence (0..1, from the image–text matcher); null when it was captioned without one. */
  confidence: number | null;
  /** Only in a search by meaning: the cosine of the image's embedding and the query's (-1..1). */
  cosine?: number;
  /**
   * The image's tags when it was (last) captioned, most probable first; left out when there are none (images
   * stored before tags, or with no confident tag). Searched by words together with the captions.
   */
  tags?: LibraryTag[];
}

export interface NewEntry {
  id: string;
  bytes: Buffer;
  width: number;
  height: number;
  format: string;
  captions: LibraryCaption[];
  /** The image's ImageNet-guided tags (default none); they replace the stored ones, as the captions do. */
  tags?: LibraryTag[];
  model: string;
  /** The API key storing it (null without keys). */
  owner: string | null;
  /**
   * The image's embedding, for search by meaning. Absent or null: an embedding stored before is kept (it depends
   * on the image and the matcher only, not on the captions).
   */
  embedding?: StoredEmbedding | null;
}

export interface SearchQuery {
  /** Words (prefix match, all required); empty: newest first. */
  q?: string;
  /** 1..100, default 24. */
  limit?: number;
  /**
   * Search by meaning: the query's embedding (the matcher's text embedding of `q`). Images with an embedding of
   * the same matcher come first, most similar (highest cosine) first, each with its `cosine`; then images without
   * one whose captions match the words of `q`. Without it (or with an empty `q`): search by words.
   */
  embedding?: StoredEmbedding;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  admin: boolean;
  created: string;
  /** ISO 8601 when revoked, else null. */
  revoked: string | null;
}

export type JobState = 'queued' | 'running' | 'completed' | 'cancelled';

export interface JobRecord {
  id: string;
  owner: string | null;
  state: JobState;
  /** Inputs of the job. */
  total: number;
  /** Items captioned. */
  done: number;
  /** Items that ended in a per-image error. */
  failed: number;
  created: string;
  /** When the last item was recorded, or the job was cancelled. */
  finished: string | null;
  /** The decoding options the job was submitted with (GenerationOptions as JSON). */
  options: Record<string, unknown>;
}

export type JobItemResult = { imageId: string } | { error: { code: string; message: string } };

export interface JobItem {
  index: number;
  /** The input as submitted: a path the workers can read, or s3://bucket/key. */
  source: string;
  /** Null while pending. */
  result: JobItemResult | null;
}

export interface LibraryStore {
  readonly kind: 'sqlite' | 'postgres';

  /** Stores (or re-captions) an image and adds `owner` to its owners. `created`: the image was new. */
  put(entry: NewEntry): Promise<{ created: boolean }>;
  /** Whether the image is stored with captions by `model` (then a job need not caption it again). */
  hasCaptions(id: string, model: string): Promise<boolean>;
  /** Adds an owner to an image already stored (a resubmission by another key). */
  addOwner(id: string, owner: string | null): Promise<void>;
  get(id: string, viewer: Viewer): Promise<LibraryEntry | undefined>;
  search(query: SearchQuery, viewer: Viewer): Promise<LibraryEntry[]>;
  count(viewer: Viewer): Promise<number>;
  /**
   * Bytes of stored originals (for quotas): of every image, or with `owner` given, of the images that key stored
   * (null: those stored without a key). An image held by several keys counts for each of them.
   */
  storedBytes(owner?: string | null): Promise<number>;
  image(id: string, viewer: Viewer): Promise<{ bytes: Buffer; format: string } | undefined>;
  thumbnail(id: string, viewer: Viewer): Promise<Buffer | undefined>;
  /**
   * Removes the viewer's ownership; the image, its thumbnail and captions go when no owner is left (an admin
   * removes the image outright). False when the viewer cannot see it.
   */
  delete(id: string, viewer: Viewer): Promise<boolean>;

  /** A new key: the plain key (shown once) and its record; only a hash is stored. */
  createKey(name: string, admin: boolean): Promise<{ key: string; info: ApiKeyInfo }>;
  /** The viewer a presented key stands for, or undefined (unknown or revoked). */
  verifyKey(key: string): Promise<Viewer | undefined>;
  listKeys(): Promise<ApiKeyInfo[]>;
  /** By id or name; false when no such key. */
  revokeKey(idOrName: string): Promise<boolean>;
  /** Whether any key that is not revoked exists (then every /v1 route needs one). */
  hasKeys(): Promise<boolean>;

  createJob(job: { id: string; owner: string | null; sources: string[]; options: Record<string, unknown> }): Promise<JobRecord>;
  getJob(id: string, viewer: Viewer): Promise<JobRecord | undefined>;
  /** Idempotent: recording an item again keeps its first result. Returns the job as it is after the write. */
  recordItem(jobId: string, index: number, result: JobItemResult): Promise<JobRecord>;
  jobItems(jobId: string, viewer: Viewer, page?: { offset?: number; limit?: number }): Promise<JobItem[]>;
  /** Items with no result yet (to re-enqueue after a queue loss). */
  pendingItems(jobId: string): Promise<JobItem[]>;
  cancelJob(id: string, viewer: Viewer): Promise<boolean>;

  close(): Promise<void>;
}
