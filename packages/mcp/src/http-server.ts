import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';
import { ConfigError, createMailTools, DEFAULT_LIMITS, type Logger, type Mailer, type MailService, safeLogger, toNodeListener, type TrackingHandler } from '@agent-smtp/core';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { type JSONRPCMessage, type RequestId, isJSONRPCNotification, isJSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { createMcpServer, type McpCaller } from './create-mcp-server.js';
import { RequestBudget, type RequestTicket } from './request-budget.js';
import { maxRequestBytesFor } from './stdio-transport.js';
import { VERSION } from './version.js';

/**
 * Finds whom a request to `/mcp` acts for, e.g. by looking up its bearer token (hash it with `hashMcpToken` and
 * keep only hashes). `undefined` refuses the request with `401`. Called before the body is read.
 */
export type McpAuthenticate = (request: IncomingMessage) => Promise<McpCaller | undefined>;

export interface McpHttpServerOptions {
  /** One user: every request's tools send through this mailer. Give this or `service`. */
  mailer?: Mailer;
  /**
   * Many users: each request's tools act for the caller its bearer token maps to (`tokens` or `authenticate`),
   * through that owner's servers and records only. Give this or `mailer`.
   */
  service?: MailService;
  /** Interface to bind. Default `127.0.0.1`. Anything but a loopback address requires `token`, `tokens` or `authenticate`. */
  host?: string;
  /** Port to bind; `0` picks a free one (read it from the result). Default `8000`. */
  port?: number;
  /**
   * One shared secret: `/mcp` requires `Authorization: Bearer <token>`, and every request acts for the mailer's
   * owner. The CLI reads it from `AGENT_SMTP_MCP_TOKEN`. Not with `tokens` or `authenticate`.
   */
  token?: string;
  /**
   * Bearer tokens, each mapped to the owner (and agent) it acts for. Only their SHA-256 hashes are kept; a
   * presented token is hashed and compared with every entry in constant time. An unknown token gets `401`.
   */
  tokens?: Readonly<Record<string, McpCaller>>;
  /** Your own lookup (e.g. hashed tokens in your database) instead of `tokens`. */
  authenticate?: McpAuthenticate;
  /** pino-compatible; everything logged through it is redacted. Default: logs nothing. */
  logger?: Logger;
  /**
   * Largest request body, in bytes; a larger one gets `413`. Default `maxRequestBytesFor(DEFAULT_LIMITS.maxMessageBytes)`
   * (about 20 MiB), so that every email the default limits accept fits, base64 attachments and JSON escaping included.
   * A mailer with other `limits.maxMessageBytes` wants `maxRequestBytesFor(thatLimit)`.
   */
  maxRequestBytes?: number;
  /**
   * Bytes of request bodies held at once, across all requests in flight (a request holds its body's bytes until its
   * response is sent). Over it, a request gets `503` with `Retry-After`. Default 32 MiB; at least `maxRequestBytes`.
   */
  maxInFlightBytes?: number;
  /** Requests to `/mcp` in flight at once; over it, `503` with `Retry-After`. Default 32. */
  maxConcurrentRequests?: number;
  /** Seconds a refused client is told to wait (`Retry-After`). Default 1. */
  retryAfterSeconds?: number;
  /**
   * Also serve the tracking routes (`<basePath>/o/…`, `/c/…`, `/u/…`) that `createTrackingHandler` answers: give it
   * the same `basePath`, and the mailer's or service's store. These routes are public: they need no bearer token
   * and accept any Host header (a reverse proxy passes the public one), since recipients' mail clients and browsers
   * reach them through the public URL. `basePath` (e.g. `/t`) must not be `/`, nor hold or lie under `/mcp` or `/health`.
   */
  tracking?: { handler: TrackingHandler; basePath: string };
}

export interface McpHttpServer {
  /** The MCP endpoint, `http://host:port/mcp`, with the port actually bound: what a client connects to. */
  url: string;
  /** `http://host:port/health`. */
  healthUrl: string;
  port: number;
  /** What is in flight now: requests to `/mcp` being read or answered, and the bytes of their bodies. */
  inFlight(): { requests: number; bytes: number };
  /** Stops accepting connections and resolves once the requests in flight have finished. */
  close(): Promise<void>;
}

/** The SHA-256 of a bearer token, hex: what to store in a token table instead of the token itself. */
export function hashMcpToken(token: string): string {
  return sha256(token).toString('hex');
}

/** The environment variable the CLI reads the bearer token from; named in the error when one is needed. */
export const MCP_TOKEN_ENV = 'AGENT_SMTP_MCP_TOKEN';

const CLOSE_GRACE_MS = 5_000;
const DEFAULT_MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_CONCURRENT_REQUESTS = 32;
const DEFAULT_RETRY_AFTER_SECONDS = 1;

/** True for `localhost`, `127.0.0.0/8`, `::1` (with or without brackets) and IPv4-mapped `::ffff:127.x.y.z`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

/**
 * Throws `ConfigError` (setting `AGENT_SMTP_MCP_TOKEN`) when `host` is reachable from other machines and no token
 * protects it: the tools send real email, so an open port would be an open relay for anyone who finds it.
 * `auth` is the token, or whether requests are authenticated some other way (`tokens`, `authenticate`).
 */
export function assertSafeBinding(host: string, auth: string | boolean | undefined): void {
  if (auth || isLoopbackHost(host)) return;
  throw new ConfigError(
    `Refusing to listen on ${host} without a token: anyone who can reach it could send email. ` +
      `Set ${MCP_TOKEN_ENV} to a long random secret (clients send it as "Authorization: Bearer <token>"), or bind to 127.0.0.1.`,
    { setting: MCP_TOKEN_ENV },
  );
}

/**
 * Serves the agent-smtp tools over stateless Streamable HTTP at `POST /mcp` (JSON responses, no sessions: each
 * request gets a fresh `McpServer`), and `GET /health`. Resolves once listening.
 */
export async function startMcpHttpServer(options: McpHttpServerOptions): Promise<McpHttpServer> {
  const { mailer, service } = options;
  // `[::1]` is how a URL writes an IPv6 address; listen() wants it bare.
  const host = (options.host ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  const requestedPort = options.port ?? 8000;
  const logger = safeLogger(options.logger);
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65_535) {
    throw new ConfigError(`port is ${String(requestedPort)} but must be a whole number from 0 to 65535.`, { setting: 'port' });
  }
  const authenticate = authenticator(options);
  assertSafeBinding(host, authenticate !== undefined);
  const limits = requestLimits(options);
  const budget = new RequestBudget(limits.maxConcurrentRequests, limits.maxInFlightBytes);
  const loopback = isLoopbackHost(host);
  const inFlightCalls = new InFlightCalls();
  const tracking = trackingRoutes(options.tracking);
  // Made once: each request gets a fresh McpServer, but the tools (plain data over the mailer or service) and the
  // JSON Schemas `tools/list` converts from them are the same for every request.
  const tools = createMailTools(service ?? mailer!, { logger: options.logger });

  // Filled in once listening, so that port 0 checks the port actually bound.
  let allowedHosts = new Set<string>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]!;
    // The tracking routes skip the Host/Origin checks and the token below, on purpose. They are public by design:
    // a recipient's mail client or browser reaches them through the public URL, usually via a proxy that passes its
    // own Host, and carries no token. That opens nothing a rebinding page or a stranger could use: the handler acts
    // only on what a token signed with the tracking secret says (record an open or click of that message, redirect
    // to that message's link, suppress that recipient), a forged or altered token gets 400 and changes nothing, and
    // a valid token does only what its recipient can do from the internet anyway. The listener reads at most 4 KB of
    // a body (a one-click POST), so these routes cannot hold the memory `/mcp` budgets. A request routed here never
    // reaches `/mcp`, whatever its path says after the prefix (the handler answers 404).
    if (tracking && (path === tracking.basePath || path.startsWith(`${tracking.basePath}/`))) {
      tracking.serve(req, res);
      return;
    }
    // DNS rebinding: a web page can make a browser send requests to 127.0.0.1 under the attacker's host name.
    // Only names that mean this machine are accepted while bound to loopback.
    if (loopback && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      sendJson(res, 403, rpcError(-32000, `Forbidden: Host header ${JSON.stringify(req.headers.host ?? '')} is not this server.`));
      return;
    }
    // A browser names the page that sent a request: only a page of this server itself may call it.
    const origin = req.headers.origin;
    if (loopback && origin !== undefined && !allowedHosts.has(originHost(origin))) {
      sendJson(res, 403, rpcError(-32000, `Forbidden: requests from ${JSON.stringify(origin)} are not allowed.`));
      return;
    }
    if (path === '/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { error: 'Method not allowed: use GET.' }, { Allow: 'GET, HEAD' });
        return;
      }
      sendJson(res, 200, health(mailer));
      return;
    }
    if (path !== '/mcp') {
      sendJson(res, 404, { error: `Not found: ${path}. The MCP endpoint is POST /mcp; health is GET /health.` });
      return;
    }
    let caller: Caller = ANYONE;
    if (authenticate !== undefined) {
      const found = await authenticate(req);
      if (found === undefined) {
        const challenge = req.headers.authorization === undefined ? 'Bearer realm="agent-smtp"' : 'Bearer realm="agent-smtp", error="invalid_token"';
        sendJson(res, 401, rpcError(-32001, 'Unauthorized: send "Authorization: Bearer <token>" with a valid token.'), { 'WWW-Authenticate': challenge });
        return;
      }
      caller = found;
    }
    if (req.method !== 'POST') {
      // Stateless: no standalone SSE stream (GET) and no session to end (DELETE).
      sendJson(res, 405, rpcError(-32000, 'Method not allowed.'), { Allow: 'POST' });
      return;
    }

    const declared = contentLength(req);
    if (declared !== undefined && declared > limits.maxRequestBytes) {
      req.resume();
      sendJson(res, 413, rpcError(-32000, tooLarge(limits.maxRequestBytes)), { Connection: 'close' });
      return;
    }
    // Admitted before the body is read, so a refused request costs no memory: its body is drained, not kept.
    const ticket = budget.admit(declared ?? 0);
    if (!ticket) {
      refuseBusy(req, res);
      return;
    }
    res.once('close', ticket.release);
    const body = await readBody(req, limits.maxRequestBytes, declared === undefined ? ticket : undefined);
    if (body === 'too-large') {
      sendJson(res, 413, rpcError(-32000, tooLarge(limits.maxRequestBytes)), { Connection: 'close' });
      return;
    }
    if (body === 'busy') {
      refuseBusy(req, res);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      sendJson(res, 400, rpcError(-32700, 'Parse error: the body is not valid JSON.'));
      return;
    }

    // Stateless: a client's cancellation arrives in a request of its own, so it is handed to the server running the call.
    if (isCancellation(parsed)) {
      inFlightCalls.cancel(caller, parsed);
      res.writeHead(202, { 'Cache-Control': 'no-store' }).end();
      return;
    }

    const server = createMcpServer({ ...(service ? { service } : { mailer: mailer! }), tools, logger: options.logger });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    let call: { remove(): void } | undefined;
    res.on('close', () => {
      call?.remove();
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    // Registered once connected, so a cancellation always finds the server ready to abort the call.
    if (isJSONRPCRequest(parsed as JSONRPCMessage) && !res.destroyed && !res.writableEnded) call = inFlightCalls.add(caller, (parsed as { id: RequestId }).id, transport, res);
    await transport.handleRequest(withAuthInfo(req, caller), res, parsed);
  };

  const refuseBusy = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    logger.warn({ inFlight: budget.inFlight, maxConcurrentRequests: budget.maxRequests, maxInFlightBytes: budget.maxBytes }, 'MCP HTTP request refused: busy');
    sendJson(
      res,
      503,
      rpcError(-32000, `Server busy: too many requests, or too many bytes of them, in flight. Retry after ${limits.retryAfterSeconds} s.`),
      { 'Retry-After': String(limits.retryAfterSeconds) },
    );
  };

  const httpServer: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err, method: req.method, url: req.url }, 'MCP HTTP request failed');
      if (!res.headersSent) sendJson(res, 500, rpcError(-32603, 'Internal server error.'));
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(requestedPort, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const urlHost = formatHost(host);
  allowedHosts = new Set(
    ['127.0.0.1', 'localhost', '[::1]', urlHost.toLowerCase()].flatMap((name) => (port === 80 ? [name, `${name}:80`] : [`${name}:${port}`])),
  );
  const origin = `http://${urlHost}:${port}`;
  const url = `${origin}/mcp`;
  if (tracking) logger.debug({ basePath: tracking.basePath }, 'tracking routes served');
  logger.debug({ url, auth: options.tokens ? 'token table' : options.authenticate ? 'authenticate' : options.token ? 'bearer' : 'none' }, 'MCP HTTP server listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    healthUrl: `${origin}/health`,
    port,
    inFlight: () => budget.inFlight,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        const force = setTimeout(() => httpServer.closeAllConnections(), CLOSE_GRACE_MS);
        force.unref();
        httpServer.close((err) => {
          clearTimeout(force);
          if (err) reject(err);
          else resolve();
        });
        httpServer.closeIdleConnections();
      });
      return closing;
    },
  };
}

