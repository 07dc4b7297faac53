/**
 * The library of captioned images: one SQLite file (better-sqlite3), one row per distinct image (keyed by the
 * SHA-256 of its bytes), with the original bytes, a small JPEG thumbnail and the captions, plus an FTS5 index
 * over the caption text for search.
 */
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';

/** Longer side of the stored thumbnails, in pixels. */
export const THUMBNAIL_SIDE = 256;
const SEARCH_LIMIT_MAX = 100;

export interface LibraryCaption {
  text: string;
  score: number;
}

export interface LibraryEntry {
  id: string;
  /** ISO 8601, when the image was first stored. */
  created: string;
  width: number;
  height: number;
  format: string;
  /** The best caption. */
  caption: string;
  /** Every caption of the latest request, best first. */
  captions: LibraryCaption[];
}

export interface NewEntry {
  id: string;
  bytes: Buffer;
  width: number;
  height: number;
  format: string;
  captions: LibraryCaption[];
}

interface Row {
  id: string;
  created: string;
  width: number;
  height: number;
  format: string;
  caption: string;
  captions_json: string;
}

export class Library {
  private readonly db: Database.Database;
  private readonly statements;

  /** Opens (creating if needed) the library at `path`; ':memory:' for a throw-away one. */
  constructor(readonly path: string) {
    if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
    try {
      this.db = new Database(path);
    } catch (err) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `cannot open the library database ${path}: ${(err as Error).message}`, { subject: path, cause: err });
    }
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT NOT NULL,
        caption TEXT NOT NULL,
        captions_json TEXT NOT NULL,
        bytes BLOB NOT NULL,
        thumbnail BLOB NOT NULL
      );
      -- Indexes every caption of the image (best and alternatives), so a word of any of them finds it.
      CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5(id UNINDEXED, text, tokenize = 'porter unicode61');
    `);
    const cols = 'id, created, width, height, format, caption, captions_json';
    this.statements = {
      has: this.db.prepare<[string], { one: number }>('SELECT 1 AS one FROM images WHERE id = ?'),
      insert: this.db.prepare(
        'INSERT INTO images (id, created, width, height, format, caption, captions_json, bytes, thumbnail) VALUES (@id, @created, @width, @height, @format, @caption, @captions_json, @bytes, @thumbnail)',
      ),
      updateCaptions: this.db.prepare('UPDATE images SET caption = @caption, captions_json = @captions_json WHERE id = @id'),
      ftsDelete: this.db.prepare('DELETE FROM images_fts WHERE id = ?'),
      ftsInsert: this.db.prepare('INSERT INTO images_fts (id, text) VALUES (?, ?)'),
      get: this.db.prepare<[string], Row>(`SELECT ${cols} FROM images WHERE id = ?`),
      recent: this.db.prepare<[number], Row>(`SELECT ${cols} FROM images ORDER BY created DESC, id LIMIT ?`),
      search: this.db.prepare<[string, number], Row>(
        `SELECT ${cols.split(', ').map((c) => `i.${c}`).join(', ')} FROM images_fts f JOIN images i ON i.id = f.id
         WHERE images_fts MATCH ? ORDER BY bm25(images_fts), i.created DESC LIMIT ?`,
      ),
      count: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM images'),
      bytes: this.db.prepare<[string], { bytes: Buffer; format: string }>('SELECT bytes, format FROM images WHERE id = ?'),
      thumbnail: this.db.prepare<[string], { thumbnail: Buffer }>('SELECT thumbnail FROM images WHERE id = ?'),
    };
  }

  get size(): number {
    return this.statements.count.get()!.n;
  }

  has(id: string): boolean {
    return this.statements.has.get(id) !== undefined;
  }

  /**
   * Stores a captioned image. The same image again keeps its row (bytes, thumbnail, created) and takes the
   * new captions. The thumbnail is only made for a new image.
   */
  async put(entry: NewEntry): Promise<{ created: boolean }> {
    const captionFields = { id: entry.id, caption: entry.captions[0]?.text ?? '', captions_json: JSON.stringify(entry.captions) };
    const ftsText = entry.captions.map((c) => c.text).join('\n');
    if (this.has(entry.id)) {
      this.db.transaction(() => {
        this.statements.updateCaptions.run(captionFields);
        this.statements.ftsDelete.run(entry.id);
        this.statements.ftsInsert.run(entry.id, ftsText);
      })();
      return { created: false };
    }
    const thumbnail = await makeThumbnail(entry.bytes);
    let created = false;
    this.db.transaction(() => {
      if (this.has(entry.id)) return; // stored by a concurrent request while the thumbnail was made
      this.statements.insert.run({
        ...captionFields,
        created: new Date().toISOString(),
        width: entry.width,
        height: entry.height,
        format: entry.format,
        bytes: entry.bytes,
        thumbnail,
      });
      this.statements.ftsInsert.run(entry.id, ftsText);
      created = true;
    })();
    return { created };
  }

  get(id: string): LibraryEntry | undefined {
    const row = this.statements.get.get(id);
    return row && toEntry(row);
  }

  /** Images whose captions hold every word of `query` (word prefixes match: "dog" finds "dogs"); newest first when the query is empty. */
  search(query: string, limit = 24): LibraryEntry[] {
    const n = Math.max(1, Math.min(SEARCH_LIMIT_MAX, Math.floor(limit)));
    const match = toFtsQuery(query);
    const rows = match ? this.statements.search.all(match, n) : this.statements.recent.all(n);
    return rows.map(toEntry);
  }

  image(id: string): { bytes: Buffer; format: string } | undefined {
    return this.statements.bytes.get(id);
  }

  thumbnail(id: string): Buffer | undefined {
    return this.statements.thumbnail.get(id)?.thumbnail;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * User words → an FTS5 query that cannot be a syntax error: each word is a quoted prefix term, all required.
 * Quotes inside words are doubled as FTS5 wants; characters FTS5's tokenizer drops anyway are split on.
 */
export function toFtsQuery(query: string): string {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.slice(0, 16).map((w) => `"${w.replace(/"/g, '""')}"*`).join(' ');
}

async function makeThumbnail(bytes: Buffer): Promise<Buffer> {
  return sharp(bytes, { failOn: 'none', pages: 1, limitInputPixels: false })
    .rotate() // EXIF orientation
    .resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 78, mozjpeg: true })
    .toBuffer();
}

function toEntry(row: Row): LibraryEntry {
  return {
    id: row.id,
    created: row.created,
    width: row.width,
    height: row.height,
    format: row.format,
    caption: row.caption,
    captions: JSON.parse(row.captions_json) as LibraryCaption[],
  };
}

export const MIME_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  tiff: 'image/tiff',
  avif: 'image/avif',
};
