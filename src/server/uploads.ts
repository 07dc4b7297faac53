/**
 * What an upload may cost the server, decided before its body is read and enforced while it is read.
 *
 *   admission   On POST /v1/captions, after authentication and before a byte of the body: a Content-Length over
 *               the body limit is 413 PAYLOAD_TOO_LARGE; no room for another captioning request (those admitted
 *               and not yet answered: body in flight, queued or running, at most maxQueue + maxBatch) or for its
 *               bytes (the declared sizes of admitted uploads, at most `uploadMemory`) is 503 OVERLOADED with
 *               Retry-After; a library quota the image would pass is 413 QUOTA_EXCEEDED (./quota.ts). A refused
 *               request is answered with `Connection: close`, so its body is never read into memory.
 *   pace        Any request with a body must deliver at least `minBytes` in every `windowMs` while it uploads; a
 *               client that stalls or trickles is cut (a 408 REQUEST_TIMEOUT is written if nothing was answered
 *               yet, then the connection is closed), counted in pixel_info_slow_clients_total{phase="body"}.
 *   buffers     Bodies are read into one buffer of the declared size (never more than the limit) rather than a
 *               list of chunks concatenated at the end, so an upload costs its size once.
 *
 * Headers get the same treatment from Node itself (`headersTimeout`, see app.ts).
 */
