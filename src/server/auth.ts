/**
 * Who is asking: API keys on the `/v1` routes.
 *
 * Without any key in the library (embedded use, `pixel-info serve` on loopback), every caller is EVERYONE and
 * sees everything, as before keys existed. Once a key exists (`pixel-info keys create`), every `/v1` route
 * needs one, presented as `Authorization: Bearer <key>` or `X-API-Key: <key>`:
 *
 *   no key presented           401 UNAUTHENTICATED, `WWW-Authenticate: Bearer realm="pixel-info"`
 *   unknown or revoked key     401 UNAUTHENTICATED, `WWW-Authenticate: Bearer ..., error="invalid_token"`
 *   a valid key                `request.viewer` = that key's viewer (its own images; an admin key: all)
 *
 * Health, readiness, metrics, the OpenAPI document and the web page stay public: they reveal nothing stored.
 *
 * Whether any key exists is asked of the store at most once per `keysCacheMs` (2 s by default), so a key
 * created or revoked with the CLI applies within that time on every replica, without a query per request.
 * Presented keys are checked against the store on every request, so a revoked key stops working at once.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { EVERYONE, type LibraryStore, type Viewer } from '../library/index.js';
import { errorResponse } from './schemas.js';

export const DEFAULT_KEYS_CACHE_MS = 2000;

/** The realm named in WWW-Authenticate challenges. */
const REALM = 'pixel-info';

export interface AuthOptions {
  /** How long the answer to "does any key exist?" is reused, ms; 0 asks the store on every request. */
  keysCacheMs?: number;
}

/** The OpenAPI security schemes of the API (src/server/openapi.ts names them in the document's components). */
export const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: 'An API key (`pixel-info keys create`) as `Authorization: Bearer <key>`' },
  apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The same API key as an `X-API-Key` header' },
} as const;

/**
 * Decorates `request.viewer` and adds the hook that sets it before any route runs (add it before the routes,
 * after the hooks that may answer first, such as the graceful stop). Each /v1 route added afterwards is
 * documented as taking a key, with its 401 and 429 answers.
 */
export function addAuthentication(app: FastifyInstance, options: AuthOptions = {}): void {
  const keysExist = cachedKeyPresence(app.library, options.keysCacheMs ?? DEFAULT_KEYS_CACHE_MS);
  app.addHook('onRoute', documentKeys);
  app.decorateRequest('viewer', null as unknown as Viewer);
  app.addHook('onRequest', async (request, reply) => {
    request.viewer = EVERYONE;
    if (!isProtected(request) || !(await keysExist())) return;
    const presented = presentedKey(request);
    if (presented === undefined) {
      reply.header('www-authenticate', `Bearer realm="${REALM}"`);
      throw new PixelInfoError(ErrorCodes.UNAUTHENTICATED, 'this server needs an API key: send it as "Authorization: Bearer <key>" or "X-API-Key: <key>"');
    }
    const viewer = await app.library.verifyKey(presented);
    if (!viewer) {
      reply.header('www-authenticate', `Bearer realm="${REALM}", error="invalid_token"`);
      throw new PixelInfoError(ErrorCodes.UNAUTHENTICATED, 'the API key is unknown or has been revoked');
    }
    request.viewer = viewer;
  });
}

/** FORBIDDEN unless the request's key is an admin key (or no keys are configured). */
export function requireAdmin(request: FastifyRequest, what: string): void {
  if (!request.viewer.admin) throw new PixelInfoError(ErrorCodes.FORBIDDEN, `${what} needs an admin API key`);
}

/**
 * The key a request presents: `Authorization: Bearer <key>` (the scheme in any case), else `X-API-Key`;
 * undefined when it presents none. A header that is there but empty or malformed counts as a key that is
 * not valid, so the caller learns it was rejected rather than missing.
 */
export function presentedKey(request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const { authorization, 'x-api-key': apiKey } = request.headers;
  if (typeof authorization === 'string' && authorization.trim()) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim());
    return match ? match[1] : '';
  }
  if (typeof apiKey === 'string') return apiKey.trim();
  if (Array.isArray(apiKey)) return ''; // given twice: ambiguous, rejected
  return undefined;
}

/** A /v1 route's schema gains the security requirement and the 401 and 429 answers (for the OpenAPI document). */
function documentKeys(route: RouteOptions): void {
  if (!isApiPath(route.url) || !route.schema || route.schema.hide) return;
  route.schema = {
    ...route.schema,
    security: [{ bearer: [] }, { apiKey: [] }, {}], // {}: without keys configured, none is needed
    response: {
      ...(route.schema.response as object),
      401: errorResponse('API keys are configured and the request has none, or an unknown or revoked one (UNAUTHENTICATED)'),
      429: errorResponse("Over the key's rate limit (RATE_LIMITED); Retry-After says when to try again"),
    },
  };
}

/** Whether `path` (a route pattern or a request path) is the API proper, `/v1/...`. */
export function isApiPath(path: string): boolean {
  return path === '/v1' || path.startsWith('/v1/');
}

/** Whether the request is for the API proper (`/v1/...`), matched or not: those need a key once keys exist. */
function isProtected(request: FastifyRequest): boolean {
  // The matched route's pattern when there is one (percent-encoding cannot disguise it), else the raw path.
  return isApiPath(request.routeOptions.url ?? request.url.split('?')[0]);
}

/**
 * `store.hasKeys()`, reused for `ttlMs`. Concurrent callers share one query; a failed query is not cached
 * (and fails the request: without knowing, the server cannot tell who may see what).
 */
export function cachedKeyPresence(store: Pick<LibraryStore, 'hasKeys'>, ttlMs: number): () => Promise<boolean> {
  let cached: { value: boolean; until: number } | undefined;
  let pending: Promise<boolean> | undefined;
  return async () => {
    if (cached && performance.now() < cached.until) return cached.value;
    pending ??= store.hasKeys().then(
      (value) => {
        cached = { value, until: performance.now() + ttlMs };
        pending = undefined;
        return value;
      },
      (err: unknown) => {
        pending = undefined;
        throw err;
      },
    );
    return pending;
  };
}

/**
 * Whether `host` (a `listen` address) accepts connections only from this machine: 127.0.0.0/8, ::1 and
 * `localhost`. Anything else (0.0.0.0, ::, a LAN address, a host name) is reachable from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.replace(/^::ffff:/, '');
  return /^127(?:\.\d{1,3}){3}$/.test(v4);
}
