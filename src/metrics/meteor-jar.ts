/**
 * METEOR through the toolkit's own meteor-1.5.jar, driven exactly as pycocoevalcap/meteor/meteor.py
 * drives it: `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` in the jar's directory, one
 * `SCORE ||| ref 1 ||| ... ||| ref n ||| hypothesis` line per image (the hypothesis with `|||`
 * removed and double spaces made single), then one `EVAL ||| stats 1 ||| ... ||| stats n` line,
 * answered by one score per image and the corpus score.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const METEOR_JAR_ENV = 'PIXEL_INFO_METEOR_JAR';

let cachedJar: string | null | undefined;

/**
 * Where meteor-1.5.jar is: $PIXEL_INFO_METEOR_JAR, else inside an installed pycocoevalcap
 * (found through `python3`), else null. The result is cached for the process.
 */
export function findMeteorJar(): string | null {
  const fromEnv = process.env[METEOR_JAR_ENV];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  if (cachedJar !== undefined) return cachedJar;
  cachedJar = null;
  // pycocoevalcap has no __init__.py (a namespace package), so __file__ is None: use __path__.
  const py = spawnSync('python3', ['-c', 'import pycocoevalcap;print(list(pycocoevalcap.__path__)[0])'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (py.status === 0) {
    const jar = join(py.stdout.trim(), 'meteor', 'meteor-1.5.jar');
    if (existsSync(jar)) cachedJar = jar;
  }
  return cachedJar;
}

let javaOk: boolean | undefined;

export function javaAvailable(): boolean {
  javaOk ??= spawnSync('java', ['-version'], { timeout: 20_000 }).status === 0;
  return javaOk;
}

/** The jar when both it and Java are usable, else null. */
export function meteorJarIfUsable(): string | null {
  const jar = findMeteorJar();
  return jar && javaAvailable() ? jar : null;
}

/** A running METEOR jar, reusable for several evaluations (it takes seconds to start). */
export class MeteorJar {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: ((line: string) => void)[] = [];
  private readonly buffered: string[] = [];
  private failure: Error | null = null;
  private stderr = '';

  constructor(jarPath: string) {
    this.proc = spawn('java', ['-jar', '-Xmx2G', 'meteor-1.5.jar', '-', '-', '-stdio', '-l', 'en', '-norm'], {
      cwd: dirname(jarPath),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-4000);
    });
    this.proc.on('error', (err) => this.fail(err));
    this.proc.stdin.on('error', (err) => this.fail(err));
    this.proc.on('exit', (code) => {
      if (code !== 0 && code !== null) this.fail(new Error(`METEOR jar exited with code ${code}: ${this.stderr.trim()}`));
      else this.fail(new Error('METEOR jar exited'));
    });
    this.lines = createInterface({ input: this.proc.stdout });
    this.lines.on('line', (line) => {
      const next = this.pending.shift();
      if (next) next(line);
      else this.buffered.push(line);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.splice(0)) p('\u0000');
  }

  private readLine(): Promise<string> {
    const line = this.buffered.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) =>
      this.pending.push((l) => (l === '\u0000' && this.failure ? reject(this.failure) : resolve(l))),
    );
  }

  private write(line: string): void {
    if (this.failure) throw this.failure;
    this.proc.stdin.write(`${line}\n`, 'utf8');
  }

  /** Scores tokenised captions: `refs[i]` and `cands[i]` are image i's references and candidate. */
  async score(refs: readonly (readonly string[])[], cands: readonly string[]): Promise<{ score: number; perImage: number[]; stats: string[] }> {
    if (refs.length !== cands.length) throw new RangeError(`meteor: ${refs.length} reference sets but ${cands.length} candidates`);
    const stats: string[] = [];
    for (let i = 0; i < cands.length; i++) {
      const hyp = cands[i].replaceAll('|||', '').replace(/ {2}/g, ' ');
      this.write(['SCORE', refs[i].join(' ||| '), hyp].join(' ||| '));
      stats.push((await this.readLine()).trim());
    }
    this.write(['EVAL', ...stats].join(' ||| '));
    const perImage: number[] = [];
    for (let i = 0; i < cands.length; i++) perImage.push(parseJarNumber(await this.readLine()));
    const score = parseJarNumber(await this.readLine());
    return { score, perImage, stats };
  }

  close(): void {
    this.lines.close();
    this.proc.stdin.end();
    this.proc.kill();
  }
}

function parseJarNumber(line: string): number {
  const v = Number(line.trim());
  if (!Number.isFinite(v)) throw new PixelInfoError(ErrorCodes.INTERNAL, `METEOR jar answered "${line.trim()}" instead of a score`);
  return v;
}

/** One-shot jar evaluation (starts and stops the jar). */
export async function meteorWithJar(jarPath: string, refs: readonly (readonly string[])[], cands: readonly string[]) {
  const jar = new MeteorJar(jarPath);
  try {
    return await jar.score(refs, cands);
  } finally {
    jar.close();
  }
}
