/**
 * `pixel-info keys`: the API keys of a library (the server's `/v1` routes need one once any exists).
 *
 *   keys create --name NAME [--admin] [--json]   prints the new key, once: only its hash is stored
 *   keys list [--json]                           every key, revoked ones too (never the keys themselves)
 *   keys revoke <id|name> [--json]               the key stops working at once, on every server of the library
 *
 * Each takes the library as `serve` does: --database URL or --library FILE, else $PIXEL_INFO_DATABASE_URL,
 * $PIXEL_INFO_LIBRARY, ./pixel-info-library.sqlite. `create` prints only the key on stdout (so that
 * `KEY=$(pixel-info keys create --name ci)` works) and what was created on stderr.
 */
import type { Command } from 'commander';
import { ErrorCodes, PixelInfoError } from '../../errors.js';
import { describeLibraryTarget, libraryTarget, openLibrary, type ApiKeyInfo, type LibraryStore } from '../../library/index.js';
import { isLoopbackHost } from '../../server/auth.js';

interface LibraryFlags {
  library?: string;
  database?: string;
}

interface CreateFlags extends LibraryFlags {
  name: string;
  admin: boolean;
  json?: boolean;
}

interface OutputFlags extends LibraryFlags {
  json?: boolean;
}

/** What `keys create --json` prints. */
export interface CreatedKeyJson {
  id: string;
  name: string;
  admin: boolean;
  /** The plain key, shown this once. */
  key: string;
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys: once one exists, every /v1 route of the server needs one');

  withLibrary(keys.command('create'))
    .description('create an API key and print it (shown only this once: only its hash is stored)')
    .requiredOption('--name <name>', 'what the key is for, unique (1-64 characters), e.g. the client or person using it')
    .option('--admin', 'an admin key: sees and deletes every image, not only its own', false)
    .option('--json', 'print {"id","name","admin","key"}')
    .action(async (opts: CreateFlags) => {
      await withStore(opts, async (store, where) => {
        const { key, info } = await store.createKey(opts.name, opts.admin);
        if (opts.json) {
          const created: CreatedKeyJson = { id: info.id, name: info.name, admin: info.admin, key };
          console.log(JSON.stringify(created));
          return;
        }
        console.log(key);
        console.error(`created ${info.admin ? 'admin ' : ''}key ${info.id} "${info.name}" in ${where}; copy it now: it is not shown again`);
      });
    });

  withLibrary(keys.command('list'))
    .description('list the API keys (id, name, admin, created, revoked); never the keys themselves')
    .option('--json', 'print a JSON array of {"id","name","admin","created","revoked"}')
    .action(async (opts: OutputFlags) => {
      await withStore(opts, async (store) => {
        const all = await store.listKeys();
        if (opts.json) console.log(JSON.stringify(all));
        else console.log(keyTable(all));
      });
    });

  withLibrary(keys.command('revoke'))
    .description('revoke an API key by id or name: requests with it get 401 from then on')
    .argument('<id|name>', 'the key id (key_...) or its name')
    .option('--json', 'print the revoked key as {"id","name","admin","created","revoked"}')
    .action(async (idOrName: string, opts: OutputFlags) => {
      await withStore(opts, async (store) => {
        if (!(await store.revokeKey(idOrName))) {
          throw new PixelInfoError(ErrorCodes.NOT_FOUND, `no API key with id or name "${idOrName}" (see pixel-info keys list)`, { subject: idOrName });
        }
        const all = await store.listKeys();
        const info = all.find((k) => k.id === idOrName) ?? all.find((k) => k.name === idOrName);
        if (opts.json) console.log(JSON.stringify(info));
        else console.log(`revoked ${info ? `${info.id} "${info.name}"` : idOrName}`);
      });
    });
}

/**
 * `serve` on an address other machines can reach, with no API key in its library, would show every stored image
 * to anyone: refused (INVALID_ARGUMENT, exit 2) unless `--no-auth` says that is meant.
 */
export async function refuseOpenServer(host: string, target: string): Promise<void> {
  if (isLoopbackHost(host)) return;
  const store = await openLibrary(target);
  try {
    if (await store.hasKeys()) return;
  } finally {
    await store.close();
  }
  throw new PixelInfoError(
    ErrorCodes.INVALID_ARGUMENT,
    `refusing to serve on ${host} without API keys: anyone who can reach it could read and delete every stored image. ` +
      `Create a key first (pixel-info keys create --name NAME, with the same --library or --database), ` +
      `or pass --no-auth to serve without keys anyway`,
    { subject: 'host' },
  );
}

function withLibrary(command: Command): Command {
  return command
    .option('--library <path>', 'SQLite file of the library (default $PIXEL_INFO_LIBRARY, else ./pixel-info-library.sqlite)')
    .option('--database <url>', 'PostgreSQL library, postgres://user:password@host:port/db (default $PIXEL_INFO_DATABASE_URL)');
}

/** Opens the library named by the flags (as `serve` does), runs `work`, closes it. */
async function withStore(flags: LibraryFlags, work: (store: LibraryStore, where: string) => Promise<void>): Promise<void> {
  const target = libraryTarget(flags);
  const store = await openLibrary(target);
  try {
    await work(store, describeLibraryTarget(target));
  } finally {
    await store.close();
  }
}

/** The keys as an aligned text table, or a hint when there are none. */
function keyTable(keys: ApiKeyInfo[]): string {
  if (keys.length === 0) return 'no API keys: the server needs none (create one with pixel-info keys create --name NAME)';
  const rows = [
    ['ID', 'NAME', 'ADMIN', 'CREATED', 'REVOKED'],
    ...keys.map((k) => [k.id, k.name, k.admin ? 'yes' : 'no', k.created, k.revoked ?? '-']),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}
