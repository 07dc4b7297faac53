/**
 * The shared library: PostgreSQL through a `pg` connection pool, for any number of API replicas and workers.
 *
 * Why plain `pg` and no query builder: two small, dialect-specific sets of SQL sit behind one interface and one
 * contract suite (test/library-contract.test.ts) keeps them equal; there is no ORM or builder API to learn.
 *
 * Search: a generated `tsvector` column over every caption (english stemming) with a GIN index. The words of a
 * query become a `to_tsquery` of quoted prefix lexemes (`'dog':* & 'run':*`, see ./search.ts), so "dog" finds
 * "dogs" as in SQLite and no input is a syntax error; whole-word matches rank first (`websearch_to_tsquery`).
 * Search by meaning: a pgvector `vector` column, ranked by cosine distance (`ORDER BY embedding <=> query`), over
 * the embeddings of the query's matcher only; then, as in SQLite, images without one that match the words.
 *
 * Concurrency: every write is one statement or one transaction, and each is safe under at-least-once delivery:
 * a job item takes its first result only (`... WHERE result IS NULL`; under READ COMMITTED a concurrent duplicate
 * waits for the row lock, then finds the result set and changes nothing), and the counters move only with that
 * update. Migrations run under an advisory lock, so replicas starting together migrate once.
 */
import pg from 'pg';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { checkKeyName, duplicateKeyName, hashApiKey, isWellFormedKey, newApiKey } from './keys.js';
import { loadMigrations, migrate, type Migration, type MigrationDriver } from './migrate.js';
import { clampLimit, searchWords, toTsQuery } from './search.js';
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
  StoredEmbedding,
  Viewer,
} from './types.js';

export interface PostgresOptions {
  /** Most connections of this process's pool (default 10). */
  maxConnections?: number;
}

/** Taken while migrating: an arbitrary constant shared by every pixel-info process. */
const MIGRATION_LOCK = 7_053_118_271;
const ITEMS_PAGE_DEFAULT = 1000;
const ITEMS_PAGE_MAX = 10_000;
const UNIQUE_VIOLATION = '23505';

interface ImageRow {
  id: string;
  created: Date;
  width: number;
  height: number;
  format: string;
  caption: string;
  captions: LibraryCaption[];
  model: string;
  confidence: number | null;
  tags: LibraryTag[] | null;
  cosine?: number;
}

interface JobRow {
  id: string;
  owner: string | null;
  state: JobRecord['state'];
  total: number;
  done: number;
  failed: number;
  created: Date;
  finished: Date | null;
  options: Record<string, unknown>;
}

interface ItemRow {
  idx: number;
  source: string;
  result: JobItemResult | null;
}

// Queries that depend on the viewer take `$1` (sees everything) and `$2` (its key) first.
const ENTRY_COLUMNS = 'i.id, i.created, i.width, i.height, i.format, i.caption, i.captions, i.model, i.confidence, i.tags';
const VISIBLE_IMAGE = '($1::boolean OR EXISTS (SELECT 1 FROM image_owners o WHERE o.image_id = i.id AND o.owner = $2))';
const VISIBLE_JOB = '($1::boolean OR j.owner = $2)';
const JOB_COLUMNS = 'j.id, j.owner, j.state, j.total, j.done, j.failed, j.created, j.finished, j.options';

