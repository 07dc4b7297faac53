/**
 * SPICE through the toolkit's own spice-1.0.jar, run exactly as pycocoevalcap/spice/spice.py runs it:
 * one JSON input file `[{"image_id", "test", "refs": [...]}]` of the PTB-tokenised captions (the toolkit tokenises
 * before it scores), `java -jar -Xmx… spice-1.0.jar in.json -cache <dir> -out out.json -subset -silent` in the jar's
 * folder, and the corpus score is `np.mean` of every image's "All" f-score, in the order of the output (the input's).
 *
 * What differs is only what Java 17 needs: Nashorn (the jar pretty-prints its output with the JavaScript engine, gone
 * from the JDK since 15) on the module path, and `--add-opens` for the FST serialisation of the LMDB parse cache.
 * Stanford CoreNLP 3.6.0, which spice.py downloads from nlp.stanford.edu on first use, comes from Maven Central.
 * `bash scripts/fetch-spice.sh` puts all of it in `<model cache>/spice` (PIXEL_INFO_CACHE_DIR, else
 * ~/.cache/pixel-info); a missing piece is a MODEL_NOT_FOUND error naming the file and that command.
 *
 * Memory: the toolkit asks for `-Xmx8G`, a ceiling rather than a reservation. Flickr8k val (1000 images, 5000
 * references) with an empty parse cache peaked at 5.4 GB resident under it (the JVM lets the heap grow toward its
 * ceiling before it collects hard); with the cache filled, a second run parses nothing. On a 24 GB machine the
 * toolkit's 8G is kept; PIXEL_INFO_SPICE_HEAP (or the `maxHeap` option) sets another ceiling, e.g. `4G` on a smaller
 * machine (not measured).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { numpyMean } from './numeric.js';

/** What installs the jars into the cache. */
export const SPICE_FETCH_COMMAND = 'bash scripts/fetch-spice.sh';
export const SPICE_HEAP_ENV = 'PIXEL_INFO_SPICE_HEAP';
/** The toolkit's `-Xmx8G` (see the file's comment). */
export const SPICE_DEFAULT_HEAP = '8G';

const SPICE_JAR = 'spice-1.0.jar';
/** What the jar's manifest Class-Path needs beyond what pycocoevalcap ships, and what Java 17 needs. */
const REQUIRED_FILES = [
  SPICE_JAR,
  'lib/stanford-corenlp-3.6.0.jar',
  'lib/stanford-corenlp-3.6.0-models.jar',
  'lib/SceneGraphParser-1.0.jar',
  'lib/Meteor-1.5.jar',
  'lib/lmdbjni-linux64-0.4.6.jar',
  'lib/fst-2.47.jar',
  'lib/json-simple-1.1.1.jar',
  'modules/nashorn-core-15.4.jar',
  'modules/asm-7.3.1.jar',
  'modules/asm-commons-7.3.1.jar',
  'modules/asm-tree-7.3.1.jar',
  'modules/asm-util-7.3.1.jar',
  'modules/asm-analysis-7.3.1.jar',
] as const;

/** Packages the FST serialiser of the parse cache reflects into (found one by one on Java 17). */
const ADD_OPENS = ['java.lang', 'java.math', 'java.util', 'java.util.concurrent', 'java.net', 'java.text'].flatMap((p) => [
  '--add-opens',
  `java.base/${p}=ALL-UNNAMED`,
]);

export interface SpiceOptions {
  /** The folder fetch-spice.sh fills (default `<model cache>/spice`). */
  dir?: string;
  /** SPICE's parse cache (default `<dir>/cache`, kept between runs as the toolkit keeps its own). */
  cacheDir?: string;
  /** Java's -Xmx (default $PIXEL_INFO_SPICE_HEAP, else 8G as the toolkit). */
  maxHeap?: string;
  /** Parser threads (`-threads`); default the jar's own default, the number of processors, as the toolkit runs it. */
  threads?: number;
  /** The java executable (default `java` on PATH). */
  java?: string;
}

/** One tuple category of one image, as the jar reports it (null values, NaN in Java, become NaN as in spice.py). */
export interface SpiceCategoryScore {
  f: number;
  pr: number;
  re: number;
  tp: number;
  fp: number;
  fn: number;
  numImages: number;
}

export interface SpiceResult {
  /** np.mean of the per-image "All" f-scores (NaN if any is NaN, as np.mean). */
  score: number;
  /** Each image's "All" f-score, in input order. */
  perImage: number[];
  /** Each image's scores by category: All, Object, Attribute, Relation, Cardinality, Color, Size (`-subset`). */
  categories: Record<string, SpiceCategoryScore>[];
}

/** `<model cache>/spice`, where scripts/fetch-spice.sh puts the jars. */
export function defaultSpiceDir(): string {
  // The model cache as src/encoder/cache.ts's defaultCacheDir resolves it (not imported: that module loads the ONNX converter).
  const cache = process.env.PIXEL_INFO_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'pixel-info');
  return join(cache, 'spice');
}

/** Checks that every file SPICE needs is in `dir`; throws MODEL_NOT_FOUND naming the first missing one. */
export function checkSpiceInstall(dir: string = defaultSpiceDir()): string {
  for (const rel of REQUIRED_FILES) {
    const file = join(dir, rel);
    if (!existsSync(file)) {
      throw new PixelInfoError(
        ErrorCodes.MODEL_NOT_FOUND,
        `SPICE needs ${file}, which is missing: run \`${SPICE_FETCH_COMMAND}\` once (it copies spice-1.0.jar from pycocoevalcap and ` +
          `fetches Stanford CoreNLP 3.6.0 and Nashorn with Maven into ${dir})`,
        { subject: file },
      );
    }
  }
  return dir;
}