function trackingRoutes(tracking: McpHttpServerOptions['tracking']): { basePath: string; serve: ReturnType<typeof toNodeListener> } | undefined {
  if (tracking === undefined) return undefined;
  if (typeof tracking?.handler !== 'function') {
    throw new ConfigError('tracking.handler must be the function createTrackingHandler({ store, keys, basePath }) returns.', { setting: 'tracking.handler' });
  }
  return { basePath: trackingBasePath(tracking.basePath), serve: toNodeListener(tracking.handler) };
}

/**
 * `basePath` without its trailing slashes, or `ConfigError` (naming `setting`) when it is not a plain absolute path,
 * or when it would take `/mcp` or `/health` (the root, `/mcp`, `/health`, or a path beneath either). `label` names
 * the path in the message.
 */
export function trackingBasePath(basePath: string, setting = 'tracking.basePath', label = `${setting} ${JSON.stringify(basePath)}`): string {
  const path = typeof basePath === 'string' ? basePath.replace(/\/+$/, '') : '';
  const segments = path.split('/').slice(1);
  if (typeof basePath !== 'string' || !basePath.startsWith('/') || /[?#\s\\]/.test(basePath) || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new ConfigError(`${label} is not a plain path: give one such as /t (segments, no query, fragment or spaces).`, { setting });
  }
  for (const own of ['/mcp', '/health']) {
    if (path === '' || path === own || path.startsWith(`${own}/`) || own.startsWith(`${path}/`)) {
      throw new ConfigError(`${label} would take over ${own}: serve the tracking routes under a path of their own, such as /t.`, { setting });
    }
  }
  return path;
}

function health(mailer: Mailer | undefined): Record<string, unknown> {
  // Many users: their servers are theirs, not for an endpoint that needs no token.
  if (mailer === undefined) return { status: 'ok', name: 'agent-smtp', version: VERSION };
  // Names and states only: hosts, ports and usernames stay off an endpoint that needs no token. Names are the ones
  // status() and the tools use; a default name (`smtp-<n>`) holds no host.
  const servers = mailer.status().servers.map((s) => ({ name: s.name, state: s.state, healthy: s.healthy }));
  return { status: 'ok', name: 'agent-smtp', version: VERSION, servers };
}

/** A request that needs no token (`ANYONE`: no token, or the single shared token), or the caller its token maps to. */
type Caller = McpCaller | typeof ANYONE;
const ANYONE = Symbol('anyone');

/** How requests are authenticated, or undefined when they are not (loopback only). */
function authenticator(options: McpHttpServerOptions): ((req: IncomingMessage) => Promise<Caller | undefined>) | undefined {
  const { token, tokens, authenticate } = options;
  const ways = [token ? 'token' : undefined, tokens ? 'tokens' : undefined, authenticate ? 'authenticate' : undefined].filter((w) => w !== undefined);
  if (ways.length > 1) {
    throw new ConfigError(`startMcpHttpServer got ${ways.join(' and ')}: give one way to authenticate requests.`, { setting: ways[1]! });
  }
  if ((options.mailer === undefined) === (options.service === undefined)) {
    throw new ConfigError('startMcpHttpServer needs exactly one of mailer (one user) or service (many users).', { setting: options.mailer ? 'service' : 'mailer' });
  }
  // A service serves many users: without a caller per request, every call would be refused.
  if (options.service && !tokens && !authenticate) {
    throw new ConfigError(
      'startMcpHttpServer with a service needs tokens (each bearer token mapped to { ownerId, agentId }) or authenticate(request), so each request acts for its own user.',
      { setting: 'tokens' },
    );
  }
  if (token) {
    const expected = sha256(token);
    return async (req) => {
      const presented = bearerToken(req.headers.authorization);
      return presented !== undefined && timingSafeEqual(sha256(presented), expected) ? ANYONE : undefined;
    };
  }
  if (tokens) {
    const table = tokenTable(tokens);
    return async (req) => {
      const presented = bearerToken(req.headers.authorization);
      return presented === undefined ? undefined : table(presented);
    };
  }
  if (authenticate) {
    return async (req) => {
      const caller = await authenticate(req);
      if (caller !== undefined && (typeof caller.ownerId !== 'string' || caller.ownerId === '')) {
        throw new ConfigError('authenticate() returned a caller without ownerId: return { ownerId, agentId? }, or undefined to refuse the request.', { setting: 'authenticate' });
      }
      return caller;
    };
  }
  return undefined;
}

/**
 * Keeps only the SHA-256 of each token. A lookup hashes the presented token and compares it with every entry, never
 * stopping early, so its time says nothing about which entries are close.
 */
function tokenTable(tokens: Readonly<Record<string, McpCaller>>): (presented: string) => McpCaller | undefined {
  const entries = Object.entries(tokens).map(([token, caller]) => {
    if (token.length === 0) throw new ConfigError('tokens has an empty token: every token must be a long random secret.', { setting: 'tokens' });
    if (typeof caller?.ownerId !== 'string' || caller.ownerId === '') {
      throw new ConfigError('tokens maps a token to a caller without ownerId: map each token to { ownerId, agentId? }.', { setting: 'tokens' });
    }
    return { digest: sha256(token), caller: { ownerId: caller.ownerId, ...(caller.agentId ? { agentId: caller.agentId } : {}) } };
  });
  if (entries.length === 0) throw new ConfigError('tokens is empty: no request could ever be served.', { setting: 'tokens' });
  return (presented) => {
    const digest = sha256(presented);
    let found: McpCaller | undefined;
    for (const entry of entries) if (timingSafeEqual(digest, entry.digest)) found = entry.caller;
    return found;
  };
}

/** Hands the caller to the MCP SDK the way its own auth middleware does (`req.auth`), so tools see it in `authInfo`. */
function withAuthInfo(req: IncomingMessage, caller: Caller): IncomingMessage & { auth?: AuthInfo } {
  if (caller === ANYONE) return req;
  // The token itself stays out: nothing downstream needs it, and whatever holds it could leak it.
  const auth: AuthInfo = { token: '', clientId: caller.ownerId, scopes: [], extra: { ownerId: caller.ownerId, agentId: caller.agentId } };
  return Object.assign(req, { auth });
}

type CancelledNotification = { jsonrpc: '2.0'; method: 'notifications/cancelled'; params: { requestId?: RequestId; reason?: string } };

function isCancellation(message: unknown): message is CancelledNotification {
  return isJSONRPCNotification(message as JSONRPCMessage) && (message as { method: string }).method === 'notifications/cancelled';
}

/**
 * The tool calls being answered now, by caller and JSON-RPC id, so that a cancellation (a POST of its own in
 * stateless HTTP) reaches the MCP server running the call: the SDK then aborts the call's `signal`, and the send
 * stops if it has not reached a server. Only the caller's own calls can be cancelled. Two clients of one caller may
 * use the same id at once; a cancellation that could mean either is ignored, since MCP cancellation is best effort
 * and stopping someone else's email is worse than sending one.
 */
class InFlightCalls {
  private readonly calls = new Map<string, Set<{ transport: StreamableHTTPServerTransport; res: ServerResponse }>>();

  add(caller: Caller, id: RequestId, transport: StreamableHTTPServerTransport, res: ServerResponse): { remove(): void } {
    const key = callKey(caller, id);
    const entry = { transport, res };
    let set = this.calls.get(key);
    if (!set) this.calls.set(key, (set = new Set()));
    set.add(entry);
    return {
      remove: () => {
        set.delete(entry);
        if (set.size === 0 && this.calls.get(key) === set) this.calls.delete(key);
      },
    };
  }

  cancel(caller: Caller, notification: CancelledNotification): void {
    const id = notification.params?.requestId;
    if (id === undefined) return;
    const set = this.calls.get(callKey(caller, id));
    const only = set?.size === 1 ? [...set][0] : undefined;
    if (only === undefined) return;
    const { transport, res } = only;
    transport.onmessage?.(notification);
    // The SDK sends no response for a cancelled request, and the client stopped waiting for one: end the
    // request's HTTP response so it does not hold its connection and its share of the byte budget.
    if (!res.headersSent) res.writeHead(202, { 'Cache-Control': 'no-store' });
    res.end();
  }
}

function callKey(caller: Caller, id: RequestId): string {
  return JSON.stringify([caller === ANYONE ? null : [caller.ownerId, caller.agentId ?? null], id]);
}

function originHost(origin: string): string {
  try {
    const url = new URL(origin);
    return url.port ? `${url.hostname}:${url.port}`.toLowerCase() : url.hostname.toLowerCase();
  } catch {
    return '';
  }
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match?.[1];
}

// Hashing first gives timingSafeEqual two buffers of equal length, and leaks nothing about the token's length.
function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

interface RequestLimits {
  maxRequestBytes: number;
  maxInFlightBytes: number;
  maxConcurrentRequests: number;
  retryAfterSeconds: number;
}

function requestLimits(options: McpHttpServerOptions): RequestLimits {
  const limits = {
    maxRequestBytes: options.maxRequestBytes ?? maxRequestBytesFor(DEFAULT_LIMITS.maxMessageBytes),
    maxInFlightBytes: options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES,
    maxConcurrentRequests: options.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_REQUESTS,
    retryAfterSeconds: options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
  };
  for (const [setting, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ConfigError(`${setting} is ${String(value)} but must be a whole number of at least 1.`, { setting });
    }
  }
  if (limits.maxInFlightBytes < limits.maxRequestBytes) {
    throw new ConfigError(
      `maxInFlightBytes (${limits.maxInFlightBytes}) is less than maxRequestBytes (${limits.maxRequestBytes}): the largest request could never be served. Raise maxInFlightBytes or lower maxRequestBytes.`,
      { setting: 'maxInFlightBytes' },
    );
  }
  return limits;
}

function contentLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  const length = Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function tooLarge(maxRequestBytes: number): string {
  return `Request body larger than ${maxRequestBytes} bytes (maxRequestBytes): send smaller attachments, or a link to the files instead.`;
}

/**
 * Reads the body up to `maxBytes`. A body of unannounced length (chunked) takes its bytes from `ticket` as they
 * arrive, and stops with 'busy' when the budget runs out; an announced one was admitted for its whole length.
 */
function readBody(req: IncomingMessage, maxBytes: number, ticket: RequestTicket | undefined): Promise<Buffer | 'too-large' | 'busy'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (outcome: 'too-large' | 'busy'): void => {
      req.off('data', onData);
      req.resume();
      resolve(outcome);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) return stop('too-large');
      if (ticket && !ticket.grow(chunk.length)) return stop('busy');
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function rpcError(code: number, message: string): Record<string, unknown> {
  return { jsonrpc: '2.0', error: { code, message }, id: null };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function formatHost(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}
