/**
 * The library of captioned images: one async interface (./types.ts) with two stores, picked by where it lives.
 *
 *   openLibrary('pixel-info-library.sqlite')        SQLite file (created if missing), the embedded default
 *   openLibrary(':memory:') / 'sqlite:PATH'         SQLite, throw-away or by URL
 *   openLibrary('postgres://user:pass@host/db')     PostgreSQL (also postgresql://), shared by replicas and workers
 *
 * Either way the schema is migrated on open. Errors name the target with any password masked.
 */
import { resolve } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { PostgresLibrary, redactUrl, type PostgresOptions } from './postgres.js';
import { SqliteLibrary } from './sqlite.js';
import type { LibraryStore } from './types.js';

export * from './types.js';
export { SqliteLibrary } from './sqlite.js';
export { PostgresLibrary, redactUrl, type PostgresOptions } from './postgres.js';
export { MIME_TYPES, THUMBNAIL_SIDE } from './thumbnail.js';
export { API_KEY_PREFIX } from './keys.js';
export { matcherIdOf, modelIdOf } from './model-id.js';

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;
const SQLITE_URL = /^sqlite:/i;
const ANY_URL = /^([a-z][a-z0-9+.-]*):\/\//i;

/** Opens the library at `target` (a file path, ':memory:', a sqlite: URL, or a postgres:// URL) and migrates it. */
export async function openLibrary(target: string, options: PostgresOptions = {}): Promise<LibraryStore> {
  if (typeof target !== 'string' || !target.trim()) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'the library needs a file path or a postgres:// URL, got an empty string', { subject: 'library' });
  }
  if (POSTGRES_URL.test(target)) return PostgresLibrary.open(target, options);
  if (SQLITE_URL.test(target)) return SqliteLibrary.open(sqlitePath(target));
  const scheme = ANY_URL.exec(target)?.[1];
  if (scheme) {
    throw new PixelInfoError(
      ErrorCodes.INVALID_ARGUMENT,
      `unsupported library URL ${redactUrl(target)}: expected a file path, sqlite:PATH, or postgres://user:password@host:port/database`,
      { subject: redactUrl(target) },
    );
  }
  return SqliteLibrary.open(target);
}

/** How a target appears in logs: a URL with its password masked, a file path as an absolute path. */
export function describeLibraryTarget(target: string): string {
  if (POSTGRES_URL.test(target) || ANY_URL.test(target)) return redactUrl(target);
  const path = SQLITE_URL.test(target) ? sqlitePath(target) : target;
  return path === ':memory:' ? path : resolve(path);
}

/**
 * Where the library of a command lives, from its `--database URL` and `--library FILE` options and the
 * environment, first found: --database, --library, $PIXEL_INFO_DATABASE_URL, $PIXEL_INFO_LIBRARY,
 * ./pixel-info-library.sqlite. Both options at once is INVALID_ARGUMENT.
 */
export function libraryTarget(options: { database?: string; library?: string }, env: NodeJS.ProcessEnv = process.env): string {
  if (options.database && options.library) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, '--database and --library name two libraries; give one of them', { subject: 'database' });
  }
  return options.database || options.library || env.PIXEL_INFO_DATABASE_URL || defaultLibraryPath(env);
}

/** The embedded library's file: $PIXEL_INFO_LIBRARY, else ./pixel-info-library.sqlite. */
export function defaultLibraryPath(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.PIXEL_INFO_LIBRARY || 'pixel-info-library.sqlite');
}

/** `sqlite:PATH` or `sqlite://PATH` → PATH (so `sqlite:///var/lib/x.sqlite` is absolute); `sqlite::memory:` → ':memory:'. */
function sqlitePath(url: string): string {
  const path = url.replace(SQLITE_URL, '').replace(/^\/\//, '');
  if (!path) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${url}: a sqlite: URL needs a file path (sqlite:PATH)`, { subject: url });
  return path;
}
