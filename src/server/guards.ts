/**
 * Which requests a web browser may make the server act on, decided before anything else runs:
 *
 *   Host     The name the client used must be one this server answers for, else 421 HOST_NOT_ALLOWED (for
 *            every route). This stops DNS rebinding: a page on attacker.example whose name is made to resolve to
 *            127.0.0.1 reaches the server as `Host: attacker.example`, same-origin to the browser, and could read
 *            the library. Always answered: IP literals (`127.0.0.1:8080`, `[::1]`, a LAN address: a rebinding page
 *            cannot send one), `localhost` and `*.localhost`. Any other name only when listed in `allowedHosts`
 *            (`--allowed-hosts`): `photos.example.com`, `.example.com` (the domain and its subdomains), or `*`.
 *            A request without a Host header (HTTP/1.0) is not a browser's and is answered.
 *
 *   Origin   A state-changing request (POST, PUT, PATCH, DELETE) sent by a browser from a page must come from
 *            the server's own origin (the Origin's host and port are the Host header) or one listed in
 *            `allowedOrigins` (`--allowed-origins`, or `*`), else 403 ORIGIN_NOT_ALLOWED. This stops cross-site
 *            request forgery: any page a user visits could otherwise post images into their local library, or
 *            delete from it. Not affected: requests without an Origin header (curl, SDKs, other servers: not a
 *            browser), and requests authenticated with an API key (a browser never attaches one on its own, so
 *            a request that carries a valid one was meant by whoever holds the key).
 *
 * The Host hook runs first (before authentication); the Origin hook after it, since it needs `request.viewer`.
 */
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export interface RequestGuardOptions {
  /** Host names answered besides IP literals and localhost: exact names, `.example.com` for a domain, `*` for any. */
  allowedHosts?: readonly string[];
  /** Origins (`scheme://host[:port]`) whose pages may send state-changing requests besides the server's own; `*` for any. */
  allowedOrigins?: readonly string[];
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Adds the Host check (call before the authentication hook). */
export function addHostCheck(app: FastifyInstance, allowedHosts: readonly string[] = []): void {
  const allowed = hostMatcher(allowedHosts);
  app.addHook('onRequest', async (request, reply) => {
    const host = request.headers.host;
    if (host === undefined || allowed(host)) return;
    refuse(reply);
    throw new PixelInfoError(
      ErrorCodes.HOST_NOT_ALLOWED,
      `this server does not answer for the host ${JSON.stringify(host.slice(0, 100))}; an operator may allow it with --allowed-hosts`,
      { subject: 'host' },
    );
  });
}

/** Adds the Origin check on state-changing requests (call after the authentication hook). */
export function addOriginCheck(app: FastifyInstance, allowedOrigins: readonly string[] = []): void {
  const listed = originMatcher(allowedOrigins);
  app.addHook('onRequest', async (request, reply) => {
    if (SAFE_METHODS.has(request.method)) return;
    const origin = request.headers.origin;
    if (origin === undefined || request.viewer.keyId !== null || isSameOrigin(origin, request) || listed(origin)) return;
    refuse(reply);
    throw new PixelInfoError(
      ErrorCodes.ORIGIN_NOT_ALLOWED,
      `${request.method} from a page of another origin (${JSON.stringify(origin.slice(0, 100))}) is not allowed; an operator may allow it with --allowed-origins`,
      { subject: 'origin' },
    );
  });
}

/** Refused before the body is read: the connection is not kept for whatever body may follow. */
function refuse(reply: FastifyReply): void {
  reply.header('connection', 'close');
}

/**
 * Checks the `--allowed-hosts` / `--allowed-origins` lists up front, so that a typo stops the server at start
 * rather than refusing every request. Returns them normalised (lower case, origins without a trailing slash).
 */
export function checkGuardOptions(options: RequestGuardOptions): Required<RequestGuardOptions> {
  const allowedHosts = (options.allowedHosts ?? []).map((h) => h.trim().toLowerCase()).filter(Boolean);
  for (const h of allowedHosts) {
    if (h !== '*' && !/^\.?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?$/.test(h)) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `--allowed-hosts: ${JSON.stringify(h)} is not a host name (example.com, .example.com or *)`, {
        subject: 'allowedHosts',
      });
    }
  }
  const allowedOrigins = (options.allowedOrigins ?? []).map((o) => o.trim().toLowerCase().replace(/\/+$/, '')).filter(Boolean);
  for (const o of allowedOrigins) {
    if (o !== '*' && o !== 'null' && parseOrigin(o) === undefined) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `--allowed-origins: ${JSON.stringify(o)} is not an origin (https://app.example.com[:port] or *)`, {
        subject: 'allowedOrigins',
      });
    }
  }
  return { allowedHosts, allowedOrigins };
}

/** Whether a Host header names this server: IP literals, localhost names, and the listed names. */
export function hostMatcher(allowedHosts: readonly string[]): (hostHeader: string) => boolean {
  const { allowedHosts: list } = checkGuardOptions({ allowedHosts });
  if (list.includes('*')) return () => true;
  return (hostHeader) => {
    const name = hostName(hostHeader);
    if (name === undefined) return false;
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost')) return true;
    return list.some((entry) => (entry.startsWith('.') ? name === entry.slice(1) || name.endsWith(entry) : name === entry.replace(/\.$/, '')));
  };
}

function originMatcher(allowedOrigins: readonly string[]): (origin: string) => boolean {
  const { allowedOrigins: list } = checkGuardOptions({ allowedOrigins });
  if (list.includes('*')) return () => true;
  return (origin) => {
    const o = origin.trim().toLowerCase();
    if (o === 'null') return list.includes('null');
    const parsed = parseOrigin(o);
    return parsed !== undefined && list.some((entry) => entry !== 'null' && parseOrigin(entry) === parsed);
  };
}

/** Same origin: the Origin's host and port are those of the Host header the request came in with. */
function isSameOrigin(origin: string, request: FastifyRequest): boolean {
  const host = request.headers.host;
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  // Behind a TLS-terminating proxy the page is https:// while the request reaches us over http: compare
  // host and port, taking a missing port as the scheme's default.
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const hostPort = splitHost(host.trim().toLowerCase());
  if (!hostPort) return false;
  const candidates = hostPort.port ? [hostPort.port] : ['80', '443'];
  return url.hostname.replace(/^\[(.*)\]$/, '$1') === hostPort.name && candidates.includes(port);
}

/** `scheme://host:port` with the default port made explicit, or undefined when `origin` is not an http(s) origin. */
function parseOrigin(origin: string): string | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash || url.username) return undefined;
  return `${url.protocol}//${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

/** The host name of a Host header (lower case, IPv6 without brackets), or undefined when it cannot be one. */
function hostName(hostHeader: string): string | undefined {
  const parsed = splitHost(hostHeader.trim().toLowerCase());
  return parsed?.name;
}

/** `name[:port]` or `[v6][:port]` → its parts (an IPv6 name without its brackets). */
function splitHost(host: string): { name: string; port?: string } | undefined {
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/.exec(host);
  if (v6) return { name: v6[1], port: v6[2] };
  const m = /^([a-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(host);
  if (!m) return undefined;
  return { name: m[1].replace(/\.$/, ''), port: m[2] };
}
