/**
 * A throw-away PostgreSQL server for tests: a fresh cluster in a temporary folder, listening on a free loopback
 * port (and a Unix socket in that folder), with durability off for speed; `stop()` stops it at once and removes
 * the folder, and so does the exit of the test process if a test forgot. PostgreSQL refuses to run as root, so
 * as root the cluster is made and run by the `postgres` user (`runuser -u postgres --`).
 *
 *   const pg = await postgresFor(t);            // in a test or a describe's before: skips when not installed
 *   if (!pg) return;
 *   const url = await pg.createDatabase();       // an empty database of its own
 *   const url = await pg.createSchema();         // or, ten times faster: an empty schema, used through search_path
 *
 * The binaries are looked for in $PIXEL_INFO_PG_BIN, then /usr/lib/postgresql/<newest>/bin, then on PATH. Tests
 * skip only when none are found, or when the pgvector extension the library needs is not installed for them
 * (scripts/setup.sh builds it); any other failure to start is an error, with the server's log.
 *
 * pgvector is created once in the default database's `public` schema, and a schema's search_path is
 * `NAME, public`: an extension exists once per database, and its type and operators must be visible from every
 * test's schema (the library's own `CREATE EXTENSION IF NOT EXISTS vector` then finds it there).
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface TestPostgres {
  /** The server's default database, as the superuser `pixel`: postgres://pixel@127.0.0.1:PORT/postgres. */
  url: string;
  port: number;
  /** The temporary folder: the cluster (data/), its log (postgres.log) and the Unix socket. */
  dir: string;
  /** Creates an empty database (default name: a fresh db_N) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /**
   * Creates an empty schema in the default database (default name: a fresh s_N) and returns a URL whose
   * connections work in it (`?options=-c search_path=NAME`): isolation for one test in milliseconds, where a
   * database takes a few hundred.
   */
  createSchema(name?: string): Promise<string>;
  /** Stops the server immediately and removes its folder; safe to call twice. */
  stop(): Promise<void>;
}

/** The folder holding initdb and pg_ctl, or undefined when PostgreSQL is not installed. */
export const POSTGRES_BIN: string | undefined = findBinaries();

/** Why PostgreSQL tests skip here, or false when they run. */
export const POSTGRES_SKIP: string | false = !POSTGRES_BIN
  ? 'PostgreSQL is not installed (no initdb/pg_ctl in $PIXEL_INFO_PG_BIN, /usr/lib/postgresql/*/bin or PATH)'
  : !hasPgvector(POSTGRES_BIN)
    ? `the pgvector extension is not installed for the PostgreSQL in ${POSTGRES_BIN} (run scripts/setup.sh)`
    : false;

const USER = 'pixel';
let databases = 0;
let schemas = 0;

/** Starts a PostgreSQL server for the calling test and stops it after; undefined (and the test skipped) when PostgreSQL is absent. */
export async function postgresFor(t: { skip(message?: string): void; after(fn: () => unknown): void }): Promise<TestPostgres | undefined> {
  if (POSTGRES_SKIP) {
    t.skip(POSTGRES_SKIP);
    return undefined;
  }
  const server = await startPostgres();
  t.after(() => server.stop());
  return server;
}

export async function startPostgres(): Promise<TestPostgres> {
  if (!POSTGRES_BIN) throw new Error(POSTGRES_SKIP as string);
  const owner = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'px-pg-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'postgres.log');
  const pgCtl = join(POSTGRES_BIN, 'pg_ctl');
  const asServerUser = (bin: string, args: string[]) => (owner ? run('runuser', ['-u', 'postgres', '--', bin, ...args]) : run(bin, args));

  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', stopNow);
    const args = ['-D', data, 'stop', '-m', 'immediate', '-w'];
    if (existsSync(join(data, 'postmaster.pid'))) spawnSync(owner ? 'runuser' : pgCtl, owner ? ['-u', 'postgres', '--', pgCtl, ...args] : args, { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopNow);

  try {
    await asServerUser(join(POSTGRES_BIN, 'initdb'), ['-D', data, '-U', USER, '--auth=trust', '--encoding=UTF8', '--no-sync']);
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
      try {
        await asServerUser(pgCtl, ['-D', data, '-l', log, '-w', '-t', '60', '-o', options, 'start']);
        break;
      } catch (err) {
        if (attempt === 3) throw err; // the port may have been taken between probing and binding: another one
      }
    }
    const url = `postgres://${USER}@127.0.0.1:${port}/postgres`;
    const admin = async (sql: string) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(sql);
      } finally {
        await client.end();
      }
    };
    await admin('CREATE EXTENSION IF NOT EXISTS vector SCHEMA public');
    return {
      url,
      port,
      dir,
      async createDatabase(name = `db_${++databases}`) {
        await admin(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
        return `postgres://${USER}@127.0.0.1:${port}/${encodeURIComponent(name)}`;
      },
      async createSchema(name = `s_${++schemas}`) {
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`a schema name is lower-case letters, digits and _, got ${JSON.stringify(name)}`);
        await admin(`CREATE SCHEMA ${name}`);
        return `${url}?options=${encodeURIComponent(`-c search_path=${name},public`)}`;
      },
      async stop() {
        stopNow();
      },
    };
  } catch (err) {
    const serverLog = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
    const output = [(err as { stderr?: string }).stderr, serverLog].filter(Boolean).join('\n');
    stopNow();
    throw new Error(`could not start PostgreSQL in ${dir}: ${(err as Error).message}${output ? `\n${output}` : ''}`, { cause: err });
  }
}

/** As root, the `postgres` account that runs the server; undefined when not root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const uid = id('-u');
  const gid = id('-g');
  if (uid.status !== 0 || gid.status !== 0) throw new Error('running as root, PostgreSQL needs the "postgres" user to run the server, and there is none');
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function findBinaries(): string | undefined {
  const has = (dir: string) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'));
  const fromEnv = process.env.PIXEL_INFO_PG_BIN;
  if (fromEnv) return has(fromEnv) ? fromEnv : undefined;
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (has(join(debian, v, 'bin'))) return join(debian, v, 'bin');
  }
  return (process.env.PATH ?? '').split(delimiter).find((dir) => dir && has(dir));
}

/** Whether pgvector's control file is in the share folder of the PostgreSQL whose binaries are in `bin`. */
function hasPgvector(bin: string): boolean {
  const pgConfig = join(bin, 'pg_config');
  const share = existsSync(pgConfig) ? spawnSync(pgConfig, ['--sharedir'], { encoding: 'utf8' }).stdout?.trim() : undefined;
  const candidates = [share, join(bin, '..', '..', '..', '..', 'share', 'postgresql', bin.split('/').at(-2) ?? '')].filter(Boolean) as string[];
  return candidates.some((dir) => existsSync(join(dir, 'extension', 'vector.control')));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
