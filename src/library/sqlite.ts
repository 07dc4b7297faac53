/**
 * The embedded library: one SQLite file through better-sqlite3, nothing to install or run. WAL mode (readers do
 * not block the writer), FTS5 with porter stemming over every caption of an image, foreign keys on, and a busy
 * timeout so that a server and a worker sharing the file wait for each other instead of failing. Writes run in
 * IMMEDIATE transactions: they take the write lock up front, so two processes never deadlock upgrading a read.
 *
 * better-sqlite3 is synchronous; each method does its work in one synchronous step (the thumbnail, made by
 * sharp, is the one await), so within a process every transaction is atomic without further locking.
 *
 * Search by meaning is brute force: the embeddings of the current matcher (float32 BLOBs) are kept in memory as
 * one matrix, read again when the file changed (`PRAGMA data_version` tells of other processes' commits, a
 * counter of this connection's own), and every one is compared with the query (a dot product: both are unit
 * length). 10,000 images of D = 256 take about 2 ms and 10 MB.
 * Library files made before migrations existed open as they are: see migrations/sqlite/.
 */
import type Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { asPixelInfoError, ErrorCodes, PixelInfoError } from '../errors.js';
import { checkKeyName, duplicateKeyName, hashApiKey, isWellFormedKey, newApiKey } from './keys.js';
import { loadMigrations, migrate, type Migration, type MigrationDriver } from './migrate.js';
import { clampLimit, searchWords, toFtsQuery } from './search.js';
import {
  checkEmbedding,
  checkEntry,
  checkItemIndex,
  checkNewJob,
  entryConfidence,
  imageNotFound,
  isSuccess,
  jobNotFound,
  ownerValue,
  searchText,
  seesEverything,
  tagsJson,
  unitVector,
} from './shared.js';
import { makeThumbnail } from './thumbnail.js';
import type {
  ApiKeyInfo,
  JobItem,
  JobItemResult,
  JobRecord,
  LibraryCaption,
  LibraryEntry,
  LibraryStore,
  LibraryTag,
  NewEntry,
  SearchQuery,
  Viewer,
} from './types.js';

/** How long a write waits for another process's write lock before SQLITE_BUSY, ms. */
const BUSY_TIMEOUT_MS = 10_000;
const ITEMS_PAGE_DEFAULT = 1000;
const ITEMS_PAGE_MAX = 10_000;

interface ImageRow {
  id: string;
  created: string;
  width: number;
  height: number;
  format: string;
  caption: string;
  captions_json: string;
  model: string;
  confidence: number | null;
  tags_json: string;
}

/** The embeddings of one matcher, as one matrix (row r: the image ids[r]), and the database state it was read at. */
interface EmbeddingIndex {
  model: string;
  version: string;
  dim: number;
  ids: string[];
  matrix: Float32Array;
}

interface KeyRow {
  id: string;
  name: string;
  admin: number;
  created: string;
  revoked: string | null;
}

interface JobRow {
  id: string;
  owner: string | null;
  state: JobRecord['state'];
  total: number;
  done: number;
  failed: number;
  created: string;
  finished: string | null;
  options_json: string;
}

interface ItemRow {
  idx: number;
  source: string;
  result_json: string | null;
}

/** Parameters of the visibility clause: everything, or the images/jobs of one key. */
interface Visibility {
  all: 0 | 1;
  key: string;
}

const ENTRY_COLUMNS = 'i.id, i.created, i.width, i.height, i.format, i.caption, i.captions_json, i.model, i.confidence, i.tags_json';
const VISIBLE_IMAGE = '(@all = 1 OR EXISTS (SELECT 1 FROM image_owners o WHERE o.image_id = i.id AND o.owner = @key))';
const VISIBLE_JOB = '(@all = 1 OR j.owner = @key)';
const JOB_COLUMNS = 'j.id, j.owner, j.state, j.total, j.done, j.failed, j.created, j.finished, j.options_json';

