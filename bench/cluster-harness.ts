/**
 * A local cluster of the distributed mode on loopback, shared by test/cluster.test.ts and bench/cluster.ts:
 * Redis (AOF, `appendfsync always`, `noeviction`) and PostgreSQL from the test helpers (free ports, temporary
 * folders), `pixel-info serve --redis --database` replicas and `pixel-info worker` processes, each a real child
 * process stopped by its PID; and the failover scenario of docs/deploy.md:
 *
 *   300 Flickr8k inputs (the test split's first 295 images and 5 broken files) are submitted to replica A's
 *   POST /v1/jobs; one worker and replica A are SIGKILLed mid-job; Redis is SIGKILLed and started again on
 *   the same AOF folder mid-job; replica B is polled throughout (GET /healthz, GET /v1/jobs/:id). The report
 *   says how the job ended, what PostgreSQL holds, how the captions compare with the embedded mode's
 *   (Captioner.caption in this process on the same files) and how replica B answered.
 *
 * Every child process is stopped by PID when the cluster stops, and SIGKILLed if this process exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync, openSync, readSync, closeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import sharp from 'sharp';
import { loadDataset } from '../src/data/datasets/index.js';
import { ErrorCodes, type ErrorCode } from '../src/errors.js';
import { Captioner, isCaptionFailure } from '../src/pipeline/captioner.js';
import { ITEMS_QUEUE, QUEUE_PREFIX } from '../src/queue/definitions.js';
import { POSTGRES_SKIP, startPostgres, type TestPostgres } from '../test/helpers/postgres.js';
import { freePort, haveRedisServer, startRedis, type RedisServer } from '../test/helpers/redis.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const BIN = join(ROOT, 'bin', 'pixel-info.js');
export const DATA_DIR = resolve(process.env.PIXEL_INFO_DATA_DIR ?? '../shared/datasets');
export const FLICKR8K_IMAGES = join(DATA_DIR, 'flickr8k', 'images');

const log0 = (..._: unknown[]) => {};
export type Log = (message: string) => void;

/** Why the cluster cannot run here (a missing binary or the data), or false when it can. */
export async function clusterSkipReason(): Promise<string | false> {
  if (!(await haveRedisServer())) return 'redis-server is not installed (scripts/setup.sh installs it)';
  if (POSTGRES_SKIP) return POSTGRES_SKIP;
  if (!existsSync(FLICKR8K_IMAGES) || !existsSync(join(DATA_DIR, 'flickr8k', 'dataset_flickr8k.json'))) {
    return `no Flickr8k in ${join(DATA_DIR, 'flickr8k')} (set PIXEL_INFO_DATA_DIR)`;
  }
  return false;
}

/** Images of a Flickr8k split (Karpathy's, sorted by name), `count` of them from `offset`. */
export async function flickr8kImages(split: 'train' | 'val' | 'test', count: number, offset = 0): Promise<string[]> {
  const dataset = await loadDataset('flickr8k', { dataDir: DATA_DIR });
  const files = dataset.images.filter((i) => i.split === split).slice(offset, offset + count).map((i) => i.path);
  if (files.length < count) throw new Error(`the Flickr8k ${split} split has ${files.length} images from ${offset}, ${count} needed`);
  return files;
}

export interface BrokenFile {
  path: string;
  /** The per-image error code the job must end with for it. */
  code: ErrorCode;
}

/** Five broken inputs, one per error code: empty, text, a truncated JPEG, an SVG, a decompression bomb. */
export async function writeBrokenFiles(dir: string, photo: string): Promise<BrokenFile[]> {
  const jpeg = readFileSync(photo);
  const png = Buffer.from(await sharp({ create: { width: 8, height: 8, channels: 3, background: '#c04020' } }).png().toBuffer());
  // IHDR claims 30000 x 30000 (with a valid CRC): refused from the header, never decoded.
  png.writeUInt32BE(30000, 16);
  png.writeUInt32BE(30000, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  const files: Array<[string, string | Buffer, ErrorCode]> = [
    ['empty.jpg', Buffer.alloc(0), ErrorCodes.FILE_EMPTY],
    ['notes.jpg', 'these are notes, not a photo\n', ErrorCodes.NOT_AN_IMAGE],
    ['truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), ErrorCodes.IMAGE_TRUNCATED],
    ['drawing.svg', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', ErrorCodes.UNSUPPORTED_FORMAT],
    ['bomb.png', png, ErrorCodes.IMAGE_TOO_LARGE],
  ];
  return files.map(([name, bytes, code]) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return { path, code };
  });
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

// ------------------------------------------------------------------------------------------ child processes

/** Every child started here, SIGKILLed if this process exits without stopping them. */
const live = new Set<ChildProcess>();
const redisServers = new Set<RedisServer>();
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const redis of redisServers) if (redis.pid) process.kill(redis.pid, 'SIGKILL');
});

