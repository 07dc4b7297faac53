/**
 * Hooks every route shares, added on the root instance before the resource plugins so that they apply to all:
 * security headers, one log line and the request metrics per request, requests abandoned by their client, and
 * the graceful stop. (Who is asking is decided by ./auth.ts, how often they may ask by ./rate-limit.ts, which
 * hosts and origins are answered by ./guards.ts, what an upload may cost by ./uploads.ts.)
 */
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, type ErrorCode } from '../errors.js';
import type { ServerMetrics } from './metrics.js';
import { wasCutForPace } from './uploads.js';

/** How far a request had got; the captioning route moves it along (`stage` of the abandoned-requests metric). */
export type RequestPhase = 'handling' | 'queued' | 'captioning' | 'storing';

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborts when the client closes the connection before the answer is sent. */
    clientGone: AbortSignal;
    phase: RequestPhase;
  }
}

/** The web app loads only its own files: no inline script or style, no framing, forms post only here; WebAssembly may compile (on-device captioning). */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * On every response: the CSP above; no MIME sniffing (an uploaded "image" is never run as a script or page);
 * no Referer to other sites (library URLs name image hashes); stored images readable only by this origin's
 * pages. No CORS headers are sent, so browsers keep other sites' scripts from reading any answer.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'x-frame-options': 'DENY',
  // Cross-origin isolation: the page may then use SharedArrayBuffer, which onnxruntime-web's WebAssembly threads need.
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
  });
}

/**
 * While the server stops, requests that still arrive on open connections get 503 OVERLOADED, and in-flight
 * responses close their connection: an idle keep-alive socket would otherwise hold the server open until
 * keepAliveTimeout.
 */
export function addGracefulClose(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('retry-after', '5');
    return reply.status(503).send({ error: { code: ErrorCodes.OVERLOADED, message: 'the server is shutting down' } });
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
}

/** Servers whose remaining connections were cut at the drain deadline (./drain.ts): those are not the clients' doing. */
const cutAtDeadline = new WeakSet<FastifyInstance>();

export function markCutAtDeadline(app: FastifyInstance): void {
  cutAtDeadline.add(app);
}

/**
 * A request whose client closes the connection before the answer is sent is abandoned: `request.clientGone`
 * aborts (the captioning route hands it to the batcher, which drops the image from the queue and discards a
 * result being computed), and it is counted in pixel_info_requests_abandoned_total{route, stage} and logged.
 * `stage` is `upload` while the body was still arriving, else `request.phase`. Connections the server closes
 * itself (a too-slow upload, the drain deadline) abort the signal too, but are reported where they are closed.
 */
export function addAbandonTracking(app: FastifyInstance, metrics: ServerMetrics): void {
  app.decorateRequest('clientGone', null as unknown as AbortSignal);
  app.decorateRequest('phase', 'handling');
  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController();
    request.clientGone = controller.signal;
    request.phase = 'handling';
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      const stage = request.raw.complete ? request.phase : 'upload';
      controller.abort();
      if (wasCutForPace(request.raw) || cutAtDeadline.has(app)) return;
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.abandoned.inc({ route, stage });
      request.log.info(
        { method: request.method, url: request.url, route, stage, ms: Math.round(reply.elapsedTime * 10) / 10 },
        'client closed the connection before the answer',
      );
    });
  });
}

/**
 * Node's answer to a connection whose request never became one (fastify's `clientErrorHandler`), in the API's
 * format: headers not complete within headersTimeout (or a whole request past requestTimeout) → 408
 * REQUEST_TIMEOUT, counted in pixel_info_slow_clients_total{phase="headers"}; headers too large → 431; a request
 * that is not HTTP → 400. Then the connection is closed.
 */
export function clientErrorHandler(metrics: ServerMetrics) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let answer: { status: number; reason: string; code: ErrorCode; message: string };
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      metrics.slowClients.inc({ phase: 'headers' });
      answer = { status: 408, reason: 'Request Timeout', code: ErrorCodes.REQUEST_TIMEOUT, message: 'the request was not received in time' };
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      answer = { status: 431, reason: 'Request Header Fields Too Large', code: ErrorCodes.INVALID_ARGUMENT, message: 'the request headers are too large' };
    } else {
      answer = { status: 400, reason: 'Bad Request', code: ErrorCodes.INVALID_ARGUMENT, message: 'malformed HTTP request' };
    }
    const body = JSON.stringify({ error: { code: answer.code, message: answer.message } });
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${answer.status} ${answer.reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(err);
  };
}

/** One JSON log line per request (`method`, `url`, `route`, `status`, `ms`), and the request count and latency metrics. */
export function addRequestLog(app: FastifyInstance, metrics: ServerMetrics): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, reply.elapsedTime / 1000);
    request.log.info({ method: request.method, url: request.url, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  });
}