/** JSON as Python's json.dump writes it by default (ensure_ascii): non-ASCII as \uXXXX, so Java's default charset cannot matter. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** spice.py's float_convert: float(x), NaN when that fails (None, i.e. Java's NaN). */
function floatConvert(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v.trim());
    return Number.isNaN(n) ? NaN : n;
  }
  return NaN;
}

/**
 * Scores tokenised captions: `refs[i]` (at least one) and `cands[i]` are image i's references and candidate, joined by
 * spaces as the toolkit's tokenizer returns them. The images are scored in the order given (spice.py's is the
 * sorted image ids; the order only changes the rounding of the mean).
 */
export async function spice(refs: readonly (readonly string[])[], cands: readonly string[], options: SpiceOptions = {}): Promise<SpiceResult> {
  if (refs.length !== cands.length) throw new RangeError(`spice: ${refs.length} reference sets but ${cands.length} candidates`);
  if (cands.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'spice: no captions to score');
  refs.forEach((r, i) => {
    if (r.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `spice: image ${i} has no reference captions`);
  });
  const dir = checkSpiceInstall(options.dir ?? defaultSpiceDir());
  const cacheDir = options.cacheDir ?? join(dir, 'cache');
  await mkdir(cacheDir, { recursive: true }); // the jar's LMDB cache needs the folder (spice.py makes it too)
  const heap = options.maxHeap ?? (process.env[SPICE_HEAP_ENV] || SPICE_DEFAULT_HEAP);
  if (!/^\d+[kKmMgG]?$/.test(heap)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `SPICE heap "${heap}" is not a Java -Xmx size such as 8G or 4096m`);
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads > 0)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `SPICE threads must be a positive integer, got ${options.threads}`);
  }

  const work = await mkdtemp(join(tmpdir(), 'pixel-info-spice-'));
  try {
    const inFile = join(work, 'input.json');
    const outFile = join(work, 'output.json');
    // image_id: the index, mapped back below (the jar only echoes it; parses are cached by caption text).
    await writeFile(inFile, asciiJson(cands.map((test, i) => ({ image_id: i, test, refs: refs[i] }))));
    const args = [
      ...ADD_OPENS,
      '--module-path',
      join(dir, 'modules'),
      '--add-modules',
      'org.openjdk.nashorn',
      '-jar',
      `-Xmx${heap}`,
      SPICE_JAR,
      inFile,
      '-cache',
      cacheDir,
      '-out',
      outFile,
      '-subset',
      '-silent',
      ...(options.threads ? ['-threads', String(options.threads)] : []),
    ];
    await runJava(options.java ?? 'java', args, dir);

    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(outFile, 'utf8'));
    } catch (err) {
      throw new PixelInfoError(ErrorCodes.INTERNAL, `SPICE wrote no readable output (${(err as Error).message})`, { cause: err });
    }
    if (!Array.isArray(parsed) || parsed.length !== cands.length) {
      throw new PixelInfoError(ErrorCodes.INTERNAL, `SPICE scored ${Array.isArray(parsed) ? parsed.length : 'no'} images of ${cands.length}`);
    }
    const categories: Record<string, SpiceCategoryScore>[] = new Array(cands.length);
    const fInOutputOrder: number[] = [];
    for (const item of parsed as Array<{ image_id: unknown; scores: Record<string, Record<string, unknown>> }>) {
      const i = item?.image_id;
      if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= cands.length || categories[i] || !item.scores?.All) {
        throw new PixelInfoError(ErrorCodes.INTERNAL, `SPICE output has an unexpected entry for image_id ${JSON.stringify(i)}`);
      }
      categories[i] = Object.fromEntries(
        Object.entries(item.scores).map(([name, s]) => [
          name,
          { f: floatConvert(s.f), pr: floatConvert(s.pr), re: floatConvert(s.re), tp: floatConvert(s.tp), fp: floatConvert(s.fp), fn: floatConvert(s.fn), numImages: floatConvert(s.numImages) },
        ]),
      );
      fInOutputOrder.push(categories[i].All.f);
    }
    // np.mean(np.array(spice_scores)): pairwise summation; a NaN makes the mean NaN.
    const score = numpyMean(fInOutputOrder);
    return { score, perImage: categories.map((c) => c.All.f), categories };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Runs java in `cwd`; resolves on exit 0, else throws with the last lines Java wrote. Both streams are kept, not
 * printed (stdout is --json's): the jar logs to stderr, but the JVM writes its own start-up errors to stdout.
 */
function runJava(java: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(java, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-16_000);
    };
    proc.stderr.on('data', keep);
    proc.stdout.on('data', keep);
    proc.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new PixelInfoError(ErrorCodes.PYTHON_UNAVAILABLE, `SPICE needs Java (17 is the tested version) on PATH: ${java} was not found`, { subject: 'spice', cause: err })
          : new PixelInfoError(ErrorCodes.INTERNAL, `SPICE: could not start ${java}: ${err.message}`, { cause: err }),
      );
    });
    proc.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const tail = output.trimEnd().split('\n').slice(-15).join('\n');
      reject(new PixelInfoError(ErrorCodes.INTERNAL, `SPICE (java -jar ${SPICE_JAR}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}:\n${tail}`, { subject: 'spice' }));
    });
  });
}
