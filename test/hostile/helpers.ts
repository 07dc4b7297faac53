/**
 * The hostile-client suite's tools: `pixel-info serve` started as a child process on loopback (the real CLI, the
 * real model), requests with full control over every header (node:http, no connection reuse), raw sockets for
 * attacks a well-behaved client cannot make, the server's resident memory from /proc, and test images.
 *
 * Every wait is bounded; every process and socket a test opens is closed after it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'bin', 'pixel-info.js');

type TestContext = { after(fn: () => unknown): void; diagnostic(message: string): void };

export interface LogLine {
  level: number;
  msg: string;
  pid?: number;
  url?: string;
  [k: string]: unknown;
}

export interface Served {
  url: string;
  port: number;
  /** The process that serves (from its log lines: bin/ may run the server in a child of the spawned process). */
  pid: number;
  dir: string;
  lines: LogLine[];
  child: ChildProcess;
  exited: Promise<number | null>;
  waitFor(match: (l: LogLine) => boolean, what: string, ms?: number): Promise<LogLine>;
}

/** `pixel-info serve --port 0` on 127.0.0.1 with a fresh library, ready (model loaded); killed after the test. */
export async function serve(t: TestContext, args: string[] = [], options: { library?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'px-hostile-'));
  const library = options.library ?? join(dir, 'lib.sqlite');
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--library', library, '--threads', '1', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const lines: LogLine[] = [];
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let stderr = '';
  let buffered = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const part of parts) {
      if (!part.trim()) continue;
      let line: LogLine;
      try {
        line = JSON.parse(part) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (const w of waiters.splice(0)) (w.match(line) ? w.resolve(line) : waiters.push(w));
    }
  });
  const waitFor = (match: (l: LogLine) => boolean, what: string, ms = 60_000) =>
    Promise.race([
      new Promise<LogLine>((resolve) => {
        const seen = lines.find(match);
        if (seen) resolve(seen);
        else waiters.push({ match, resolve });
      }),
      exited.then((code) => Promise.reject(new Error(`server exited (${code}) before "${what}"; stderr: ${stderr.slice(-2000)}`))),
      sleep(ms, undefined, { ref: false }).then(() => Promise.reject(new Error(`no "${what}" within ${ms} ms; stderr: ${stderr.slice(-2000)}`))),
    ]);
  const serving = await waitFor((l) => l.msg?.startsWith('pixel-info serving on'), 'serving');
  await waitFor((l) => l.msg === 'model loaded; ready', 'ready');
  const url = serving.url!;
  return { url, port: Number(new URL(url).port), pid: serving.pid ?? child.pid!, dir, lines, child, exited, waitFor };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => { error?: { code: string; message: string }; [k: string]: unknown };
  ms: number;
}

/** One request on its own connection, any headers (Host and Origin included); rejects after `timeoutMs`. */
export function send(
  port: number,
  { method = 'GET', path = '/', headers = {}, body, timeoutMs = 30_000 }: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number },
): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers }, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text), ms: performance.now() - started });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A multipart/form-data body (fields, then files), with its content type. */
export function multipartBody(parts: Array<{ name: string; value: string } | { name: string; file: Buffer; filename?: string; type?: string }>, boundary = 'hostileBoundary7MA4YWxk') {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if ('file' in part) {
      chunks.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${part.filename ?? 'photo.jpg'}"\r\nContent-Type: ${part.type ?? 'image/jpeg'}\r\n\r\n`,
        ),
        part.file,
        Buffer.from('\r\n'),
      );
    } else {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`));
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

/** A raw TCP connection to the server; destroyed after the test. */
export async function rawSocket(t: TestContext, port: number): Promise<Socket & { received: () => string; closedAt: Promise<number> }> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {}); // resets are what several attacks expect
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  const closedAt = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  t.after(() => socket.destroy());
  return Object.assign(socket, { received: () => data, closedAt });
}

/** Resident memory of a process, MB (/proc/PID/status VmRSS). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** Samples a process's RSS every `everyMs` until stopped: its peak and the samples. */
export function sampleRss(pid: number, everyMs = 200): { stop: () => { peak: number; samples: number[] } } {
  const samples: number[] = [];
  const timer = setInterval(() => {
    try {
      samples.push(rssMb(pid));
    } catch {
      /* exited */
    }
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return { peak: Math.max(0, ...samples), samples };
    },
  };
}

/** Polls `check` every `everyMs` until it is true or `ms` passed; returns whether it became true and when. */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, everyMs = 100): Promise<{ ok: boolean; afterMs: number }> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (await check()) return { ok: true, afterMs: performance.now() - started };
    await sleep(everyMs);
  }
  return { ok: await check(), afterMs: performance.now() - started };
}

/** A photo-like JPEG (noise over a gradient) of the given size, distinct per seed. */
export async function photo(width = 320, height = 240, seed = 0, quality = 85): Promise<Buffer> {
  const base = await sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 100 + (seed % 100), sigma: 40 } } }).raw().toBuffer();
  for (let i = 0; i < base.length; i += 3) base[i] = (base[i] + ((i / 3) % width) + seed * 7) & 0xff;
  return sharp(base, { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer();
}

/** A JPEG of pure noise at the highest quality: as many bytes per pixel as a photo can take (2900x2350 ≈ 19 MB). */
export async function heavyJpeg(width: number, height: number): Promise<Buffer> {
  const raw = await sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 90 } } }).raw().toBuffer();
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
}

/** The sum of a Prometheus counter's samples (all label sets) in a /metrics text. */
export function counterTotal(metrics: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
