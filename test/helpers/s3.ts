/**
 * A throw-away S3-compatible server for tests: PyPI's moto[server] (`moto_server`) on a free loopback port, in
 * memory, stopped by PID. `env` holds the AWS variables a client (or a child process) needs to reach it with
 * dummy credentials.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './redis.js';

export interface S3Server {
  readonly endpoint: string;
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL_S3 for this server. */
  readonly env: Record<string, string>;
  /** A path-style client for this server (closed by stop()). */
  readonly client: S3Client;
  createBucket(bucket: string): Promise<void>;
  putObject(bucket: string, key: string, body: Buffer): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s); resolves once the process has exited. */
  stop(): Promise<void>;
}

/** Whether moto_server is on PATH (tests that need it skip otherwise). */
export async function haveMotoServer(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('moto_server', ['--help'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

export async function startS3(): Promise<S3Server> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let log = '';
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (log = (log + d).slice(-4000)));
  child.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    client.destroy();
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  const env = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: endpoint };
  const client = new S3Client({ endpoint, forcePathStyle: true, region: env.AWS_REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}): ${log}`);
    const up = await fetch(`${endpoint}/`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto_server did not answer on ${endpoint} within 20 s: ${log}`);
    }
    await sleep(100);
  }

  return {
    endpoint,
    env,
    client,
    async createBucket(bucket) {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    },
    async putObject(bucket, key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    stop,
  };
}
