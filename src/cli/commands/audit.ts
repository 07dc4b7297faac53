/**
 * `pixel-info audit <file.html|folder>`: the alt text of every `<img>` checked (missing, empty, placeholder, or
 * matched against the image), with a suggested alt text; text, `--json` (one document) and `--report` (Markdown or
 * HTML). Exit 0 nothing needs attention, 1 something does, 2 usage error.
 */
import { rename, writeFile, rm } from 'node:fs/promises';
import { extname } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { Captioner, defaultMatcherDir, defaultModelDir } from '../../pipeline/captioner.js';
import { ErrorCodes, PixelInfoError, asPixelInfoError } from '../../errors.js';
import { collectImages, auditImages, DEFAULT_MIN_SCORE, type AuditEngine } from '../../audit/audit.js';
import { htmlReport, markdownReport, textLines } from '../../audit/report.js';
import { createProgress } from '../progress.js';
import { parsePositiveInt } from '../options.js';

interface AuditCliOptions {
  json?: boolean;
  report?: string;
  root?: string;
  minScore: number;
  model: string;
  matcher?: string;
  batchSize: number;
  threads?: number;
  progress: boolean;
}

function parseProbability(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`expected a probability in [0, 1], got "${value}"`);
  return n;
}

/** The report format from the file's extension. */
function reportFormat(file: string): 'markdown' | 'html' | undefined {
  const ext = extname(file).toLowerCase();
  return ext === '.md' || ext === '.markdown' ? 'markdown' : ext === '.html' || ext === '.htm' ? 'html' : undefined;
}

export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('check the alt text of every <img> in an HTML page or a folder of pages, and suggest alt texts')
    .argument('<target>', 'an HTML file, or a folder searched recursively for *.html and *.htm')
    .option('--json', 'print one JSON document: {"target", "minScore", "summary", "images": [...]} (see the README)')
    .option('--report <file>', 'write a report: FILE.md (Markdown, links to the images) or FILE.html (self-contained, with thumbnails)')
    .option('--root <dir>', 'the site root that root-relative sources (/img/x.jpg) start from (default: the folder audited, or the page\'s folder)')
    .option('--min-score <p>', 'an alt text whose match score (a calibrated probability) is below this is a mismatch', parseProbability, DEFAULT_MIN_SCORE)
    .option('--model <dir>', 'decoder model directory', defaultModelDir())
    .option('--matcher <dir>', `image–text matcher model directory (default: ${defaultMatcherDir()})`)
    .option('--batch-size <n>', 'images per caption batch', parsePositiveInt, 8)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--no-progress', 'no progress bar')
    .action(async (target: string, opts: AuditCliOptions) => {
      const usage = (message: string) => {
        console.error(`pixel-info audit: ${ErrorCodes.INVALID_ARGUMENT}: ${message}`);
        process.exitCode = 2;
      };
      const format = opts.report ? reportFormat(opts.report) : undefined;
      if (opts.report && !format) return usage(`--report ${opts.report}: the file must end in .md or .html`);
      let found;
      try {
        found = await collectImages(target, opts.root);
      } catch (err) {
        if (err instanceof PixelInfoError && err.code === ErrorCodes.INVALID_ARGUMENT) return usage(err.message);
        throw err;
      }

      let captioner: Captioner | undefined;
      const engine = async (): Promise<AuditEngine> => {
        captioner = await Captioner.load({ modelDir: opts.model, matcherDir: opts.matcher, threads: opts.threads, batchSize: opts.batchSize });
        if (!captioner.matcherInfo) {
          throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `audit needs an image–text matcher: none at ${defaultMatcherDir()} (give one with --matcher DIR)`);
        }
        return captioner;
      };
      const bar = createProgress(found.images.length, 'audit', { enabled: opts.progress && found.images.length > 3 });
      let result;
      try {
        result = await auditImages(target, found, engine, {
          minScore: opts.minScore,
          batchSize: opts.batchSize,
          onProgress: (done, total) => bar.update(Math.round((done / total) * found.images.length), { failed: 0 }),
        });
      } finally {
        bar.stop();
        await captioner?.release();
      }

      if (opts.report) {
        const text = format === 'html' ? await htmlReport(result) : markdownReport(result.report, opts.report);
        await writeWhole(opts.report, text);
      }
      if (opts.json) console.log(JSON.stringify(result.report, null, 2));
      else for (const line of textLines(result.report)) console.log(line);
      process.exitCode = result.report.summary.attention > 0 ? 1 : 0;
    });
}

/** Written to a temporary file beside it, then renamed: never half-written. */
async function writeWhole(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw asPixelInfoError(err, file);
  }
}