export type LogLine = Record<string, unknown> & { msg?: string };

/** A `pixel-info` child process: its JSON log lines (stdout), the tail of stderr, its exit. */
export class Service {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderr = '';
  private readonly child: ChildProcess;
  /** Highest RSS seen by `sampleRss`, MiB. */
  peakRssMb = 0;

  constructor(
    readonly role: string,
    args: string[],
  ) {
    this.child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    let buffered = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const part of parts) {
        if (!part.trim()) continue;
        try {
          this.lines.push(JSON.parse(part) as LogLine);
        } catch {
          this.lines.push({ msg: part });
        }
      }
    });
    this.child.stderr!.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((done) =>
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        done({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last log lines and stderr, for error messages. */
  get tail(): string {
    return `${this.role} (pid ${this.pid}): ${this.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`;
  }

  /** Resolves with the first log line whose msg matches (at most `ms`). */
  async waitFor(msg: string | RegExp, ms = 90_000): Promise<LogLine> {
    const deadline = Date.now() + ms;
    const match = (l: LogLine) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg ?? '')));
    for (;;) {
      const line = this.lines.find(match);
      if (line) return line;
      if (!this.running) throw new Error(`${this.role} exited before logging "${msg}": ${this.tail}`);
      if (Date.now() > deadline) throw new Error(`${this.role} did not log "${msg}" within ${ms} ms: ${this.tail}`);
      await sleep(50);
    }
  }

  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, signal);
  }

  /** SIGTERM (graceful), SIGKILL after `graceMs`; resolves with how it exited. */
  async stop(graceMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const how = await this.exited;
    clearTimeout(timer);
    return how;
  }

  /** Reads VmRSS now (MiB), keeping the peak; undefined once exited. */
  sampleRss(): number | undefined {
    const rss = rssMb(this.pid);
    if (rss !== undefined) this.peakRssMb = Math.max(this.peakRssMb, rss);
    return rss;
  }
}

/** Runs a `pixel-info` command to its end (at most `ms`): exit code, stdout, stderr. */
export async function runCli(args: string[], ms = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  clearTimeout(timer);
  live.delete(child);
  return { code, stdout, stderr };
}

/** VmRSS of a process, MiB (undefined when it is gone). */
export function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) of a process and of the children it has reaped, from /proc. */
export function cpuSeconds(pid: number, withReaped = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11..14]: utime, stime, cutime, cstime (clock ticks; 100 a second on Linux)
    const ticks = Number(fields[11]) + Number(fields[12]) + (withReaped ? Number(fields[13]) + Number(fields[14]) : 0);
    return ticks / 100;
  } catch {
    return 0;
  }
}

/** The processes whose parent is `pid`. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Proportional set size (MiB) of a process tree: shared memory counted once, as the machine sees it. */
export function treePssMb(pid: number): number {
  let kb = 0;
  for (const p of [pid, ...childPids(pid)]) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone meanwhile
    }
  }
  return Math.round(kb / 1024);
}

// ------------------------------------------------------------------------------------------ the cluster

export interface ReplicaOptions {
  /** Caption POST /v1/captions on the worker pool instead of in the replica (no model in the replica). */
  remoteCaptioning?: boolean;
}

/** A `pixel-info serve --redis --database` replica on 127.0.0.1. */
export class Replica extends Service {
  constructor(
    readonly name: string,
    readonly port: number,
    readonly key: string,
    args: string[],
  ) {
    super(`replica ${name}`, args);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A request with the cluster's API key (10 s at most). */
  request(path: string, init: RequestInit = {}, ms = 10_000): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.key}`);
    return fetch(`${this.url}${path}`, { ...init, headers, signal: AbortSignal.timeout(ms) });
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.request(path, init);
    const body = await response.text();
    if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${path} on ${this.role}: ${response.status} ${body}`);
    return JSON.parse(body) as T;
  }

  /** Waits until GET /readyz answers 200. */
  async ready(ms = 90_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const ok = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      if (!this.running) throw new Error(`${this.role} exited before it was ready: ${this.tail}`);
      if (Date.now() > deadline) throw new Error(`${this.role} not ready within ${ms} ms: ${this.tail}`);
      await sleep(100);
    }
  }
}

