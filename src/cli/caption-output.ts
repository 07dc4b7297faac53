/**
 * Where `pixel-info caption --out FILE` writes, and how `--resume` picks a killed run up again.
 *
 *   --jsonl   FILE gets one record per line as each batch is done: it is its own checkpoint.
 *   --json    records go one per line to FILE.partial as each batch is done; at the end FILE is written at once
 *             (a temporary file renamed over it) as the same JSON array --json prints, and FILE.partial is removed.
 *             FILE is therefore never half-written: it is the previous complete output or the new one.
 *   other     text or CSV lines are written to FILE as they come (not resumable).
 *
 * Records in FILE carry the input's `sha256`. `--resume` reads what a previous run wrote, keeps each record
 * whose file still has that content, drops the rest (a file changed since, a line cut short by the kill), and
 * appends only the inputs not yet done, so a run killed at any point and resumed ends with one record per
 * input, in input order, exactly as an uninterrupted run.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type FileRecord = (
  | {
      file: string;
      /** confidence: the matcher's score, when one is loaded; emptyReason: why --alt-text-min-confidence left the text "". */
      captions: Array<{ text: string; score: number; logProb: number; confidence?: number; emptyReason?: string }>;
      /** The image's ImageNet-guided tags (src/encoder/tags.ts); absent in records written before tags existed. */
      tags?: Array<{ word: string; probability: number; classes: Array<{ index: number; label: string; probability: number }> }>;
    }
  | { file: string; error: { code: string; message: string } }
) & { sha256?: string };

export type OutputFormat = 'text' | 'csv' | 'json' | 'jsonl';

/** SHA-256 of a file's bytes, or undefined when it cannot be read (its record is then an error anyway). */
export async function fileHash(path: string): Promise<string | undefined> {
  try {
    return createHash('sha256').update(await readFile(path)).digest('hex');
  } catch {
    return undefined;
  }
}

/** Writes `text` to `path` at once: a temporary file beside it, renamed over it. */
export function writeAtomically(path: string, text: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/** Records of a JSON-lines text; stops at the first line that is not a whole record (a write cut short). */
export function parseRecordLines(text: string): FileRecord[] {
  const records: FileRecord[] = [];
  const lines = text.split('\n');
  if (!text.endsWith('\n')) lines.pop(); // the last line was never finished
  for (const line of lines) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      break;
    }
    if (!isRecord(value)) break;
    records.push(value);
  }
  return records;
}

function isRecord(value: unknown): value is FileRecord {
  return typeof value === 'object' && value !== null && typeof (value as FileRecord).file === 'string' && ('captions' in value || 'error' in value);
}

/** The records a previous run left for `--resume`: FILE (jsonl), or FILE.partial else FILE (json). */
function previousRecords(path: string, format: 'json' | 'jsonl'): FileRecord[] {
  if (format === 'jsonl') return existsSync(path) ? parseRecordLines(readFileSync(path, 'utf8')) : [];
  const partial = `${path}.partial`;
  if (existsSync(partial)) return parseRecordLines(readFileSync(partial, 'utf8'));
  if (!existsSync(path)) return [];
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return Array.isArray(value) ? value.filter(isRecord) : [];
  } catch {
    return [];
  }
}

/** A record as written to FILE: one line of JSON. */
function line(record: FileRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** The output file of one `caption --out` run. */
export class CaptionOutputFile {
  private readonly records: FileRecord[];
  private fd: number;

  private constructor(
    private readonly path: string,
    private readonly format: OutputFormat,
    kept: FileRecord[],
  ) {
    this.records = kept;
    const checkpoint = this.checkpointPath;
    // Start from what is kept (nothing on a fresh run), written at once; then append.
    if (format === 'json' || format === 'jsonl') writeAtomically(checkpoint, kept.map(line).join(''));
    else writeFileSync(checkpoint, '');
    this.fd = openSync(checkpoint, 'a');
  }

  /**
   * Opens FILE for a run over `inputs` (each with its content hash). With `resume`, the records of a previous run
   * that still match their input are kept and those inputs are `done`.
   */
  static open(path: string, format: OutputFormat, inputs: ReadonlyMap<string, string | undefined>, resume: boolean): { output: CaptionOutputFile; done: Set<string> } {
    const done = new Set<string>();
    const kept: FileRecord[] = [];
    if (resume && (format === 'json' || format === 'jsonl')) {
      for (const record of previousRecords(path, format)) {
        if (!inputs.has(record.file)) {
          kept.push(record); // another input set's: not ours to drop
        } else if (!done.has(record.file) && inputs.get(record.file) === record.sha256) {
          kept.push(record);
          done.add(record.file);
        }
      }
    }
    return { output: new CaptionOutputFile(path, format, kept), done };
  }

  /** Where records go while the run lasts. */
  private get checkpointPath(): string {
    return this.format === 'json' ? `${this.path}.partial` : this.path;
  }

  /** Every record, kept and new, in file order. */
  get all(): readonly FileRecord[] {
    return this.records;
  }

  /** Appends one batch's records (and, for text and CSV, their lines) in one write. */
  write(records: FileRecord[], text?: string): void {
    this.records.push(...records);
    const chunk = this.format === 'json' || this.format === 'jsonl' ? records.map(line).join('') : (text ?? '');
    if (chunk) writeSync(this.fd, chunk);
  }

  /** Ends the run: --json writes FILE (temporary file, renamed) and removes the checkpoint. */
  close(): void {
    closeSync(this.fd);
    if (this.format !== 'json') return;
    writeAtomically(this.path, `${JSON.stringify(this.records, null, 2)}\n`);
    rmSync(this.checkpointPath, { force: true });
  }

  /** Closes the file without finishing it (a failed run: the checkpoint stays for --resume). */
  abandon(): void {
    closeSync(this.fd);
  }
}
