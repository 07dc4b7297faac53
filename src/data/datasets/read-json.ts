/**
 * Reads a JSON (or text) file that a user supplied and turns every way it can be wrong into a typed error
 * naming the file and the reason, so a bad download is reported as such rather than as a stack trace.
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../../errors.js';

export interface FileErrorCodes {
  /** Code when the file does not exist or cannot be read. */
  missing: ErrorCode;
  /** Code when it exists but its content is wrong. */
  invalid: ErrorCode;
}

export const DATASET_FILE_ERRORS: FileErrorCodes = {
  missing: ErrorCodes.DATASET_NOT_FOUND,
  invalid: ErrorCodes.DATASET_INVALID,
};

export async function readTextFile(path: string, codes: FileErrorCodes = DATASET_FILE_ERRORS): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new PixelInfoError(codes.missing, `${path}: ${reason}`, { subject: path, cause: err });
  }
}

export async function readJsonFile<S extends z.ZodTypeAny>(
  path: string,
  schema: S,
  codes: FileErrorCodes = DATASET_FILE_ERRORS,
): Promise<z.output<S>> {
  const text = await readTextFile(path, codes);
  return parseJsonText(text, path, schema, codes.invalid);
}

export function parseJsonText<S extends z.ZodTypeAny>(
  text: string,
  path: string,
  schema: S,
  invalid: ErrorCode = ErrorCodes.DATASET_INVALID,
): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PixelInfoError(invalid, `${path}: not valid JSON (${(err as Error).message})`, { subject: path, cause: err });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new PixelInfoError(invalid, `${path}: ${describeZodError(parsed.error)}`, { subject: path, cause: parsed.error });
  }
  return parsed.data;
}

/** The first few issues as `field.path: message`, e.g. `images[3].sentences: Required`. */
export function describeZodError(error: z.ZodError, max = 3): string {
  const issues = error.issues.slice(0, max).map((issue) => {
    const where = issue.path.reduce<string>(
      (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${key}` : String(key)),
      '',
    );
    return where ? `${where}: ${issue.message}` : issue.message;
  });
  const more = error.issues.length > max ? ` (and ${error.issues.length - max} more)` : '';
  return issues.join('; ') + more;
}