export class SqliteLibrary implements LibraryStore {
  readonly kind = 'sqlite' as const;
  private readonly sql;
  /** Writes to images by this connection (PRAGMA data_version counts only the others'). */
  private writes = 0;
  private embeddings: EmbeddingIndex | undefined;

  private constructor(
    /** The file, as given (or ':memory:'). */
    readonly path: string,
    private readonly db: Database.Database,
  ) {
    const prepare = <P extends unknown[] | object, R = unknown>(source: string) => db.prepare<P, R>(source);
    this.sql = {
      hasImage: prepare<[string], { one: 1 }>('SELECT 1 AS one FROM images WHERE id = ?'),
      hasCaptions: prepare<[string, string], { one: 1 }>('SELECT 1 AS one FROM images WHERE id = ? AND model = ?'),
      insertImage: prepare(
        `INSERT INTO images (id, created, width, height, format, caption, captions_json, tags_json, model, confidence, embedding, embedding_model, bytes, thumbnail)
         VALUES (@id, @created, @width, @height, @format, @caption, @captions_json, @tags_json, @model, @confidence, @embedding, @embedding_model, @bytes, @thumbnail)`,
      ),
      // An embedding stored before is kept when the new captioning brings none (it depends on the image alone).
      updateCaptions: prepare(
        `UPDATE images SET caption = @caption, captions_json = @captions_json, tags_json = @tags_json, model = @model, confidence = @confidence,
           embedding = coalesce(@embedding, embedding), embedding_model = CASE WHEN @embedding IS NULL THEN embedding_model ELSE @embedding_model END
         WHERE id = @id`,
      ),
      deleteImage: prepare<[string]>('DELETE FROM images WHERE id = ?'),
      ftsDelete: prepare<[string]>('DELETE FROM images_fts WHERE id = ?'),
      ftsInsert: prepare<[string, string]>('INSERT INTO images_fts (id, text) VALUES (?, ?)'),
      addOwner: prepare<[string, string]>('INSERT OR IGNORE INTO image_owners (image_id, owner) VALUES (?, ?)'),
      removeOwner: prepare<[string, string]>('DELETE FROM image_owners WHERE image_id = ? AND owner = ?'),
      ownerCount: prepare<[string], { n: number }>('SELECT count(*) AS n FROM image_owners WHERE image_id = ?'),
      get: prepare<Visibility & { id: string }, ImageRow>(`SELECT ${ENTRY_COLUMNS} FROM images i WHERE i.id = @id AND ${VISIBLE_IMAGE}`),
      recent: prepare<Visibility & { limit: number }, ImageRow>(
        `SELECT ${ENTRY_COLUMNS} FROM images i WHERE ${VISIBLE_IMAGE} ORDER BY i.created DESC, i.id LIMIT @limit`,
      ),
      search: prepare<Visibility & { match: string; limit: number }, ImageRow>(
        `SELECT ${ENTRY_COLUMNS} FROM images_fts f JOIN images i ON i.id = f.id
         WHERE images_fts MATCH @match AND ${VISIBLE_IMAGE}
         ORDER BY bm25(images_fts), i.created DESC, i.id LIMIT @limit`,
      ),
      searchUnembedded: prepare<Visibility & { match: string; limit: number; model: string }, ImageRow>(
        `SELECT ${ENTRY_COLUMNS} FROM images_fts f JOIN images i ON i.id = f.id
         WHERE images_fts MATCH @match AND ${VISIBLE_IMAGE} AND (i.embedding_model IS NULL OR i.embedding_model <> @model)
         ORDER BY bm25(images_fts), i.created DESC, i.id LIMIT @limit`,
      ),
      embeddings: prepare<[string], { id: string; embedding: Buffer }>('SELECT id, embedding FROM images WHERE embedding_model = ? ORDER BY id'),
      ownedIds: prepare<[string], { image_id: string }>('SELECT image_id FROM image_owners WHERE owner = ?'),
      countAll: prepare<[], { n: number }>('SELECT count(*) AS n FROM images'),
      countOwned: prepare<[string], { n: number }>('SELECT count(*) AS n FROM image_owners WHERE owner = ?'),
      bytesAll: prepare<[], { n: number | null }>('SELECT sum(length(bytes)) AS n FROM images'),
      bytesOwned: prepare<[string], { n: number | null }>(
        'SELECT sum(length(i.bytes)) AS n FROM image_owners o JOIN images i ON i.id = o.image_id WHERE o.owner = ?',
      ),
      bytes: prepare<Visibility & { id: string }, { bytes: Buffer; format: string }>(
        `SELECT i.bytes, i.format FROM images i WHERE i.id = @id AND ${VISIBLE_IMAGE}`,
      ),
      thumbnail: prepare<Visibility & { id: string }, { thumbnail: Buffer }>(`SELECT i.thumbnail FROM images i WHERE i.id = @id AND ${VISIBLE_IMAGE}`),

      insertKey: prepare('INSERT INTO api_keys (id, name, hash, admin, created) VALUES (@id, @name, @hash, @admin, @created)'),
      keyByHash: prepare<[string], { id: string; admin: number }>('SELECT id, admin FROM api_keys WHERE hash = ? AND revoked IS NULL'),
      listKeys: prepare<[], KeyRow>('SELECT id, name, admin, created, revoked FROM api_keys ORDER BY created, rowid'),
      revokeById: prepare<[string, string]>('UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL'),
      revokeByName: prepare<[string, string]>('UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL'),
      keyExists: prepare<[string, string], { one: 1 }>('SELECT 1 AS one FROM api_keys WHERE id = ? OR name = ? LIMIT 1'),
      hasKeys: prepare<[], { one: 1 }>('SELECT 1 AS one FROM api_keys WHERE revoked IS NULL LIMIT 1'),

      insertJob: prepare(
        `INSERT OR IGNORE INTO jobs (id, owner, state, total, created, options_json)
         VALUES (@id, @owner, 'queued', @total, @created, @options_json)`,
      ),
      insertItem: prepare<[string, number, string]>('INSERT INTO job_items (job_id, idx, source) VALUES (?, ?, ?)'),
      job: prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs j WHERE j.id = ?`),
      visibleJob: prepare<Visibility & { id: string }, JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs j WHERE j.id = @id AND ${VISIBLE_JOB}`),
      recordItem: prepare<[string, string, number]>('UPDATE job_items SET result_json = ? WHERE job_id = ? AND idx = ? AND result_json IS NULL'),
      hasItem: prepare<[string, number], { one: 1 }>('SELECT 1 AS one FROM job_items WHERE job_id = ? AND idx = ?'),
      // SET expressions all read the row as it was before the update.
      countItem: prepare<{ id: string; done: number; failed: number; now: string }>(
        `UPDATE jobs SET
           done = done + @done,
           failed = failed + @failed,
           state = CASE WHEN state = 'cancelled' THEN state WHEN done + @done + failed + @failed >= total THEN 'completed' ELSE 'running' END,
           finished = CASE WHEN state <> 'cancelled' AND done + @done + failed + @failed >= total THEN @now ELSE finished END
         WHERE id = @id`,
      ),
      items: prepare<[string, number, number], ItemRow>('SELECT idx, source, result_json FROM job_items WHERE job_id = ? ORDER BY idx LIMIT ? OFFSET ?'),
      pendingItems: prepare<[string], ItemRow>('SELECT idx, source, result_json FROM job_items WHERE job_id = ? AND result_json IS NULL ORDER BY idx'),
      cancelJob: prepare<[string, string]>("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state IN ('queued', 'running')"),
    };
  }

  /**
   * Opens (creating if needed) the library at `path` (':memory:' for a throw-away one) and brings its schema up
   * to date. A file that is not an SQLite database is INVALID_ARGUMENT; one that cannot be created, read or
   * written is IO_ERROR; both name the file.
   */
  static async open(path: string): Promise<SqliteLibrary> {
    const BetterSqlite3 = await loadBetterSqlite3();
    let db: Database.Database | undefined;
    try {
      if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
      db = new BetterSqlite3(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL'); // with WAL: commits survive a process crash; only a power cut may lose the last ones
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('foreign_keys = ON');
      await migrate(sqliteMigrationDriver(db), loadMigrations('sqlite'));
      return new SqliteLibrary(path, db);
    } catch (err) {
      db?.close();
      throw openError(path, err);
    }
  }

  async put(entry: NewEntry): Promise<{ created: boolean }> {
    checkEntry(entry);
    const owner = ownerValue(entry.owner);
    const embedding = entry.embedding ? unitVector(entry.embedding.vector) : undefined;
    const captions = {
      id: entry.id,
      caption: entry.captions[0]?.text ?? '',
      captions_json: JSON.stringify(entry.captions),
      tags_json: tagsJson(entry),
      model: entry.model,
      confidence: entryConfidence(entry),
      embedding: embedding ? Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength) : null,
      embedding_model: entry.embedding?.model ?? null,
    };
    const ftsText = searchText(entry);
    const recaption = () => {
      this.writes++;
      this.sql.updateCaptions.run(captions);
      this.sql.ftsDelete.run(entry.id);
      this.sql.ftsInsert.run(entry.id, ftsText);
      this.sql.addOwner.run(entry.id, owner);
    };
    // Known image: new captions and owner, bytes and thumbnail kept. Otherwise make the thumbnail (async, outside
    // any transaction), then insert — unless a concurrent put stored it meanwhile.
    const known = this.db
      .transaction(() => {
        if (!this.sql.hasImage.get(entry.id)) return false;
        recaption();
        return true;
      })
      .immediate();
    if (known) return { created: false };
    const thumbnail = await makeThumbnail(entry.bytes);
    return this.db
      .transaction(() => {
        if (this.sql.hasImage.get(entry.id)) {
          recaption();
          return { created: false };
        }
        this.writes++;
        this.sql.insertImage.run({
          ...captions,
          created: new Date().toISOString(),
          width: entry.width,
          height: entry.height,
          format: entry.format,
          bytes: entry.bytes,
          thumbnail,
        });
        this.sql.ftsInsert.run(entry.id, ftsText);
        this.sql.addOwner.run(entry.id, owner);
        return { created: true };
      })
      .immediate();
  }

  async hasCaptions(id: string, model: string): Promise<boolean> {
    return this.sql.hasCaptions.get(id, model) !== undefined;
  }

  async addOwner(id: string, owner: string | null): Promise<void> {
    this.db
      .transaction(() => {
        if (!this.sql.hasImage.get(id)) throw imageNotFound(id);
        this.sql.addOwner.run(id, ownerValue(owner));
      })
      .immediate();
  }

  async get(id: string, viewer: Viewer): Promise<LibraryEntry | undefined> {
    const row = this.sql.get.get({ id, ...visibility(viewer) });
    return row && toEntry(row);
  }

  async search(query: SearchQuery, viewer: Viewer): Promise<LibraryEntry[]> {
    const limit = clampLimit(query.limit);
    const { words, onlyStopWords } = searchWords(query.q);
    if (query.embedding && query.q?.trim()) return this.searchByMeaning(query.embedding, words, limit, viewer);
    if (onlyStopWords) return [];
    const rows = words.length
      ? this.sql.search.all({ match: toFtsQuery(words), limit, ...visibility(viewer) })
      : this.sql.recent.all({ limit, ...visibility(viewer) });
    return rows.map(toEntry);
  }

  /** The images of this matcher most similar to the query, then those without its embedding that match the words. */
  private searchByMeaning(query: SearchQuery['embedding'] & object, words: string[], limit: number, viewer: Viewer): LibraryEntry[] {
    checkEmbedding(query, 'the query embedding');
    const q = unitVector(query.vector);
    const index = this.embeddingIndex(query.model);
    const found: LibraryEntry[] = [];
    if (index && index.dim === q.length) {
      const owned = seesEverything(viewer) ? undefined : new Set(this.sql.ownedIds.all(viewer.keyId!).map((r) => r.image_id));
      const scored: Array<{ row: number; cosine: number }> = [];
      for (let row = 0; row < index.ids.length; row++) {
        if (owned && !owned.has(index.ids[row])) continue;
        let dot = 0;
        const base = row * index.dim;
        for (let d = 0; d < index.dim; d++) dot += index.matrix[base + d] * q[d];
        scored.push({ row, cosine: dot });
      }
      scored.sort((a, b) => b.cosine - a.cosine || (index.ids[a.row] < index.ids[b.row] ? -1 : 1));
      for (const { row, cosine } of scored) {
        if (found.length >= limit) break;
        const entry = this.sql.get.get({ id: index.ids[row], ...visibility(viewer) }); // gone meanwhile: skipped
        if (entry) found.push({ ...toEntry(entry), cosine: Math.max(-1, Math.min(1, cosine)) });
      }
    }
    if (found.length < limit && words.length) {
      const rest = this.sql.searchUnembedded.all({ match: toFtsQuery(words), limit: limit - found.length, model: query.model, ...visibility(viewer) });
      found.push(...rest.map(toEntry));
    }
    return found;
  }

  /** The embeddings of `model` as one matrix, read again only when the database changed since. */
  private embeddingIndex(model: string): EmbeddingIndex | undefined {
    const version = `${this.db.pragma('data_version', { simple: true }) as number}:${this.writes}`;
    if (this.embeddings?.model === model && this.embeddings.version === version) return this.embeddings;
    const rows = this.sql.embeddings.all(model);
    if (!rows.length) {
      this.embeddings = undefined;
      return undefined;
    }
    const dim = rows[0].embedding.length / 4;
    const kept = rows.filter((r) => r.embedding.length === dim * 4);
    const matrix = new Float32Array(kept.length * dim);
    kept.forEach((r, i) => matrix.set(new Float32Array(r.embedding.buffer.slice(r.embedding.byteOffset, r.embedding.byteOffset + r.embedding.length)), i * dim));
    this.embeddings = { model, version, dim, ids: kept.map((r) => r.id), matrix };
    return this.embeddings;
  }

  async count(viewer: Viewer): Promise<number> {
    return seesEverything(viewer) ? this.sql.countAll.get()!.n : this.sql.countOwned.get(viewer.keyId!)!.n;
  }

  async storedBytes(owner?: string | null): Promise<number> {
    return (owner === undefined ? this.sql.bytesAll.get() : this.sql.bytesOwned.get(ownerValue(owner)))?.n ?? 0;
  }

  async image(id: string, viewer: Viewer): Promise<{ bytes: Buffer; format: string } | undefined> {
    return this.sql.bytes.get({ id, ...visibility(viewer) });
  }

  async thumbnail(id: string, viewer: Viewer): Promise<Buffer | undefined> {
    return this.sql.thumbnail.get({ id, ...visibility(viewer) })?.thumbnail;
  }

  async delete(id: string, viewer: Viewer): Promise<boolean> {
    return this.db
      .transaction(() => {
        this.writes++;
        if (!seesEverything(viewer)) {
          if (this.sql.removeOwner.run(id, viewer.keyId!).changes === 0) return false;
          if (this.sql.ownerCount.get(id)!.n > 0) return true;
        }
        this.sql.ftsDelete.run(id);
        return this.sql.deleteImage.run(id).changes > 0; // owners go with it (ON DELETE CASCADE)
      })
      .immediate();
  }

  async createKey(name: string, admin: boolean): Promise<{ key: string; info: ApiKeyInfo }> {
    const checked = checkKeyName(name);
    const { key, id, hash } = newApiKey();
    const created = new Date().toISOString();
    try {
      this.sql.insertKey.run({ id, name: checked, hash, admin: admin ? 1 : 0, created });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw duplicateKeyName(checked, err);
      throw err;
    }
    return { key, info: { id, name: checked, admin, created, revoked: null } };
  }

  async verifyKey(key: string): Promise<Viewer | undefined> {
    if (typeof key !== 'string' || !isWellFormedKey(key)) return undefined;
    const row = this.sql.keyByHash.get(hashApiKey(key));
    return row && { keyId: row.id, admin: row.admin === 1 };
  }

  async listKeys(): Promise<ApiKeyInfo[]> {
    return this.sql.listKeys.all().map((r) => ({ id: r.id, name: r.name, admin: r.admin === 1, created: r.created, revoked: r.revoked }));
  }

  async revokeKey(idOrName: string): Promise<boolean> {
    const now = new Date().toISOString();
    return this.db
      .transaction(() => {
        if (this.sql.revokeById.run(now, idOrName).changes > 0) return true;
        if (this.sql.revokeByName.run(now, idOrName).changes > 0) return true;
        return this.sql.keyExists.get(idOrName, idOrName) !== undefined; // revoked before
      })
      .immediate();
  }

  async hasKeys(): Promise<boolean> {
    return this.sql.hasKeys.get() !== undefined;
  }

  async createJob(job: { id: string; owner: string | null; sources: string[]; options: Record<string, unknown> }): Promise<JobRecord> {
    checkNewJob(job);
    return this.db
      .transaction(() => {
        const inserted = this.sql.insertJob.run({
          id: job.id,
          owner: job.owner,
          total: job.sources.length,
          created: new Date().toISOString(),
          options_json: JSON.stringify(job.options ?? {}),
        });
        // The same id again (a retried submission) keeps the job as first created.
        if (inserted.changes > 0) job.sources.forEach((source, index) => this.sql.insertItem.run(job.id, index, source));
        return toJob(this.sql.job.get(job.id)!);
      })
      .immediate();
  }

  async getJob(id: string, viewer: Viewer): Promise<JobRecord | undefined> {
    const row = this.sql.visibleJob.get({ id, ...visibility(viewer) });
    return row && toJob(row);
  }

  async recordItem(jobId: string, index: number, result: JobItemResult): Promise<JobRecord> {
    checkItemIndex(jobId, index);
    const success = isSuccess(result);
    return this.db
      .transaction(() => {
        // Only the first result of an item counts; a redelivery changes nothing.
        if (this.sql.recordItem.run(JSON.stringify(result), jobId, index).changes > 0) {
          this.sql.countItem.run({ id: jobId, done: success ? 1 : 0, failed: success ? 0 : 1, now: new Date().toISOString() });
        } else if (!this.sql.hasItem.get(jobId, index)) {
          throw jobNotFound(jobId, this.sql.job.get(jobId) ? index : undefined);
        }
        return toJob(this.sql.job.get(jobId)!);
      })
      .immediate();
  }

  async jobItems(jobId: string, viewer: Viewer, page: { offset?: number; limit?: number } = {}): Promise<JobItem[]> {
    if (!this.sql.visibleJob.get({ id: jobId, ...visibility(viewer) })) return [];
    const { offset, limit } = itemsPage(page);
    return this.sql.items.all(jobId, limit, offset).map(toItem);
  }

  async pendingItems(jobId: string): Promise<JobItem[]> {
    return this.sql.pendingItems.all(jobId).map(toItem);
  }

  /** True when the job is cancelled now or was before; false when the viewer cannot see it or it has completed. */
  async cancelJob(id: string, viewer: Viewer): Promise<boolean> {
    return this.db
      .transaction(() => {
        const row = this.sql.visibleJob.get({ id, ...visibility(viewer) });
        if (!row || row.state === 'completed') return false;
        this.sql.cancelJob.run(new Date().toISOString(), id);
        return true;
      })
      .immediate();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/**
 * better-sqlite3 is an optional dependency (a native module: a prebuilt binary, else a C++ compiler), so a plain
 * library install never fails on it; it is imported when a library file is opened, with what to do when absent.
 */
async function loadBetterSqlite3(): Promise<typeof Database> {
  try {
    return (await import('better-sqlite3')).default;
  } catch (err) {
    throw new PixelInfoError(
      ErrorCodes.INTERNAL,
      `the SQLite library needs better-sqlite3, an optional dependency that is not installed here (${(err as Error).message.split('\n')[0]}): run npm install better-sqlite3, or use a postgres:// library`,
      { cause: err },
    );
  }
}

function sqliteMigrationDriver(db: Database.Database): MigrationDriver {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)');
  const applied = db.prepare<[number], { one: 1 }>('SELECT 1 AS one FROM schema_migrations WHERE version = ?');
  const record = db.prepare<[number, string, string]>('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)');
  return {
    async appliedVersions() {
      return new Set(db.prepare<[], { version: number }>('SELECT version FROM schema_migrations').all().map((r) => r.version));
    },
    async apply(migration: Migration) {
      // IMMEDIATE: another process opening the same file at the same moment waits here, then sees it applied.
      return db
        .transaction(() => {
          if (applied.get(migration.version)) return false;
          db.exec(migration.sql);
          record.run(migration.version, migration.name, new Date().toISOString());
          return true;
        })
        .immediate();
    },
  };
}

