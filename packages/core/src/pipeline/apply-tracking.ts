import { ConfigError } from '../errors/config-error.js';
import type { NormalizedEmail } from '../message/normalize-email.js';
import { rewriteHtml } from '../tracking/rewrite-html.js';
import { assertTrackingKeys, signToken } from '../tracking/tracking-token.js';
import type { TrackingKeys, TrackingOptions } from '../tracking/tracking-types.js';

/** Tracking options checked once, when the mailer is made. */
export interface ResolvedTracking {
  /** Without a trailing slash. */
  baseUrl: string;
  keys: TrackingKeys;
  opens: boolean;
  clicks: boolean;
  unsubscribe: false | { mailto: string | undefined; footer: boolean };
}

/** Checks tracking options: an https base URL (http only for a loopback host), keys of a usable length. */
export function resolveTracking(options: TrackingOptions | undefined): ResolvedTracking | undefined {
  if (options === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    throw new ConfigError('tracking.baseUrl must be an absolute URL such as https://t.example.com/mail', { setting: 'tracking.baseUrl' });
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    // Mail clients and RFC 8058 one-click unsubscribe need https; plain http is for a local test server only.
    throw new ConfigError('tracking.baseUrl must use https (http only for 127.0.0.1 or localhost)', { setting: 'tracking.baseUrl' });
  }
  if (url.search || url.hash) throw new ConfigError('tracking.baseUrl must not have a query or fragment', { setting: 'tracking.baseUrl' });
  assertTrackingKeys(options.keys);
  const unsubscribe = options.unsubscribe ?? true;
  const mailto = typeof unsubscribe === 'object' ? unsubscribe.mailto : undefined;
  if (mailto !== undefined && !/^[^\s@<>,]+@[^\s@<>,]+$/.test(mailto)) {
    throw new ConfigError('tracking.unsubscribe.mailto must be an address such as unsubscribe@example.com', { setting: 'tracking.unsubscribe.mailto' });
  }
  const resolved = {
    baseUrl: url.href.replace(/\/+$/, ''),
    opens: options.opens ?? true,
    clicks: options.clicks ?? true,
    unsubscribe: unsubscribe === false ? false : { mailto, footer: typeof unsubscribe === 'object' ? (unsubscribe.footer ?? false) : false },
  } as ResolvedTracking;
  // The HMAC keys are secrets: readable by the stage, absent from util.inspect, JSON and spreads of the mailer.
  Object.defineProperty(resolved, 'keys', { value: options.keys, enumerable: false });
  return resolved;
}

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The tracking stage of the pipeline: links of the HTML part through the click route, the open pixel, and the
 * one-click unsubscribe headers (and footer). Needs the record's id, assigned before composing, so the tokens can
 * name it. Unsubscribe is added only to a message with exactly one recipient: a link in a message to several
 * could not tell whom to suppress. A `List-Unsubscribe` the caller set stays as set.
 */
export function applyTracking(email: NormalizedEmail, tracking: ResolvedTracking, ids: { ownerId: string; messageId: string }): void {
  const flags = email.tracking ?? {};
  const recipients = [...email.to, ...email.cc, ...email.bcc];
  const callerHasUnsubscribe = Object.keys(email.headers).some((name) => name.toLowerCase() === 'list-unsubscribe');
  const unsubscribe = tracking.unsubscribe && flags.unsubscribe !== false && recipients.length === 1 && !callerHasUnsubscribe ? tracking.unsubscribe : undefined;
  const route = (path: 'o' | 'c' | 'u', token: string) => `${tracking.baseUrl}/${path}/${token}`;

  let unsubscribeUrl: string | undefined;
  if (unsubscribe) {
    unsubscribeUrl = route('u', signToken(tracking.keys, { kind: 'unsubscribe', ownerId: ids.ownerId, messageId: ids.messageId, address: recipients[0]!.address }));
    const mailto = unsubscribe.mailto ? `, <mailto:${unsubscribe.mailto}?subject=unsubscribe>` : '';
    email.headers = { ...email.headers, 'List-Unsubscribe': `<${unsubscribeUrl}>${mailto}`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' };
    if (unsubscribe.footer && email.text !== undefined) email.text = `${email.text}\n\n--\nUnsubscribe: ${unsubscribeUrl}\n`;
  }

  if (email.html === undefined) return;
  const clicks = tracking.clicks && flags.clicks !== false;
  const opens = tracking.opens && flags.opens !== false;
  const footer =
    unsubscribeUrl && unsubscribe?.footer
      ? `<p style="font-size:12px;color:#666"><a href="${escapeHtml(unsubscribeUrl)}" data-agent-smtp-unsubscribe>Unsubscribe</a></p>`
      : undefined;
  if (!clicks && !opens && !footer) return;
  // A link too long to fit in a token stays as it is rather than failing the send.
  const clickUrl = (url: string, index: number): string | undefined => {
    try {
      // The URL as a browser resolves it (IRIs percent-encoded, IDNs punycoded): a redirect header holds bytes, not text.
      const href = new URL(url).href;
      return route('c', signToken(tracking.keys, { kind: 'click', ownerId: ids.ownerId, messageId: ids.messageId, link: index, url: href }));
    } catch {
      return undefined;
    }
  };
  email.html = rewriteHtml(email.html, {
    ...(clicks ? { link: (url: string, index: number) => clickUrl(url, index) } : {}),
    ...(opens ? { pixelUrl: route('o', signToken(tracking.keys, { kind: 'open', ownerId: ids.ownerId, messageId: ids.messageId })) } : {}),
    ...(footer ? { footerHtml: footer } : {}),
  }).html;
}
