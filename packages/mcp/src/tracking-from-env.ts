import { createHash } from 'node:crypto';
import { ConfigError, type TrackingKeys } from '@agent-smtp/core';
import { trackingBasePath } from './http-server.js';

/** The environment variables the CLI reads tracking from. */
export const TRACKING_ENV = {
  url: 'AGENT_SMTP_TRACKING_URL',
  secret: 'AGENT_SMTP_TRACKING_SECRET',
  previousSecret: 'AGENT_SMTP_TRACKING_SECRET_PREVIOUS',
} as const;

/** What the CLI needs to track: the mailer's `tracking` options, and the path the HTTP server serves the routes under. */
export interface TrackingFromEnv {
  baseUrl: string;
  keys: TrackingKeys;
  basePath: string;
}

const MIN_SECRET_CHARS = 32;
const MAKE_SECRET = 'e.g. the output of `openssl rand -base64 32`';

/**
 * Tracking from the environment, or undefined when none of its variables is set. Throws `ConfigError` naming the
 * variable for anything incomplete or unusable; a secret's value never appears in a message, only its length.
 *
 * Each secret's key id is derived from the secret itself (`k` and 8 characters of its SHA-256), not fixed as `k1`:
 * a token names the key that signed it, so after a rotation (new secret in `AGENT_SMTP_TRACKING_SECRET`, old one in
 * `…_PREVIOUS`) tokens already in inboxes still name the old key, and find it. The id says nothing usable about the
 * secret: every token in every email already lets anyone test a guess of it against its HMAC.
 */
export function trackingFromEnv(env: Record<string, string | undefined>): TrackingFromEnv | undefined {
  const url = env[TRACKING_ENV.url]?.trim() || undefined;
  const secret = env[TRACKING_ENV.secret]?.trim() || undefined;
  const previous = env[TRACKING_ENV.previousSecret]?.trim() || undefined;
  if (!url && !secret && !previous) return undefined;
  if (!url || !secret) {
    const missing = [!url ? TRACKING_ENV.url : undefined, !secret ? TRACKING_ENV.secret : undefined].filter((v) => v !== undefined);
    const given = [url ? TRACKING_ENV.url : undefined, secret ? TRACKING_ENV.secret : undefined, previous ? TRACKING_ENV.previousSecret : undefined].filter((v) => v !== undefined);
    throw new ConfigError(
      `${given.join(' and ')} ${given.length > 1 ? 'are' : 'is'} set but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not: ` +
        `tracking needs ${TRACKING_ENV.url} (the public URL of the tracking routes, e.g. https://mail.example.com/t) and ${TRACKING_ENV.secret} ` +
        `(32+ random bytes, ${MAKE_SECRET}). Set ${missing.join(' and ')}, or unset ${given.join(' and ')} to send without tracking.`,
      { setting: missing[0]! },
    );
  }
  const baseUrl = parseTrackingUrl(url);
  const current = keyId(checkSecret(secret, TRACKING_ENV.secret));
  const keys: Record<string, string> = { [current]: secret };
  if (previous) keys[keyId(checkSecret(previous, TRACKING_ENV.previousSecret))] = previous;
  return { baseUrl: baseUrl.href.replace(/\/+$/, ''), keys: { current, keys }, basePath: trackingBasePath(baseUrl.pathname, TRACKING_ENV.url, `The path ${JSON.stringify(baseUrl.pathname)} of ${TRACKING_ENV.url}`) };
}

function parseTrackingUrl(text: string): URL {
  const name = TRACKING_ENV.url;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${name} is ${JSON.stringify(text)} but must be an absolute URL such as https://mail.example.com/t.`, { setting: name });
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  // Mail clients and one-click unsubscribe (RFC 8058) want https; plain http only for a local test.
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new ConfigError(`${name} is ${JSON.stringify(text)} but must use https:// (http:// only for 127.0.0.1 or localhost): put the server behind an HTTPS proxy.`, { setting: name });
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(`${name} is ${JSON.stringify(text)} but must have no query, fragment or credentials: give the routes' base, such as https://mail.example.com/t.`, { setting: name });
  }
  return url;
}

function checkSecret(secret: string, name: string): string {
  if (secret.length >= MIN_SECRET_CHARS) return secret;
  throw new ConfigError(`${name} is ${secret.length} characters but must be at least ${MIN_SECRET_CHARS} (32 random bytes as base64, ${MAKE_SECRET}).`, { setting: name });
}

function keyId(secret: string): string {
  return `k${createHash('sha256').update(`agent-smtp tracking key id\0${secret}`).digest('base64url').slice(0, 8)}`;
}