function visibility(viewer: Viewer): Visibility {
  return seesEverything(viewer) ? { all: 1, key: '' } : { all: 0, key: viewer.keyId! };
}

function itemsPage(page: { offset?: number; limit?: number }): { offset: number; limit: number } {
  const offset = Math.max(0, Math.floor(page.offset ?? 0)) || 0;
  const limit = Math.max(1, Math.min(ITEMS_PAGE_MAX, Math.floor(page.limit ?? ITEMS_PAGE_DEFAULT))) || ITEMS_PAGE_DEFAULT;
  return { offset, limit };
}

function toEntry(row: ImageRow): LibraryEntry {
  return {
    id: row.id,
    created: row.created,
    width: row.width,
    height: row.height,
    format: row.format,
    caption: row.caption,
    captions: JSON.parse(row.captions_json) as LibraryCaption[],
    model: row.model,
    confidence: row.confidence,
    ...tagsOf(row.tags_json),
  };
}

/** `tags` for an entry: left out when there are none (images stored before tags read as before). */
function tagsOf(json: string | null): { tags?: LibraryTag[] } {
  const tags = json ? (JSON.parse(json) as LibraryTag[]) : [];
  return tags.length ? { tags } : {};
}

function toJob(row: JobRow): JobRecord {
  return {
    id: row.id,
    owner: row.owner,
    state: row.state,
    total: row.total,
    done: row.done,
    failed: row.failed,
    created: row.created,
    finished: row.finished,
    options: JSON.parse(row.options_json) as Record<string, unknown>,
  };
}

function toItem(row: ItemRow): JobItem {
  return { index: row.idx, source: row.source, result: row.result_json === null ? null : (JSON.parse(row.result_json) as JobItemResult) };
}

/** An error opening the file, as INVALID_ARGUMENT (not a database) or IO_ERROR (cannot create, read or write it), naming it. */
function openError(path: string, err: unknown): PixelInfoError {
  const code = (err as { code?: unknown }).code;
  const reason = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `cannot open the library ${path}: not an SQLite database (${reason})`, { subject: path, cause: err });
  }
  if (typeof code === 'string' && code.startsWith('SQLITE_')) {
    return new PixelInfoError(ErrorCodes.IO_ERROR, `cannot open the library ${path}: ${reason}`, { subject: path, cause: err });
  }
  const wrapped = asPixelInfoError(err, path);
  if (wrapped.code === ErrorCodes.IO_ERROR) return wrapped; // names the path already
  return new PixelInfoError(wrapped.code, `cannot open the library ${path}: ${wrapped.message}`, { subject: path, cause: err });
}
