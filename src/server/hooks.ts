/**
 * Hooks every route shares, added on the root instance before the resource plugins so that they apply to all:
 * security headers, one log line and the request metrics per request, and the graceful stop. (Who is asking is
 * decided by ./auth.ts, how often they may ask by ./rate-limit.ts.)
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCodes } from '../errors.js';
import type { ServerMetrics } from './metrics.js';

/** The web app loads only its own files: no inline script or style, no framing, forms post only here. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

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
