/**
 * A throw-away redis-server for tests: a free loopback port, a temporary data folder, stopped by PID. With
 * `appendOnly` every write is fsynced to the AOF before it is acknowledged, so `restart()` (same port, same
 * folder) loses nothing — the "Redis restarts mid-job" scenario.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** The running server's process id (undefined while stopped). */
  readonly pid: number | undefined;
  /** SIGTERM (a clean shutdown; SIGKILL after 5 s) or SIGKILL (a crash); resolves once the process has exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops the server (as `stop`) and starts a new one on the same port and data folder. */
  restart(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops the server and removes its data folder. */
  destroy(): Promise<void>;
}

export interface RedisServerOptions {
  /** `--appendonly yes --appendfsync always`: the AOF survives a restart with every acknowledged write. */
  appendOnly?: boolean;
}

/** Whether redis-server is on PATH (tests that need it skip otherwise). */
export async function haveRedisServer(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

/** A port the kernel just handed out on 127.0.0.1 (free at that moment). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'px-redis-'));
  const port = await freePort();
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--daemonize', 'no', '--save', '', '--protected-mode', 'yes', '--loglevel', 'warning'];
  if (options.appendOnly) args.push('--appendonly', 'yes', '--appendfsync', 'always');
  let child: ChildProcess | undefined;
  let log = '';

  const start = async () => {
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d) => (log = (log + d).slice(-4000)));
    proc.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    child = proc;
    const deadline = Date.now() + 10_000;
    while (!(await accepts(port))) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}): ${log}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within 10 s: ${log}`);
      await sleep(50);
    }
  };

  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    process.kill(proc.pid!, signal);
    const timer = setTimeout(() => proc.exitCode === null && proc.signalCode === null && process.kill(proc.pid!, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    stop,
    async restart(signal) {
      await stop(signal);
      await start();
    },
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
