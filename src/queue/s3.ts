/**
 * S3 inputs (`s3://bucket/key`), through the AWS SDK v3: listing a prefix when a job is submitted, reading one
 * object when a worker captions it. Credentials and region come from the standard AWS sources (environment
 * variables, shared config files, instance roles); the endpoint from `--s3-endpoint`, else AWS_ENDPOINT_URL_S3 /
 * AWS_ENDPOINT_URL, else AWS itself. A custom endpoint (MinIO, Ceph, a local test server) is addressed path-style.
 */
import { GetObjectCommand, ListObjectsV2Command, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { IMAGE_EXTENSIONS } from '../pipeline/inputs.js';

export interface S3Settings {
  /** e.g. http://127.0.0.1:9000; undefined: AWS's own endpoints. */
  endpoint?: string;
}

export interface S3Location {
  bucket: string;
  key: string;
}

const S3_URL = /^s3:\/\/([^/]+)\/?(.*)$/;

export function isS3Url(input: string): boolean {
  return input.startsWith('s3://');
}

/** s3://bucket/key → { bucket, key } (key may be empty: the whole bucket); INVALID_ARGUMENT when malformed. */
export function parseS3Url(url: string): S3Location {
  const m = S3_URL.exec(url);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${url}: not an S3 URL (expected s3://bucket/key or s3://bucket/prefix)`, { subject: url });
  }
  return { bucket: m[1], key: m[2] };
}

/** `--s3-endpoint` if given, else the endpoint variables the AWS tools read. */
export function s3SettingsFrom(endpointOption?: string): S3Settings {
  const endpoint = endpointOption?.trim() || process.env.AWS_ENDPOINT_URL_S3?.trim() || process.env.AWS_ENDPOINT_URL?.trim() || undefined;
  return { endpoint };
}

/** An S3 client for `settings`; the region defaults to us-east-1 when none is configured. */
export function createS3Client(settings: S3Settings = {}): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    forcePathStyle: settings.endpoint !== undefined,
    region: process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
    maxAttempts: 3,
  });
}

/**
 * The image objects under `s3://bucket/prefix`, as s3:// URLs sorted by key (a URL naming one object gives that
 * object). Keys without an image extension are skipped, like files in a folder.
 */
export async function listS3Images(client: S3Client, url: string): Promise<string[]> {
  const { bucket, key: prefix } = parseS3Url(url);
  const urls: string[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        if (object.Key && !object.Key.endsWith('/') && IMAGE_EXTENSIONS.test(object.Key)) urls.push(`s3://${bucket}/${object.Key}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } catch (err) {
    throw s3Error(err, url, 'list');
  }
  return urls.sort();
}

/**
 * The bytes of one object. A missing object or bucket is FILE_NOT_FOUND, an empty one FILE_EMPTY, one over
 * `maxBytes` IMAGE_TOO_LARGE (all permanent, like the same faults of a file); anything else (access denied, the
 * service unreachable) is IO_ERROR, which a worker retries.
 */
export async function readS3Object(client: S3Client, url: string, maxBytes: number): Promise<Buffer> {
  const { bucket, key } = parseS3Url(url);
  if (!key) throw new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${url}: names a bucket, not an object`, { subject: url });
  let response;
  try {
    response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    throw s3Error(err, url, 'read');
  }
  const length = response.ContentLength;
  if (length !== undefined && length > maxBytes) {
    response.Body?.transformToWebStream().cancel().catch(() => {});
    throw new PixelInfoError(ErrorCodes.IMAGE_TOO_LARGE, `${url}: ${length} bytes is more than the ${maxBytes}-byte limit`, { subject: url });
  }
  let bytes: Buffer;
  try {
    bytes = Buffer.from((await response.Body?.transformToByteArray()) ?? []);
  } catch (err) {
    throw s3Error(err, url, 'read');
  }
  if (bytes.length === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, `${url}: object is empty (0 bytes)`, { subject: url });
  if (bytes.length > maxBytes) throw new PixelInfoError(ErrorCodes.IMAGE_TOO_LARGE, `${url}: ${bytes.length} bytes is more than the ${maxBytes}-byte limit`, { subject: url });
  return bytes;
}

function s3Error(err: unknown, url: string, what: 'list' | 'read'): PixelInfoError {
  const name = (err as Error)?.name ?? 'Error';
  const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
  if (name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'NotFound' || status === 404) {
    const what = name === 'NoSuchBucket' ? 'no such bucket' : 'no such object';
    return new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${url}: ${what}`, { subject: url, cause: err });
  }
  const reason = status ? `${name}, HTTP ${status}` : name;
  return new PixelInfoError(ErrorCodes.IO_ERROR, `${url}: cannot ${what} (${reason}: ${(err as Error)?.message ?? err})`, { subject: url, cause: err });
}