export interface WorkerOptions {
  threads?: number;
  lockMs?: number;
  concurrency?: number;
  batchSize?: number;
  /** Serve Prometheus metrics on a free port (its URL is then `metricsUrl`). */
  metrics?: boolean;
  /** Another library than the cluster's (a fresh database per benchmark run). */
  database?: string;
}

export class WorkerService extends Service {
  /** `pixel-info-worker-<pid>`: the name BullMQ records on the inputs it holds. */
  get queueName(): string {
    return `pixel-info-worker-${this.pid}`;
  }

  /** The metrics endpoint, once the worker logged it (with `metrics: true`). */
  get metricsUrl(): string | undefined {
    const line = this.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('metrics on '));
    return line ? `http://127.0.0.1:${line.port as number}/metrics` : undefined;
  }
}

export interface ClusterOptions {
  log?: Log;
}

/** Redis (AOF) + PostgreSQL + one admin API key; replicas and workers are added with startReplica / startWorker. */
export class Cluster {
  readonly replicas: Replica[] = [];
  readonly workers: WorkerService[] = [];
  private constructor(
    readonly dir: string,
    readonly redis: RedisServer,
    readonly postgres: TestPostgres,
    /** The cluster's library: postgres://…/pixel */
    readonly database: string,
    /** An admin API key of that library (local paths in POST /v1/jobs need an admin key). */
    readonly key: string,
    private readonly log: Log,
  ) {}

  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    const log = options.log ?? log0;
    const dir = mkdtempSync(join(tmpdir(), 'px-cluster-'));
    let redis: RedisServer | undefined;
    let postgres: TestPostgres | undefined;
    try {
      [redis, postgres] = await Promise.all([startRedis({ appendOnly: true }), startPostgres()]);
      redisServers.add(redis);
      await ensureNoEviction(redis.url);
      const database = await postgres.createDatabase('pixel');
      const created = await runCli(['keys', 'create', '--name', 'cluster-admin', '--admin', '--json', '--database', database]);
      if (created.code !== 0) throw new Error(`pixel-info keys create failed (${created.code}): ${created.stderr}`);
      const { key } = JSON.parse(created.stdout) as { key: string };
      log(`redis ${redis.url} (AOF, fsync always, noeviction), postgres ${database}, admin key created`);
      return new Cluster(dir, redis, postgres, database, key, log);
    } catch (err) {
      if (redis) {
        redisServers.delete(redis);
        await redis.destroy();
      }
      await postgres?.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Starts a replica on a free port; resolves once it answers /readyz. */
  async startReplica(name: string, options: ReplicaOptions = {}): Promise<Replica> {
    const port = await freePort();
    const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--redis', this.redis.url, '--database', this.database, '--threads', '1', '--log-level', 'warn'];
    if (options.remoteCaptioning) args.push('--remote-captioning');
    const replica = new Replica(name, port, this.key, args);
    this.replicas.push(replica);
    await replica.ready();
    this.log(`replica ${name} on ${replica.url} (pid ${replica.pid}${options.remoteCaptioning ? ', --remote-captioning' : ''})`);
    return replica;
  }

  /** Starts a worker; resolves once it is waiting for work. */
  async startWorker(options: WorkerOptions = {}): Promise<WorkerService> {
    const args = ['worker', '--redis', this.redis.url, '--database', options.database ?? this.database, '--threads', String(options.threads ?? 1)];
    if (options.lockMs !== undefined) args.push('--lock-ms', String(options.lockMs));
    if (options.concurrency !== undefined) args.push('--concurrency', String(options.concurrency));
    if (options.batchSize !== undefined) args.push('--batch-size', String(options.batchSize));
    if (options.metrics) args.push('--metrics-port', '0');
    const worker = new WorkerService(`worker ${this.workers.length + 1}`, args);
    this.workers.push(worker);
    await worker.waitFor('ready; waiting for work');
    this.log(`${worker.role} ready (pid ${worker.pid})`);
    return worker;
  }

  /** Samples the RSS of every running process (peaks are kept per process). */
  sampleRss(): void {
    for (const s of [...this.replicas, ...this.workers]) s.sampleRss();
  }

  /** Stops every process (SIGTERM, then SIGKILL), Redis and PostgreSQL, and removes the folders. */
  async stop(): Promise<void> {
    await Promise.all([...this.replicas, ...this.workers].map((s) => s.stop()));
    redisServers.delete(this.redis);
    await this.redis.destroy();
    await this.postgres.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Sets (and checks) the eviction policy a queue needs: never drop a key to make room. */
async function ensureNoEviction(url: string): Promise<void> {
  await withRedis(url, async (redis) => {
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
  });
}

export async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => {});
  await redis.connect();
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** appendonly, appendfsync and maxmemory-policy as the running Redis has them. */
export async function redisDurability(url: string): Promise<{ appendonly: string; appendfsync: string; maxmemoryPolicy: string }> {
  return withRedis(url, async (redis) => {
    const get = async (name: string) => ((await redis.config('GET', name)) as string[])[1];
    return { appendonly: await get('appendonly'), appendfsync: await get('appendfsync'), maxmemoryPolicy: await get('maxmemory-policy') };
  });
}

/** Redis's own counters: commands (top level, and every command run inside Lua scripts), its CPU seconds, memory. */
export interface RedisCounters {
  /** total_commands_processed. */
  commands: number;
  /** Sum of INFO commandstats calls (includes the redis.call()s inside BullMQ's Lua scripts). */
  commandCalls: number;
  /** EVALSHA/EVAL calls: BullMQ's scripts. */
  scripts: number;
  cpuSeconds: number;
  usedMemoryMb: number;
  /** used_memory: what the data takes. */
  usedMemoryBytes: number;
  connectedClients: number;
}

export async function redisCounters(url: string): Promise<RedisCounters> {
  return withRedis(url, async (redis) => {
    const stats = await redis.info('stats');
    const commandstats = await redis.info('commandstats');
    const cpu = await redis.info('cpu');
    const memory = await redis.info('memory');
    const clients = await redis.info('clients');
    const field = (text: string, name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
    let commandCalls = 0;
    let scripts = 0;
    for (const m of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      commandCalls += Number(m[2]);
      if (/^eval/.test(m[1])) scripts += Number(m[2]);
    }
    return {
      commands: field(stats, 'total_commands_processed'),
      commandCalls,
      scripts,
      cpuSeconds: field(cpu, 'used_cpu_sys') + field(cpu, 'used_cpu_user'),
      usedMemoryMb: Math.round(field(memory, 'used_memory_rss') / 1024 / 1024),
      usedMemoryBytes: field(memory, 'used_memory'),
      connectedClients: field(clients, 'connected_clients') - 1, // not this one
    };
  });
}

/** Waiting/active/delayed/failed inputs in the items queue, and which workers hold the active ones. */
export async function queueState(url: string): Promise<{ waiting: number; active: number; delayed: number; failed: number; holders: Record<string, number> }> {
  return withRedis(url, async (redis) => {
    const queue = new Queue(ITEMS_QUEUE, { connection: redis, prefix: QUEUE_PREFIX });
    queue.on('error', () => {});
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
    const holders: Record<string, number> = {};
    for (const job of await queue.getJobs(['active'])) {
      const by = job?.processedBy ?? '?';
      holders[by] = (holders[by] ?? 0) + 1;
    }
    await queue.close().catch(() => {});
    return { waiting: counts.waiting ?? 0, active: counts.active ?? 0, delayed: counts.delayed ?? 0, failed: counts.failed ?? 0, holders };
  });
}

/** One query on `database` (a fresh connection). */
export async function sql<T extends pg.QueryResultRow>(database: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: database });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** The PostgreSQL server's processes: the postmaster (from postmaster.pid) and its children. */
export function postgresPid(postgres: TestPostgres): number {
  return Number(readFileSync(join(postgres.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** CPU seconds of the PostgreSQL server: the postmaster, its live backends, and the ones that exited. */
export function postgresCpuSeconds(postgres: TestPostgres): number {
  const pid = postgresPid(postgres);
  return cpuSeconds(pid, true) + childPids(pid).reduce((sum, p) => sum + cpuSeconds(p), 0);
}

/** Bytes in the server log now (to count the statements logged from here on with `statementsSince`). */
export function postgresLogOffset(postgres: TestPostgres): number {
  return statSync(join(postgres.dir, 'postgres.log')).size;
}

/** Statements logged (log_statement = all) since `offset`: simple-protocol statements and extended-protocol executes. */
export function statementsSince(postgres: TestPostgres, offset: number): { statements: number; transactions: number } {
  const file = join(postgres.dir, 'postgres.log');
  const size = statSync(file).size;
  const buffer = Buffer.alloc(Math.max(0, size - offset));
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, offset);
  } finally {
    closeSync(fd);
  }
  let statements = 0;
  let transactions = 0;
  let inTransaction = false;
  for (const line of buffer.toString('utf8').split('\n')) {
    const m = /LOG:\s+(?:statement|execute [^:]*):\s*(.*)$/.exec(line);
    if (!m) continue;
    statements++;
    const word = m[1].trim().split(/\s+/)[0]?.toUpperCase();
    if (word === 'BEGIN') inTransaction = true;
    else if (word === 'COMMIT' || word === 'ROLLBACK') {
      inTransaction = false;
      transactions++;
    } else if (!inTransaction) transactions++; // autocommit: one statement, one transaction
  }
  return { statements, transactions };
}

/**
 * A URL of database `name` as a role whose every statement is logged (log_statement = all for that role in that
 * database only), so that `statementsSince` counts the statements of the processes given it, and no others.
 */
export async function loggedDatabaseUrl(postgres: TestPostgres, name: string): Promise<string> {
  const role = 'px_logged';
  const [exists] = await sql<{ n: number }>(postgres.url, 'SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [role]);
  if (!exists.n) await sql(postgres.url, `CREATE ROLE ${role} LOGIN SUPERUSER`);
  await sql(postgres.url, `ALTER ROLE ${role} IN DATABASE ${pg.escapeIdentifier(name)} SET log_statement = 'all'`);
  return `postgres://${role}@127.0.0.1:${postgres.port}/${encodeURIComponent(name)}`;
}

// ------------------------------------------------------------------------------------------ the embedded reference

export type EmbeddedOutcome = { caption: string; score: number } | { code: string };

/** Captioner.caption in this process (the embedded mode: shipped model, default decoding) on `files`. */
export async function embeddedCaptions(files: string[], threads = cpus().length): Promise<Map<string, EmbeddedOutcome>> {
  const captioner = await Captioner.load({ threads });
  try {
    const outcomes = await captioner.caption(files);
    return new Map(outcomes.map((o, i) => [files[i], isCaptionFailure(o) ? { code: o.error.code } : { caption: o.captions[0].text, score: o.captions[0].score }]));
  } finally {
    await captioner.release();
  }
}

// ------------------------------------------------------------------------------------------ the failover scenario

export interface FailoverOptions {
  /**
   * How long a killed worker's inputs stay locked (`worker --lock-ms`, default here 5000). A worker cannot renew
   * its locks while onnxruntime runs a batch (the call holds the event loop), so this must stay well above the
   * longest batch on a loaded machine, or live workers' inputs are taken for stalled and captioned twice.
   */
  lockMs?: number;
  /** Longest time for the job, from submission to its end. */
  jobTimeoutMs?: number;
  /** How long Redis stays down between its SIGKILL and its new start. */
  redisDownMs?: number;
  log?: Log;
}

interface Poll {
  /** ms since submission. */
  t: number;
  path: string;
  status: number | null;
  ms: number;
  error?: string;
}

interface JobStatusBody {
  id: string;
  state: string;
  total: number;
  done: number;
  failed: number;
  rate: number | null;
  eta: number | null;
}

interface ResultRow {
  index: number;
  source: string;
  status: 'done' | 'failed' | 'pending';
  imageId: string | null;
  caption: string | null;
  error: { code: string; message: string } | null;
}

export interface FailoverReport {
  seconds: { total: number; startup: number; job: number; embedded: number };
  inputs: { images: number; broken: number };
  job: JobStatusBody;
  events: Array<{ atSeconds: number; finished: number; what: string }>;
  /** Inputs BullMQ had on the killed worker when it was killed. */
  killedWorkerHeld: number;
  killedWorkerExit: string;
  replicaAExit: string;
  /** "an input held by a stopped worker is back on the queue" lines of the surviving workers. */
  stalledRecovered: number;
  /** The surviving workers' log: stalled-job recoveries before Redis was killed and after, retries, inputs given up on. */
  workerLog: { stalledBeforeRedisKill: number; stalledAfter: number; retries: number; gaveUp: number };
  redis: { downMs: number; afterRestart: { appendonly: string; appendfsync: string; maxmemoryPolicy: string } };
  results: { rows: number; done: number; failed: number; pending: number; errors: Array<{ file: string; code: string; expected: string }> };
  database: { images: number; ownerRows: number; distinctOwnedImages: number; itemsWithoutResult: number; idsMatchContentHashes: boolean; missing: number; unexpected: number };
  captions: { compared: number; identical: number; mismatches: Array<{ file: string; embedded: string; cluster: string }>; maxScoreDifference: number; embeddedErrorCodesMatch: boolean };
  replicaB: { requests: number; failures: Poll[]; maxLatencyMs: number; p50LatencyMs: number; longestGapMs: number; firstAtSeconds: number; lastAtSeconds: number };
  queueAfter: { waiting: number; active: number; delayed: number; failed: number };
  rssMb: Record<string, number>;
  redisRssMb: number;
  postgresPssMb: number;
}

/**
 * The failover scenario (see the file comment): 2 replicas (A in-process captioning, B --remote-captioning), 3
 * single-threaded workers, 300 inputs through A's POST /v1/jobs, a worker and A SIGKILLed at 15 %, Redis
 * SIGKILLed and restarted at 50 %. Always stops everything it started.
 */
export async function runFailover(options: FailoverOptions = {}): Promise<FailoverReport> {
  const log = options.log ?? log0;
  const lockMs = options.lockMs ?? 5000;
  const jobTimeoutMs = options.jobTimeoutMs ?? 300_000;
  const redisDownMs = options.redisDownMs ?? 1500;
  const started = Date.now();
  const images = await flickr8kImages('test', 295);
  // The broken files outlive the cluster's folder: the embedded mode reads them after the cluster stopped.
  const dir = mkdtempSync(join(tmpdir(), 'px-failover-'));
  const broken = await writeBrokenFiles(dir, (await flickr8kImages('val', 1))[0]);
  let cluster: Cluster;
  try {
    cluster = await Cluster.start({ log });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  // Broken files spread over the job, so that some are taken after the kills and the restart.
  const inputs = [...images];
  broken.forEach((b, i) => inputs.splice(10 + i * 70, 0, b.path));
  const expectedCode = new Map(broken.map((b) => [b.path, b.code]));

  let poller: Promise<void> | undefined;
  let polling = true;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const [a, b] = await Promise.all([cluster.startReplica('A'), cluster.startReplica('B', { remoteCaptioning: true })]);
    // One at a time: three model loads at once on two cores only slow each other down.
    for (let i = 0; i < 3; i++) await cluster.startWorker({ threads: 1, lockMs });
    const startup = (Date.now() - started) / 1000;
    cluster.sampleRss();
    sampler = setInterval(() => cluster.sampleRss(), 1000);

    const submitted = await a.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs }) });
    if (submitted.status !== 202) throw new Error(`POST /v1/jobs on replica A: ${submitted.status} ${await submitted.text()}`);
    const { id } = (await submitted.json()) as JobStatusBody;
    const t0 = Date.now();
    log(`job ${id}: ${inputs.length} inputs submitted to replica A`);

    // Replica B, polled all along: liveness and the job's progress.
    const polls: Poll[] = [];
    let status: JobStatusBody | undefined;
    const poll = async (path: string) => {
      const begin = Date.now();
      try {
        const response = await b.request(path, {}, 5000);
        const text = await response.text();
        polls.push({ t: begin - t0, path, status: response.status, ms: Date.now() - begin, ...(response.ok ? {} : { error: text.slice(0, 200) }) });
        if (response.ok && path.startsWith('/v1/jobs/')) status = JSON.parse(text) as JobStatusBody;
      } catch (err) {
        polls.push({ t: begin - t0, path, status: null, ms: Date.now() - begin, error: (err as Error).message });
      }
    };
    poller = (async () => {
      while (polling) {
        await Promise.all([poll('/healthz'), poll(`/v1/jobs/${id}`)]);
        await sleep(200);
      }
    })();

    const finished = () => (status ? status.done + status.failed : 0);
    const events: FailoverReport['events'] = [];
    const event = (what: string) => {
      events.push({ atSeconds: round((Date.now() - t0) / 1000, 1), finished: finished(), what });
      log(`${what} (${finished()}/${inputs.length} finished)`);
    };
    const until = async (what: string, done: () => boolean) => {
      while (!done()) {
        if (Date.now() - t0 > jobTimeoutMs) throw new Error(`job ${id}: ${what} not reached within ${jobTimeoutMs} ms; last status ${JSON.stringify(status)}`);
        await sleep(50);
      }
    };

    // 1. A worker and replica A die mid-job.
    await until('15 % finished', () => finished() >= 45);
    const victim = cluster.workers[0];
    const held = (await queueState(cluster.redis.url)).holders[victim.queueName] ?? 0;
    victim.kill('SIGKILL');
    a.kill('SIGKILL');
    const [victimExit, aExit] = await Promise.all([victim.exited, a.exited]);
    event(`SIGKILL ${victim.role} (holding ${held} inputs) and replica A`);

    // 2. Redis dies and comes back on the same AOF folder: at half-way, once the killed worker's inputs are back.
    const stalledLine = 'an input held by a stopped worker is back on the queue';
    const stalledCount = () => cluster.workers.filter((w) => w.running).reduce((n, w) => n + w.count(stalledLine), 0);
    await until('50 % finished', () => finished() >= 150);
    await until("the killed worker's inputs back on the queue", () => stalledCount() > 0);
    await sleep(500); // one stalled-job check moves all of them; let the other log lines of that check arrive
    const stalledBeforeRedisKill = stalledCount();
    const down = Date.now();
    await cluster.redis.stop('SIGKILL');
    event('SIGKILL redis-server');
    await sleep(redisDownMs);
    await cluster.redis.restart();
    const downMs = Date.now() - down;
    await ensureNoEviction(cluster.redis.url);
    const afterRestart = await redisDurability(cluster.redis.url);
    event(`redis-server started again on the same AOF folder after ${downMs} ms`);

    await until('the end of the job', () => status?.state === 'completed' || status?.state === 'cancelled');
    const jobSeconds = (Date.now() - t0) / 1000;
    event('job ended');
    polling = false;
    await poller;
    clearInterval(sampler);
    sampler = undefined;
    cluster.sampleRss();

    // What replica B says about the results; what PostgreSQL and Redis hold.
    const resultsText = await (await b.request(`/v1/jobs/${id}/results?format=jsonl`)).text();
    const rows = resultsText.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ResultRow);
    const [counts] = await sql<{ images: number; owner_rows: number; owned: number; pending: number }>(
      cluster.database,
      `SELECT (SELECT count(*)::int FROM images) AS images,
              (SELECT count(*)::int FROM image_owners) AS owner_rows,
              (SELECT count(DISTINCT image_id)::int FROM image_owners) AS owned,
              (SELECT count(*)::int FROM job_items WHERE job_id = $1 AND result IS NULL) AS pending`,
      [id],
    );
    const stored = await sql<{ id: string; caption: string; captions: Array<{ text: string; score: number }> }>(cluster.database, 'SELECT id, caption, captions FROM images');
    const queueAfter = await queueState(cluster.redis.url);
    const survivors = cluster.workers.filter((w) => w.running);
    const stalledRecovered = survivors.reduce((n, w) => n + w.count(stalledLine), 0);
    const workerLog = {
      stalledBeforeRedisKill,
      stalledAfter: stalledRecovered - stalledBeforeRedisKill,
      retries: survivors.reduce((n, w) => n + w.count('input failed; the queue retries it'), 0),
      gaveUp: survivors.reduce((n, w) => n + w.count('gave up on an input; recorded as failed') + w.count('gave up on an input and could not record it'), 0),
    };
    const redisRssMb = (await redisCounters(cluster.redis.url)).usedMemoryMb;
    const postgresPssMb = treePssMb(postgresPid(cluster.postgres));
    const rss: Record<string, number> = {};
    for (const s of [...cluster.replicas, ...cluster.workers]) rss[`${s.role}${s === a ? ' (in-process model)' : s === b ? ' (--remote-captioning)' : ''}`] = s.peakRssMb;

    // The embedded mode on the same 300 files, with the cluster stopped (its CPUs are free again).
    await cluster.stop();
    const embeddedStart = Date.now();
    const embedded = await embeddedCaptions(inputs);
    const embeddedSeconds = (Date.now() - embeddedStart) / 1000;

    const hashOf = new Map(images.map((f) => [f, sha256(f)]));
    const storedById = new Map(stored.map((r) => [r.id, r]));
    const expectedIds = new Set(hashOf.values());
    const mismatches: FailoverReport['captions']['mismatches'] = [];
    let identical = 0;
    let maxScoreDifference = 0;
    for (const file of images) {
      const want = embedded.get(file)!;
      const got = storedById.get(hashOf.get(file)!);
      const wantText = 'caption' in want ? want.caption : `(error ${want.code})`;
      if (got && 'caption' in want && got.caption === want.caption) {
        identical++;
        maxScoreDifference = Math.max(maxScoreDifference, Math.abs(got.captions[0].score - want.score));
      } else mismatches.push({ file, embedded: wantText, cluster: got?.caption ?? '(not stored)' });
    }
    const byIndex = new Map(rows.map((r) => [r.index, r]));
    const errors = broken.map((bf) => {
      const row = byIndex.get(inputs.indexOf(bf.path));
      return { file: bf.path.slice(dir.length + 1), code: row?.error?.code ?? `(${row?.status ?? 'missing'})`, expected: bf.code };
    });
    const embeddedErrorCodesMatch = broken.every((bf) => {
      const e = embedded.get(bf.path)!;
      return 'code' in e && e.code === expectedCode.get(bf.path);
    });

    const answered = polls.filter((p) => p.status === 200).map((p) => p.t).sort((x, y) => x - y);
    let longestGapMs = 0;
    for (let i = 1; i < answered.length; i++) longestGapMs = Math.max(longestGapMs, answered[i] - answered[i - 1]);
    const latencies = polls.map((p) => p.ms).sort((x, y) => x - y);

    return {
      seconds: { total: round((Date.now() - started) / 1000, 1), startup: round(startup, 1), job: round(jobSeconds, 1), embedded: round(embeddedSeconds, 1) },
      inputs: { images: images.length, broken: broken.length },
      job: status!,
      events,
      killedWorkerHeld: held,
      killedWorkerExit: victimExit.signal ?? `exit ${victimExit.code}`,
      replicaAExit: aExit.signal ?? `exit ${aExit.code}`,
      stalledRecovered,
      workerLog,
      redis: { downMs, afterRestart },
      results: {
        rows: rows.length,
        done: rows.filter((r) => r.status === 'done').length,
        failed: rows.filter((r) => r.status === 'failed').length,
        pending: rows.filter((r) => r.status === 'pending').length,
        errors,
      },
      database: {
        images: counts.images,
        ownerRows: counts.owner_rows,
        distinctOwnedImages: counts.owned,
        itemsWithoutResult: counts.pending,
        idsMatchContentHashes: stored.length === expectedIds.size && stored.every((r) => expectedIds.has(r.id)),
        missing: [...expectedIds].filter((h) => !storedById.has(h)).length,
        unexpected: stored.filter((r) => !expectedIds.has(r.id)).length,
      },
      captions: { compared: images.length, identical, mismatches, maxScoreDifference, embeddedErrorCodesMatch },
      replicaB: {
        requests: polls.length,
        failures: polls.filter((p) => p.status !== 200),
        maxLatencyMs: latencies.at(-1) ?? 0,
        p50LatencyMs: latencies[Math.floor(latencies.length / 2)] ?? 0,
        longestGapMs,
        firstAtSeconds: round((answered[0] ?? 0) / 1000, 1),
        lastAtSeconds: round((answered.at(-1) ?? 0) / 1000, 1),
      },
      queueAfter: { waiting: queueAfter.waiting, active: queueAfter.active, delayed: queueAfter.delayed, failed: queueAfter.failed },
      rssMb: rss,
      redisRssMb,
      postgresPssMb,
    };
  } finally {
    polling = false;
    await poller?.catch(() => {});
    if (sampler) clearInterval(sampler);
    if (cluster.workers.some((w) => w.running) || cluster.replicas.some((r) => r.running) || cluster.redis.pid) await cluster.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

export function round(x: number, digits = 2): number {
  return Math.round(x * 10 ** digits) / 10 ** digits;
}
