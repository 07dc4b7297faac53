/**
 * Hooks every route shares, added on the root instance before the resource plugins so that they apply to all:
 * security headers, one log line and the request metrics per request, and the graceful stop.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCodes } from '../errors.js';
import type { ServerMetrics } from './metrics.js';

/** The web app loads only its own files: no inline script or style, no framing. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
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
