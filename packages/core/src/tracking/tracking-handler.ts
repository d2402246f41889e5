import { type Logger, safeLogger } from '../logger/logger.js';
import type { MailStore } from '../store/mail-store.js';
import { type MachineRules, machineReason, truncateIp } from './classify-hit.js';
import { verifyToken } from './tracking-token.js';
import type { TrackingEventDetail, TrackingKeys, TrackingTokenPayload } from './tracking-types.js';

export interface TrackingHandlerOptions {
  /** Where events and suppressions go: the service's or mailer's store (`service.store`). */
  store: MailStore;
  /** The keys the mailer signs with (`tracking.keys`). */
  keys: TrackingKeys;
  /** The path the routes live under, e.g. `/mail` for `https://t.example.com/mail/o/…`. Default: the root. */
  basePath?: string;
  /**
   * What to keep of the client's address: `truncate` (IPv4 /24, IPv6 /48; the default), `full`, or `none`. The
   * address comes from `context.ip` (the Node adapter passes the socket's), or from `X-Forwarded-For` with `trustProxy`.
   */
  ip?: 'truncate' | 'full' | 'none';
  /** Read the client address from the last `X-Forwarded-For` entry, the one your proxy added (only behind a proxy you run). Default false. */
  trustProxy?: boolean;
  machine?: MachineRules;
  /** pino-compatible, redacted. A failure to record never changes the answer. */
  logger?: Logger;
  /**
   * How long the pixel and the redirect wait for their event to be recorded before they are served anyway (the
   * recording goes on). Default 1.5 s: a slow or stuck store never keeps a reader waiting.
   */
  recordTimeoutMs?: number;
  /** For tests. */
  now?: () => Date;
}

/** Per request, what the platform knows that a `Request` does not carry. */
export interface TrackingRequestContext {
  ip?: string | undefined;
}

export type TrackingHandler = (request: Request, context?: TrackingRequestContext) => Promise<Response>;