import type { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { MultipartFile } from '@fastify/multipart';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { ServerMetrics } from './metrics.js';

/** Room in a multipart body for boundaries, part headers and option fields around the file. */
export const MULTIPART_OVERHEAD = 64 * 1024;

export interface PaceOptions {
  /** The window over which an upload must make progress, ms. */
  windowMs: number;
  /** Bytes an upload must deliver in every window. */
  minBytes: number;
}

export const PACE_DEFAULTS: PaceOptions = { windowMs: 10_000, minBytes: 16 * 1024 };

/** How often an upload's progress is sampled, ms (the cut comes at most this late). */
const PACE_SAMPLE_MS = 1000;

/** Requests whose connection the pace rule closed (the server hung up, not the client). */
const cutForPace = new WeakSet<IncomingMessage>();

export function wasCutForPace(raw: IncomingMessage): boolean {
  return cutForPace.has(raw);
}

/** Adds the pace rule to every request that has a body. */
export function addUploadPace(app: FastifyInstance, metrics: ServerMetrics, options: PaceOptions = PACE_DEFAULTS): void {
  app.addHook('onRequest', async (request, reply) => {
    if (!hasBody(request.raw)) return;
    watchPace(request, reply, metrics, options);
  });
}

function watchPace(request: FastifyRequest, reply: FastifyReply, metrics: ServerMetrics, { windowMs, minBytes }: PaceOptions): void {
  const raw = request.raw;
  const socket = raw.socket;
  // (time, bytes read from the socket) samples covering the last window.
  const samples: Array<{ at: number; bytes: number }> = [{ at: performance.now(), bytes: socket.bytesRead }];
  const timer = setInterval(() => {
    if (raw.complete || socket.destroyed) return stop();
    const now = performance.now();
    samples.push({ at: now, bytes: socket.bytesRead });
    while (samples.length > 2 && now - samples[1].at >= windowMs) samples.shift();
    const oldest = samples[0];
    if (now - oldest.at < windowMs || socket.bytesRead - oldest.bytes >= minBytes) return;
    stop();
    metrics.slowClients.inc({ phase: 'body' });
    request.log.warn({ url: request.url, received: socket.bytesRead, windowMs, minBytes }, 'upload too slow: connection closed');
    cutForPace.add(raw);
    if (!reply.raw.headersSent) {
      const body = JSON.stringify({
        error: { code: ErrorCodes.REQUEST_TIMEOUT, message: `the upload sent less than ${minBytes} bytes in ${windowMs / 1000} s; the connection is closed` },
      });
      socket.end(`HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroySoon();
    setTimeout(() => socket.destroy(), 1000).unref(); // a client that does not read the 408 either
  }, PACE_SAMPLE_MS);
  timer.unref();
  const stop = () => clearInterval(timer);
  raw.once('end', stop);
  raw.once('close', stop);
}

/** Whether a request carries a body (a Content-Length above 0, or a chunked one). */
export function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return raw.headers['transfer-encoding'] !== undefined;
}

/** The declared Content-Length, or undefined (chunked, or not a number). */
export function declaredLength(raw: IncomingMessage): number | undefined {
  const value = raw.headers['content-length'];
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

export interface AdmissionOptions {
  /** Largest upload, bytes (the image; a multipart body may be MULTIPART_OVERHEAD larger). */
  bodyLimit: number;
  /** Captioning requests admitted at once (body in flight, queued or running). */
  maxAdmitted: number;
  /** Bytes of admitted uploads at once (their declared sizes; the body limit for a body of unknown size). */
  uploadMemory: number;
  /** Seconds a refused client should wait (Retry-After). */
  retryAfterSeconds: () => number;
  /** Told the bytes held after every change (./memory.ts gives memory back after a burst). */
  onHeld?: (bytes: number) => void;
}

/** What admitted captioning requests hold; each is released when its response is done or its client gone. */
export class UploadAdmission {
  private admitted = 0;
  private bytes = 0;

  constructor(private readonly options: AdmissionOptions) {}

  get inFlight(): { requests: number; bytes: number } {
    return { requests: this.admitted, bytes: this.bytes };
  }

  /**
   * Admits the request or throws (413, 503) before its body is read. `declared`: its Content-Length, if any.
   * The hold is released when the response is done or the connection closes, whichever is first.
   */
  admit(request: FastifyRequest, reply: FastifyReply): void {
    const { bodyLimit, maxAdmitted, uploadMemory } = this.options;
    const declared = declaredLength(request.raw);
    const limit = bodyLimit + (request.isMultipart() ? MULTIPART_OVERHEAD : 0);
    if (declared !== undefined && declared > limit) {
      reply.header('connection', 'close');
      lingerOnClose(request.raw);
      throw new PixelInfoError(ErrorCodes.PAYLOAD_TOO_LARGE, `the request is too large (${declared} bytes; the limit is ${bodyLimit} bytes)`);
    }
    const cost = Math.min(declared ?? limit, limit);
    if (this.admitted >= maxAdmitted) {
      throw this.overloaded(request, reply, `too many captioning requests in progress (${this.admitted} being received, queued or captioned; limit ${maxAdmitted}); retry later`);
    }
    if (this.bytes + cost > uploadMemory && this.admitted > 0) {
      throw this.overloaded(request, reply, `uploads in progress hold ${mb(this.bytes)} of the ${mb(uploadMemory)} they may use; retry later`);
    }
    this.admitted++;
    this.bytes += cost;
    this.options.onHeld?.(this.bytes);
    let held = true;
    reply.raw.once('close', () => {
      if (!held) return;
      held = false;
      this.admitted--;
      this.bytes -= cost;
      this.options.onHeld?.(this.bytes);
    });
  }

  private overloaded(request: FastifyRequest, reply: FastifyReply, message: string): PixelInfoError {
    reply.header('connection', 'close').header('retry-after', String(this.options.retryAfterSeconds()));
    lingerOnClose(request.raw);
    return new PixelInfoError(ErrorCodes.OVERLOADED, message);
  }
}

/** How long a refused upload's connection keeps draining after the answer, ms. */
export const LINGER_MS = 2000;

/**
 * A "lingering close" for a request refused before its body was read: when Node closes the connection after the
 * answer, the client is usually still sending that body, and closing a socket with unread bytes makes the kernel
 * send a reset, which can destroy the answer before the client reads it (the client then sees no status at all).
 * Instead the server half-closes (the answer and a FIN go out), keeps reading and discarding what still arrives, and
 * closes once the client does or after LINGER_MS. The bytes are discarded as they come: nothing accumulates.
 */
function lingerOnClose(raw: IncomingMessage): void {
  const socket = raw.socket;
  if (!socket || socket.destroyed) return;
  socket.destroySoon = function lingeringClose(this: typeof socket) {
    if (this.destroyed) return;
    if (this.writable) this.end();
    this.resume(); // discard the rest of the upload
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('end', () => {
      clearTimeout(timer);
      this.destroy();
    });
    this.once('close', () => clearTimeout(timer));
  };
}

function mb(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))} MB`;
}

/**
 * Reads a body stream into one buffer: of `expected` bytes when the size is declared, else grown as needed.
 * More than `limit` bytes is PAYLOAD_TOO_LARGE (the stream is left to its owner to discard).
 */
export async function readBounded(stream: Readable, limit: number, expected?: number): Promise<Buffer> {
  const tooLarge = () => new PixelInfoError(ErrorCodes.PAYLOAD_TOO_LARGE, `the request is too large (over the ${limit}-byte limit)`);
  if (expected !== undefined && expected > limit) throw tooLarge();
  let buffer = Buffer.allocUnsafe(Math.min(expected ?? 64 * 1024, limit));
  let length = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (length + chunk.length > limit) throw tooLarge();
    if (length + chunk.length > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(buffer.length * 2, length + chunk.length)));
      buffer.copy(grown, 0, 0, length);
      buffer = grown;
    }
    chunk.copy(buffer, length);
    length += chunk.length;
  }
  return length === buffer.length ? buffer : buffer.subarray(0, length);
}

/**
 * The image of a multipart request (POST /v1/captions, POST /v1/match): a file part must be the field `image`; it is
 * read up to `bodyLimit` bytes (PAYLOAD_TOO_LARGE beyond), stopping early when the declared length says so.
 */
export async function readImagePart(request: FastifyRequest, part: MultipartFile, bodyLimit: number): Promise<Buffer> {
  if (part.fieldname !== 'image') {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `form field "${part.fieldname.slice(0, 40)}": the image goes in a file field named "image"`, { subject: 'image' });
  }
  const expected = declaredLength(request.raw);
  const bytes = await readBounded(part.file, bodyLimit, expected === undefined ? undefined : Math.min(expected, bodyLimit));
  if (part.file.truncated) throw new PixelInfoError(ErrorCodes.PAYLOAD_TOO_LARGE, `the request is too large (over the ${bodyLimit}-byte limit)`);
  return bytes;
}
