/**
 * The inputs of a batch job. At submission, the arguments are expanded into one source per image: files as
 * given, folders walked and glob patterns matched (src/pipeline/inputs.ts), `s3://bucket/prefix` listed; local
 * paths are made absolute, since the workers read them from their own working directory. In a worker, one
 * source is read into bytes with the same typed errors as the rest of the project (FILE_NOT_FOUND, FILE_EMPTY,
 * IMAGE_TOO_LARGE, …).
 */
import { resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { DEFAULT_MAX_BYTES } from '../image/index.js';
import { readImageBytes } from '../image/read-input.js';
import { expandInputs } from '../pipeline/inputs.js';
import { createS3Client, isS3Url, listS3Images, readS3Object, type S3Settings } from './s3.js';

export interface ExpandedSources {
  /** One per image, in argument order, duplicates removed. */
  sources: string[];
  /** Folders, patterns and S3 prefixes that gave no image. */
  empty: string[];
}

/** Expands submission arguments (files, folders, globs, s3:// URLs and prefixes) into image sources. */
export async function expandSources(inputs: readonly string[], s3: S3Settings = {}): Promise<ExpandedSources> {
  const sources: string[] = [];
  const empty: string[] = [];
  const seen = new Set<string>();
  const add = (source: string) => {
    if (!seen.has(source)) {
      seen.add(source);
      sources.push(source);
    }
  };
  let client: S3Client | undefined;
  try {
    for (const input of inputs) {
      if (isS3Url(input)) {
        const found = await listS3Images((client ??= createS3Client(s3)), input);
        if (found.length === 0) empty.push(input);
        found.forEach(add);
      } else {
        const { files, empty: none } = await expandInputs([input]);
        empty.push(...none);
        files.map((file) => resolve(file)).forEach(add);
      }
    }
  } finally {
    client?.destroy();
  }
  return { sources, empty };
}

/** Reads sources (local paths or s3:// objects) into bytes, refusing inputs over `maxBytes`. */
export class SourceReader {
  private client: S3Client | undefined;

  constructor(
    private readonly s3: S3Settings = {},
    private readonly maxBytes: number = DEFAULT_MAX_BYTES,
  ) {}

  async read(source: string): Promise<Buffer> {
    if (isS3Url(source)) return readS3Object((this.client ??= createS3Client(this.s3)), source, this.maxBytes);
    return (await readImageBytes(source, this.maxBytes, source)).bytes;
  }

  close(): void {
    this.client?.destroy();
    this.client = undefined;
  }
}
