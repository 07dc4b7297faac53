/**
 * Schema migrations as plain SQL files, `migrations/<dialect>/NNN_name.sql`, applied in order of NNN when a
 * store opens. Each file runs in its own transaction together with its row in `schema_migrations` (version,
 * name, when), so a failed migration leaves nothing half-done and an applied one never runs again. Each dialect
 * supplies a small driver; serialising concurrent openers is the driver's job (PostgreSQL: an advisory lock;
 * SQLite: an immediate transaction that checks the version again). A database with versions this code does
 * not know (a newer release migrated it) is used as it is: migrations only add.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  /** The file name without number and extension, e.g. "api_keys". */
  name: string;
  sql: string;
}

export interface MigrationDriver {
  /** Versions already applied (creates `schema_migrations` when missing). */
  appliedVersions(): Promise<Set<number>>;
  /** Applies one migration and records it, in one transaction; false when another process applied it first. */
  apply(migration: Migration): Promise<boolean>;
}

const FILE_NAME = /^(\d{3,})_([a-z0-9_]+)\.sql$/;
const cache = new Map<Dialect, Migration[]>();

/** The migrations of a dialect, in order (read once per process). */
export function loadMigrations(dialect: Dialect): Migration[] {
  let migrations = cache.get(dialect);
  if (migrations) return migrations;
  const dir = fileURLToPath(new URL(`./migrations/${dialect}/`, import.meta.url));
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.sql'));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.INTERNAL, `the ${dialect} migrations are missing (${dir}): ${(err as Error).message}`, { subject: dir, cause: err });
  }
  migrations = files
    .map((file) => {
      const m = FILE_NAME.exec(file);
      if (!m) throw new PixelInfoError(ErrorCodes.INTERNAL, `${join(dir, file)}: a migration file is named NNN_name.sql`, { subject: file });
      return { version: Number(m[1]), name: m[2], sql: readFileSync(join(dir, file), 'utf8') };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations![i - 1].version === m.version) {
      throw new PixelInfoError(ErrorCodes.INTERNAL, `${dir}: two migrations with version ${m.version}`, { subject: dir });
    }
  });
  cache.set(dialect, migrations);
  return migrations;
}

/** Applies the migrations the database lacks, in order; returns those this call applied. */
export async function migrate(driver: MigrationDriver, migrations: readonly Migration[]): Promise<Migration[]> {
  const applied = await driver.appliedVersions();
  const done: Migration[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.version)) continue;
    try {
      if (await driver.apply(migration)) done.push(migration);
    } catch (err) {
      const file = `${String(migration.version).padStart(3, '0')}_${migration.name}.sql`;
      throw new PixelInfoError(ErrorCodes.INTERNAL, `migration ${file} failed: ${(err as Error).message}`, { subject: file, cause: err });
    }
  }
  return done;
}