// A 1x1 transparent GIF.
const PIXEL = Uint8Array.from(Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64'));
const NO_STORE = { 'cache-control': 'no-store, no-cache, must-revalidate, private, max-age=0', pragma: 'no-cache', expires: '0' };
const ROUTE = /^\/(o|c|u)\/([A-Za-z0-9_.~-]{1,8192})$/;

/**
 * The tracking routes as a web-standard handler (Node 18+, Deno, Bun, edge functions, Hono, Next.js route handlers):
 * - `GET|HEAD /o/<token>` — the 1x1 GIF, never cached; records an `opened` event.
 * - `GET|HEAD /c/<token>` — `302` to the URL inside the token (and only there); records a `clicked` event.
 * - `GET|HEAD /u/<token>` — a page asking to confirm; changes nothing. `POST /u/<token>` (RFC 8058 one-click, no
 *   cookie needed) suppresses the address for its owner at once and records `unsubscribed`.
 * Events a machine made (HEAD, prefetch, scanners, privacy proxies, instant or all-links clicks) are recorded with
 * `machine: true` and the reason, and never counted as a person's. A token that does not verify gets `400`; an
 * unknown path `404`. Recording failures are logged; the pixel and the redirect are served regardless.
 */
export function createTrackingHandler(options: TrackingHandlerOptions): TrackingHandler {
  const logger = safeLogger(options.logger);
  const now = options.now ?? (() => new Date());
  const basePath = (options.basePath ?? '').replace(/\/+$/, '');

  return async (request, context = {}) => {
    const url = new URL(request.url);
    if (basePath && !url.pathname.startsWith(`${basePath}/`)) return text(404, 'Not found');
    const match = ROUTE.exec(url.pathname.slice(basePath.length));
    if (!match) return text(404, 'Not found');
    const [, route, token] = match as unknown as [string, 'o' | 'c' | 'u', string];
    const method = request.method.toUpperCase();
    const allowed = route === 'u' ? ['GET', 'HEAD', 'POST'] : ['GET', 'HEAD'];
    if (!allowed.includes(method)) return new Response('Method not allowed', { status: 405, headers: { allow: allowed.join(', ') } });
    const payload = await verifyToken(options.keys, token);
    const expected = route === 'o' ? 'open' : route === 'c' ? 'click' : 'unsubscribe';
    if (!payload || payload.kind !== expected) return text(400, 'This link is not valid.');

    const hit = { method, headers: request.headers, ip: clientIp(request, context, options.trustProxy ?? false), at: now() };
    if (payload.kind === 'open') {
      await withinTime(record(options, logger, payload, hit, {}), options.recordTimeoutMs ?? 1_500);
      return new Response(method === 'HEAD' ? null : PIXEL, { status: 200, headers: { 'content-type': 'image/gif', 'content-length': String(PIXEL.length), ...NO_STORE } });
    }
    if (payload.kind === 'click') {
      const location = redirectTarget(payload.url);
      if (!location) return text(400, 'This link is not valid.');
      await withinTime(record(options, logger, payload, hit, { link: payload.link, url: payload.url }), options.recordTimeoutMs ?? 1_500);
      return new Response(null, { status: 302, headers: { location, 'referrer-policy': 'no-referrer', ...NO_STORE } });
    }
    if (method !== 'POST') return html(200, confirmPage(url.pathname));
    await unsubscribe(options, logger, payload, hit);
    return html(200, page('You are unsubscribed', `<p>${escapeHtml(payload.address)} will get no more email from this sender.</p>`));
  };
}

interface HitInfo {
  method: string;
  headers: Headers;
  ip: string | undefined;
  at: Date;
}

async function record(
  options: TrackingHandlerOptions,
  logger: Logger,
  payload: Extract<TrackingTokenPayload, { kind: 'open' | 'click' }>,
  hit: HitInfo,
  extra: Pick<TrackingEventDetail, 'link' | 'url'>,
): Promise<void> {
  try {
    const { store } = options;
    const record = await store.outbox.get(payload.ownerId, payload.messageId);
    const burstWindow = options.machine?.burstWindowMs ?? 2_000;
    const classify = (otherLinkJustClicked: boolean) =>
      machineReason({ ...hit, now: hit.at, kind: payload.kind, sentAt: record?.status === 'sent' ? record.updatedAt : undefined, otherLinkJustClicked }, options.machine);
    let reason = classify(false);
    // The message's earlier clicks are read only for a click no cheaper rule has already called a machine's.
    if (reason === undefined && payload.kind === 'click') {
      const clicks = await store.events.list(payload.ownerId, { messageId: payload.messageId, type: 'clicked' });
      reason = classify(clicks.some((c) => c.detail.link !== payload.link && hit.at.getTime() - c.at.getTime() < burstWindow));
    }
    await store.events.append({
      ownerId: payload.ownerId,
      messageId: payload.messageId,
      type: payload.kind === 'open' ? 'opened' : 'clicked',
      // The handler's clock, so a burst is measured between hits, whatever the store's clock says.
      at: hit.at,
      attempt: record?.attempt ?? 0,
      detail: detailOf(options, hit, reason, extra),
    });
  } catch (err) {
    logger.error({ err, messageId: payload.messageId, kind: payload.kind }, 'could not record a tracking event');
  }
}

async function unsubscribe(options: TrackingHandlerOptions, logger: Logger, payload: Extract<TrackingTokenPayload, { kind: 'unsubscribe' }>, hit: HitInfo): Promise<void> {
  const { store } = options;
  // Once is enough: a repeated POST (a client retrying, a second click) changes nothing and counts nothing, and a
  // suppression the user added by hand keeps its reason.
  if ((await store.suppressions.find(payload.ownerId, [payload.address])).length) return;
  // The suppression is the promise made to the recipient: it is written first, and its failure is not hidden.
  await store.suppressions.add({ ownerId: payload.ownerId, address: payload.address, reason: 'unsubscribe', detail: { messageId: payload.messageId } });
  try {
    await store.audit.append({
      ownerId: payload.ownerId,
      agentId: undefined,
      action: 'suppression_add',
      outcome: 'ok',
      actor: 'recipient (one-click unsubscribe)',
      messageId: payload.messageId,
      detail: { address: payload.address, reason: 'unsubscribe' },
    });
    await options.store.events.append({
      ownerId: payload.ownerId,
      messageId: payload.messageId,
      type: 'unsubscribed',
      at: hit.at,
      attempt: 0,
      detail: detailOf(options, hit, undefined, { address: payload.address }),
    });
  } catch (err) {
    logger.error({ err, messageId: payload.messageId }, 'could not record an unsubscribe event (the address is suppressed)');
  }
}

function detailOf(options: TrackingHandlerOptions, hit: HitInfo, reason: TrackingEventDetail['reason'], extra: Partial<TrackingEventDetail>): Record<string, unknown> {
  const mode = options.ip ?? 'truncate';
  const ip = mode === 'none' ? undefined : mode === 'full' ? hit.ip : truncateIp(hit.ip);
  const userAgent = hit.headers.get('user-agent')?.slice(0, 500);
  const detail: TrackingEventDetail = { machine: reason !== undefined, ...(reason ? { reason } : {}), ...(userAgent ? { userAgent } : {}), ...(ip ? { ip } : {}), ...extra };
  return detail as unknown as Record<string, unknown>;
}

/** The signed URL as an ASCII header value (percent-encoded as a browser would), or undefined when it is no http(s) URL. */
function redirectTarget(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves when `work` settles or after `ms`, whichever is first; leaves no timer behind. */
async function withinTime(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function clientIp(request: Request, context: TrackingRequestContext, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    // The last entry is the one the proxy itself appended; the ones before it are whatever the client sent.
    const forwarded = request.headers.get('x-forwarded-for')?.split(',').at(-1)?.trim();
    if (forwarded) return forwarded;
  }
  return context.ip;
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...NO_STORE } });
}

function html(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'", ...NO_STORE },
  });
}

function confirmPage(path: string): string {
  return page(
    'Unsubscribe',
    `<p>Stop getting email from this sender?</p><form method="post" action="${escapeHtml(path)}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><meta name="robots" content="noindex"><title>${title}</title></head><body style="font-family:sans-serif;max-width:30em;margin:3em auto">${`<h1>${title}</h1>`}${body}</body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