export class PostgresLibrary implements LibraryStore {
  readonly kind = 'postgres' as const;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    /** The connection URL with its password masked, for logs and errors. */
    readonly target: string,
  ) {}

  /**
   * Connects to the database at `url` (postgres:// or postgresql://) and brings its schema up to date. A wrong
   * user, password or database name is INVALID_ARGUMENT, an unreachable server IO_ERROR; both name the URL with
   * its password masked.
   */
  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresLibrary> {
    const target = redactUrl(url);
    let pool: pg.Pool | undefined;
    try {
      pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, connectionTimeoutMillis: 10_000, application_name: 'pixel-info' });
      // An idle connection that breaks (the server restarted) is dropped by the pool and the next query
      // reconnects; without a listener the 'error' event would end the process.
      pool.on('error', () => {});
      await migratePostgres(pool);
      return new PostgresLibrary(pool, target);
    } catch (err) {
      await pool?.end().catch(() => {});
      throw openError(url, target, err);
    }
  }

  async put(entry: NewEntry): Promise<{ created: boolean }> {
    checkEntry(entry);
    const owner = ownerValue(entry.owner);
    const caption = entry.captions[0]?.text ?? '';
    const captions = JSON.stringify(entry.captions);
    const captionsText = searchText(entry);
    const tags = tagsJson(entry);
    const confidence = entryConfidence(entry);
    const embedding = entry.embedding ? vectorLiteral(unitVector(entry.embedding.vector)) : null;
    const embeddingModel = entry.embedding?.model ?? null;
    let thumbnail: Buffer | undefined;
    // Known image: new captions and owner (the row lock of the UPDATE orders this against a concurrent delete).
    // Otherwise insert it; a concurrent put may win the insert, or a delete remove it meanwhile: then again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const recaptioned = await this.transaction(async (db) => {
        // An embedding stored before is kept when the new captioning brings none (it depends on the image alone).
        const updated = await db.query(
          `UPDATE images SET caption = $2, captions = $3, captions_text = $4, model = $5, confidence = $6,
             embedding = coalesce($7::vector, embedding), embedding_model = CASE WHEN $7::vector IS NULL THEN embedding_model ELSE $8 END,
             tags = $9::jsonb
           WHERE id = $1`,
          [entry.id, caption, captions, captionsText, entry.model, confidence, embedding, embeddingModel, tags],
        );
        if (updated.rowCount === 0) return false;
        await db.query('INSERT INTO image_owners (image_id, owner) VALUES ($1, $2) ON CONFLICT DO NOTHING', [entry.id, owner]);
        return true;
      });
      if (recaptioned) return { created: false };
      thumbnail ??= await makeThumbnail(entry.bytes);
      const inserted = await this.transaction(async (db) => {
        const result = await db.query(
          `INSERT INTO images (id, width, height, format, caption, captions, captions_text, model, bytes, thumbnail, confidence, embedding, embedding_model, tags)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::vector, $13, $14::jsonb) ON CONFLICT (id) DO NOTHING`,
          [entry.id, entry.width, entry.height, entry.format, caption, captions, captionsText, entry.model, entry.bytes, thumbnail, confidence, embedding, embeddingModel, tags],
        );
        if (result.rowCount === 0) return false;
        await db.query('INSERT INTO image_owners (image_id, owner) VALUES ($1, $2)', [entry.id, owner]);
        return true;
      });
      if (inserted) return { created: true };
    }
    throw new PixelInfoError(ErrorCodes.INTERNAL, `image ${entry.id}: stored and removed concurrently three times; try again`, { subject: entry.id });
  }

  async hasCaptions(id: string, model: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('SELECT 1 FROM images WHERE id = $1 AND model = $2', [id, model]);
    return rowCount! > 0;
  }

  async addOwner(id: string, owner: string | null): Promise<void> {
    // FOR SHARE: a concurrent delete of the image waits for this statement, or this one sees it gone.
    const { rows } = await this.pool.query<{ n: number }>(
      `WITH image AS (SELECT id FROM images WHERE id = $1 FOR SHARE),
            added AS (INSERT INTO image_owners (image_id, owner) SELECT id, $2 FROM image ON CONFLICT DO NOTHING)
       SELECT count(*)::int AS n FROM image`,
      [id, ownerValue(owner)],
    );
    if (rows[0].n === 0) throw imageNotFound(id);
  }

  async get(id: string, viewer: Viewer): Promise<LibraryEntry | undefined> {
    const { rows } = await this.pool.query<ImageRow>(`SELECT ${ENTRY_COLUMNS} FROM images i WHERE ${VISIBLE_IMAGE} AND i.id = $3`, [
      ...visibility(viewer),
      id,
    ]);
    return rows[0] && toEntry(rows[0]);
  }

  async search(query: SearchQuery, viewer: Viewer): Promise<LibraryEntry[]> {
    const limit = clampLimit(query.limit);
    const { words, onlyStopWords } = searchWords(query.q);
    if (query.embedding && query.q?.trim()) return this.searchByMeaning(query.embedding, words, limit, viewer);
    if (onlyStopWords) return [];
    if (!words.length) {
      const { rows } = await this.pool.query<ImageRow>(
        `SELECT ${ENTRY_COLUMNS} FROM images i WHERE ${VISIBLE_IMAGE} ORDER BY i.created DESC, i.id LIMIT $3`,
        [...visibility(viewer), limit],
      );
      return rows.map(toEntry);
    }
    const { rows } = await this.pool.query<ImageRow>(
      `SELECT ${ENTRY_COLUMNS}
       FROM images i, to_tsquery('english', $3) AS prefix, websearch_to_tsquery('english', $4) AS whole
       WHERE i.search @@ prefix AND ${VISIBLE_IMAGE}
       ORDER BY ts_rank(i.search, whole) DESC, ts_rank(i.search, prefix) DESC, i.created DESC, i.id
       LIMIT $5`,
      [...visibility(viewer), toTsQuery(words), words.join(' '), limit],
    );
    return rows.map(toEntry);
  }

  /** The images of this matcher nearest to the query (cosine distance), then those without its embedding that match the words. */
  private async searchByMeaning(query: StoredEmbedding, words: string[], limit: number, viewer: Viewer): Promise<LibraryEntry[]> {
    checkEmbedding(query, 'the query embedding');
    const vector = unitVector(query.vector);
    const { rows } = await this.pool.query<ImageRow>(
      `SELECT ${ENTRY_COLUMNS}, 1 - (i.embedding <=> $3::vector) AS cosine
       FROM images i
       WHERE i.embedding_model = $4 AND vector_dims(i.embedding) = $5 AND ${VISIBLE_IMAGE}
       ORDER BY i.embedding <=> $3::vector, i.id
       LIMIT $6`,
      [...visibility(viewer), vectorLiteral(vector), query.model, vector.length, limit],
    );
    const found = rows.map(toEntry);
    if (found.length < limit && words.length) {
      const rest = await this.pool.query<ImageRow>(
        `SELECT ${ENTRY_COLUMNS}
         FROM images i, to_tsquery('english', $3) AS prefix, websearch_to_tsquery('english', $4) AS whole
         WHERE i.search @@ prefix AND ${VISIBLE_IMAGE} AND i.embedding_model IS DISTINCT FROM $5
         ORDER BY ts_rank(i.search, whole) DESC, ts_rank(i.search, prefix) DESC, i.created DESC, i.id
         LIMIT $6`,
        [...visibility(viewer), toTsQuery(words), words.join(' '), query.model, limit - found.length],
      );
      found.push(...rest.rows.map(toEntry));
    }
    return found;
  }

  async count(viewer: Viewer): Promise<number> {
    const { rows } = seesEverything(viewer)
      ? await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM images')
      : await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM image_owners WHERE owner = $1', [viewer.keyId]);
    return rows[0].n;
  }

  async storedBytes(owner?: string | null): Promise<number> {
    const { rows } =
      owner === undefined
        ? await this.pool.query<{ n: string | null }>('SELECT sum(octet_length(bytes)) AS n FROM images')
        : await this.pool.query<{ n: string | null }>(
            'SELECT sum(octet_length(i.bytes)) AS n FROM image_owners o JOIN images i ON i.id = o.image_id WHERE o.owner = $1',
            [ownerValue(owner)],
          );
    return Number(rows[0].n ?? 0);
  }

  async image(id: string, viewer: Viewer): Promise<{ bytes: Buffer; format: string } | undefined> {
    const { rows } = await this.pool.query<{ bytes: Buffer; format: string }>(`SELECT i.bytes, i.format FROM images i WHERE ${VISIBLE_IMAGE} AND i.id = $3`, [
      ...visibility(viewer),
      id,
    ]);
    return rows[0];
  }

  async thumbnail(id: string, viewer: Viewer): Promise<Buffer | undefined> {
    const { rows } = await this.pool.query<{ thumbnail: Buffer }>(`SELECT i.thumbnail FROM images i WHERE ${VISIBLE_IMAGE} AND i.id = $3`, [
      ...visibility(viewer),
      id,
    ]);
    return rows[0]?.thumbnail;
  }

  async delete(id: string, viewer: Viewer): Promise<boolean> {
    if (seesEverything(viewer)) {
      const { rowCount } = await this.pool.query('DELETE FROM images WHERE id = $1', [id]); // owners go with it (ON DELETE CASCADE)
      return rowCount! > 0;
    }
    return this.transaction(async (db) => {
      // The row lock orders this against a put or addOwner of the same image by another key.
      const image = await db.query('SELECT 1 FROM images WHERE id = $1 FOR UPDATE', [id]);
      if (image.rowCount === 0) return false;
      const removed = await db.query('DELETE FROM image_owners WHERE image_id = $1 AND owner = $2', [id, viewer.keyId]);
      if (removed.rowCount === 0) return false;
      await db.query('DELETE FROM images WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM image_owners WHERE image_id = $1)', [id]);
      return true;
    });
  }

  async createKey(name: string, admin: boolean): Promise<{ key: string; info: ApiKeyInfo }> {
    const checked = checkKeyName(name);
    const { key, id, hash } = newApiKey();
    try {
      const { rows } = await this.pool.query<{ created: Date }>('INSERT INTO api_keys (id, name, hash, admin) VALUES ($1, $2, $3, $4) RETURNING created', [
        id,
        checked,
        hash,
        admin,
      ]);
      return { key, info: { id, name: checked, admin, created: rows[0].created.toISOString(), revoked: null } };
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw duplicateKeyName(checked, err);
      throw err;
    }
  }

  async verifyKey(key: string): Promise<Viewer | undefined> {
    if (typeof key !== 'string' || !isWellFormedKey(key)) return undefined;
    const { rows } = await this.pool.query<{ id: string; admin: boolean }>('SELECT id, admin FROM api_keys WHERE hash = $1 AND revoked IS NULL', [
      hashApiKey(key),
    ]);
    return rows[0] && { keyId: rows[0].id, admin: rows[0].admin };
  }

  async listKeys(): Promise<ApiKeyInfo[]> {
    const { rows } = await this.pool.query<{ id: string; name: string; admin: boolean; created: Date; revoked: Date | null }>(
      'SELECT id, name, admin, created, revoked FROM api_keys ORDER BY created, id',
    );
    return rows.map((r) => ({ id: r.id, name: r.name, admin: r.admin, created: r.created.toISOString(), revoked: r.revoked?.toISOString() ?? null }));
  }

  async revokeKey(idOrName: string): Promise<boolean> {
    return this.transaction(async (db) => {
      if ((await db.query('UPDATE api_keys SET revoked = now() WHERE id = $1 AND revoked IS NULL', [idOrName])).rowCount! > 0) return true;
      if ((await db.query('UPDATE api_keys SET revoked = now() WHERE name = $1 AND revoked IS NULL', [idOrName])).rowCount! > 0) return true;
      return (await db.query('SELECT 1 FROM api_keys WHERE id = $1 OR name = $1 LIMIT 1', [idOrName])).rowCount! > 0; // revoked before
    });
  }

  async hasKeys(): Promise<boolean> {
    const { rowCount } = await this.pool.query('SELECT 1 FROM api_keys WHERE revoked IS NULL LIMIT 1');
    return rowCount! > 0;
  }

  async createJob(job: { id: string; owner: string | null; sources: string[]; options: Record<string, unknown> }): Promise<JobRecord> {
    checkNewJob(job);
    return this.transaction(async (db) => {
      const inserted = await db.query("INSERT INTO jobs (id, owner, state, total, options) VALUES ($1, $2, 'queued', $3, $4) ON CONFLICT (id) DO NOTHING", [
        job.id,
        job.owner,
        job.sources.length,
        JSON.stringify(job.options ?? {}),
      ]);
      // The same id again (a retried submission) keeps the job as first created.
      if (inserted.rowCount! > 0) {
        await db.query('INSERT INTO job_items (job_id, idx, source) SELECT $1, s.ord - 1, s.source FROM unnest($2::text[]) WITH ORDINALITY AS s(source, ord)', [
          job.id,
          job.sources,
        ]);
      }
      const { rows } = await db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs j WHERE j.id = $1`, [job.id]);
      return toJob(rows[0]);
    });
  }

  async getJob(id: string, viewer: Viewer): Promise<JobRecord | undefined> {
    const { rows } = await this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs j WHERE ${VISIBLE_JOB} AND j.id = $3`, [...visibility(viewer), id]);
    return rows[0] && toJob(rows[0]);
  }

  async recordItem(jobId: string, index: number, result: JobItemResult): Promise<JobRecord> {
    checkItemIndex(jobId, index);
    const success = isSuccess(result);
    return this.transaction(async (db) => {
      const recorded = await db.query('UPDATE job_items SET result = $3 WHERE job_id = $1 AND idx = $2 AND result IS NULL', [jobId, index, JSON.stringify(result)]);
      if (recorded.rowCount === 1) {
        // SET expressions all read the row as it was before the update.
        const { rows } = await db.query<JobRow>(
          `UPDATE jobs j SET
             done = done + $2,
             failed = failed + $3,
             state = CASE WHEN state = 'cancelled' THEN state WHEN done + $2 + failed + $3 >= total THEN 'completed' ELSE 'running' END,
             finished = CASE WHEN state <> 'cancelled' AND done + $2 + failed + $3 >= total THEN now() ELSE finished END
           WHERE id = $1
           RETURNING ${JOB_COLUMNS}`,
          [jobId, success ? 1 : 0, success ? 0 : 1],
        );
        return toJob(rows[0]);
      }
      // Recorded before (a redelivery): the job as it is, or NOT_FOUND for an unknown job or item.
      const { rows } = await db.query<JobRow & { has_item: boolean }>(
        `SELECT ${JOB_COLUMNS}, EXISTS (SELECT 1 FROM job_items WHERE job_id = $1 AND idx = $2) AS has_item FROM jobs j WHERE j.id = $1`,
        [jobId, index],
      );
      if (!rows[0]?.has_item) throw jobNotFound(jobId, rows[0] ? index : undefined);
      return toJob(rows[0]);
    });
  }

  async jobItems(jobId: string, viewer: Viewer, page: { offset?: number; limit?: number } = {}): Promise<JobItem[]> {
    const { offset, limit } = itemsPage(page);
    const { rows } = await this.pool.query<ItemRow>(
      `SELECT it.idx, it.source, it.result FROM job_items it JOIN jobs j ON j.id = it.job_id
       WHERE ${VISIBLE_JOB} AND it.job_id = $3 ORDER BY it.idx LIMIT $4 OFFSET $5`,
      [...visibility(viewer), jobId, limit, offset],
    );
    return rows.map(toItem);
  }

  async pendingItems(jobId: string): Promise<JobItem[]> {
    const { rows } = await this.pool.query<ItemRow>('SELECT idx, source, result FROM job_items WHERE job_id = $1 AND result IS NULL ORDER BY idx', [jobId]);
    return rows.map(toItem);
  }

  /** True when the job is cancelled now or was before; false when the viewer cannot see it or it has completed. */
  async cancelJob(id: string, viewer: Viewer): Promise<boolean> {
    const { rows } = await this.pool.query<{ state: JobRecord['state'] }>(
      `WITH cancelled AS (
         UPDATE jobs j SET state = 'cancelled', finished = now()
         WHERE ${VISIBLE_JOB} AND j.id = $3 AND j.state IN ('queued', 'running') RETURNING j.state
       )
       SELECT state FROM cancelled UNION ALL SELECT j.state FROM jobs j WHERE ${VISIBLE_JOB} AND j.id = $3 AND j.state = 'cancelled'`,
      [...visibility(viewer), id],
    );
    return rows.length > 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** Runs `work` in a transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when it throws. */
  private async transaction<T>(work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError; // the connection is unusable: the pool must not hand it out again
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/** Migrates with the advisory lock held on one connection: other processes opening at once wait, then find nothing to do. */
async function migratePostgres(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await migrate(postgresMigrationDriver(client), loadMigrations('postgres'));
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } catch (err) {
    broken = err as Error; // dropping the connection also drops the lock, whatever state it is in
    throw err;
  } finally {
    client.release(broken);
  }
}

function postgresMigrationDriver(client: pg.PoolClient): MigrationDriver {
  return {
    async appliedVersions() {
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      return new Set(rows.map((r) => r.version));
    },
    async apply(migration: Migration) {
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        await client.query('COMMIT');
        return true;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    },
  };
}

/** pgvector's text form of a vector: `[0.1,0.2,...]` (float32 values printed exactly). */
function vectorLiteral(v: Float32Array): string {
  return `[${Array.from(v).join(',')}]`;
}

/** The connection URL with its password masked (`postgres://user:***@host/db`). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/(\/\/[^/:@]*):[^@/]*@/, '$1:***@');
  }
}

function visibility(viewer: Viewer): [boolean, string] {
  return seesEverything(viewer) ? [true, ''] : [false, viewer.keyId!];
}

function itemsPage(page: { offset?: number; limit?: number }): { offset: number; limit: number } {
  const offset = Math.max(0, Math.floor(page.offset ?? 0)) || 0;
  const limit = Math.max(1, Math.min(ITEMS_PAGE_MAX, Math.floor(page.limit ?? ITEMS_PAGE_DEFAULT))) || ITEMS_PAGE_DEFAULT;
  return { offset, limit };
}

function toEntry(row: ImageRow): LibraryEntry {
  return {
    id: row.id,
    created: row.created.toISOString(),
    width: row.width,
    height: row.height,
    format: row.format,
    caption: row.caption,
    captions: row.captions,
    model: row.model,
    confidence: row.confidence,
    ...(row.cosine === undefined ? {} : { cosine: Math.max(-1, Math.min(1, Number(row.cosine))) }),
    ...(row.tags?.length ? { tags: row.tags } : {}),
  };
}

function toJob(row: JobRow): JobRecord {
  return {
    id: row.id,
    owner: row.owner,
    state: row.state,
    total: row.total,
    done: row.done,
    failed: row.failed,
    created: row.created.toISOString(),
    finished: row.finished?.toISOString() ?? null,
    options: row.options,
  };
}

function toItem(row: ItemRow): JobItem {
  return { index: row.idx, source: row.source, result: row.result };
}

/**
 * An error opening the database, naming it with the password masked: a wrong user, password or database
 * (SQLSTATE class 28, 3D000) or a malformed URL is INVALID_ARGUMENT; an unreachable server, IO_ERROR.
 */
function openError(url: string, target: string, err: unknown): PixelInfoError {
  const sqlState = (err as { code?: unknown }).code;
  const password = passwordOf(url);
  const reason = scrub(err instanceof Error ? err.message : String(err), password);
  if (err instanceof PixelInfoError) {
    // The server lacks pgvector (search by meaning needs it): say what to install.
    const hint = /extension "vector"|vector\.control/.test(reason)
      ? ' (the library needs the pgvector extension on the PostgreSQL server: scripts/setup.sh builds it, or use an image that has it, e.g. pgvector/pgvector:pg16)'
      : '';
    return new PixelInfoError(err.code, `library ${target}: ${reason}${hint}`, { subject: target, cause: err });
  }
  const wrongArgument = (typeof sqlState === 'string' && (sqlState.startsWith('28') || sqlState === '3D000')) || err instanceof TypeError;
  return new PixelInfoError(wrongArgument ? ErrorCodes.INVALID_ARGUMENT : ErrorCodes.IO_ERROR, `cannot open the library database ${target}: ${reason || String(sqlState)}`, {
    subject: target,
    // A URL parse error carries the whole input, password included: not kept.
    cause: err instanceof TypeError ? undefined : err,
  });
}

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return /\/\/[^/:@]*:([^@/]*)@/.exec(url)?.[1] ?? '';
  }
}

function scrub(message: string, secret: string): string {
  return secret ? message.split(secret).join('***') : message;
}
