import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import type { TrackingKeys, TrackingTokenPayload } from './tracking-types.js';

// Signing runs in the send pipeline, once per link, so it is synchronous (node:crypto, Buffer). Verifying runs in the
// tracking handler, which may be deployed to an edge runtime, so it uses only WebCrypto, TextDecoder and its own base64.
// (The webcrypto import is a type only, erased from the build.)
type CryptoKey = webcrypto.CryptoKey;

/**
 * Token format: `<payload>.<kid>.<sig>`, where
 * - `payload` is base64url (no padding) of the UTF-8 JSON array `["o", ownerId, messageId]` (open),
 *   `["c", ownerId, messageId, link, url]` (click) or `["u", ownerId, messageId, address]` (unsubscribe);
 * - `kid` is the id of the key that signed it (letters, digits, `_`, `-`);
 * - `sig` is base64url (no padding, 43 characters) of HMAC-SHA256(key, `<payload>.<kid>`), the token before its last dot.
 * The signature covers the exact characters of payload and key id, so any change to them is refused. A later format
 * uses other kind codes; tokens of unknown kinds are refused.
 */
export const MAX_TRACKING_TOKEN_LENGTH = 8192;
/** A key is at least this many bytes (HMAC-SHA256's block of security: 256 bits). */
export const MIN_TRACKING_KEY_BYTES = 32;

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const SIGNATURE_CHARS = 43; // 32 bytes, base64url without padding
const MAX_ID = 512;
const MAX_ADDRESS = 998; // a header line's limit; an address is far shorter
const MAX_URL = MAX_TRACKING_TOKEN_LENGTH;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Throws `ConfigError` naming `tracking.keys…` unless every key id is URL-safe, every key is 32+ bytes and `current` is among them. */
export function assertTrackingKeys(keys: TrackingKeys): void {
  rawKeys(keys);
}

/**
 * Signs `payload` with the current key. Synchronous. Throws `ConfigError` for bad keys, and `ValidationError` for a
 * payload a verifier would refuse (an empty id, a link index that is not a non-negative integer, a URL that is not
 * http(s)) or whose token would pass `MAX_TRACKING_TOKEN_LENGTH` (a link that long is best left untracked).
 */
export function signToken(keys: TrackingKeys, payload: TrackingTokenPayload): string {
  const problem = payloadProblem(payload);
  if (problem) throw ValidationError.of(`tracking token ${problem.field}`, problem.message);
  const key = signingKey(keys);
  const body = `${Buffer.from(JSON.stringify(toWire(payload))).toString('base64url')}.${keys.current}`;
  const token = `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
  if (token.length > MAX_TRACKING_TOKEN_LENGTH) {
    throw ValidationError.of('tracking token', `would be ${token.length} characters, over the ${MAX_TRACKING_TOKEN_LENGTH} a verifier accepts (the URL or address is too long to track)`);
  }
  return token;
}

/**
 * The payload of a token signed by any of `keys` (current or retired), or undefined for a token that is altered,
 * truncated, too long, signed by an unknown key, or malformed. Never throws for a bad token; throws `ConfigError` only
 * for bad keys. Constant-time comparison (WebCrypto `verify`); imported keys are cached per keys object.
 */
export async function verifyToken(keys: TrackingKeys, token: string): Promise<TrackingTokenPayload | undefined> {
  if (typeof token !== 'string' || token.length > MAX_TRACKING_TOKEN_LENGTH) return undefined;
  const sigDot = token.lastIndexOf('.');
  const kidDot = sigDot > 0 ? token.lastIndexOf('.', sigDot - 1) : -1;
  if (kidDot <= 0 || token.indexOf('.') !== kidDot) return undefined;
  const kid = token.slice(kidDot + 1, sigDot);
  const signature = token.slice(sigDot + 1);
  if (signature.length !== SIGNATURE_CHARS) return undefined;
  const raw = rawKeys(keys);
  if (!KEY_ID.test(kid) || !raw.has(kid)) return undefined;
  const sigBytes = base64UrlDecode(signature);
  // Only the canonical spelling: the last character's unused low bits must be zero, or two tokens would verify as one.
  if (!sigBytes || base64UrlEncode(sigBytes) !== signature) return undefined;
  let valid: boolean;
  try {
    valid = await crypto.subtle.verify('HMAC', await importedKey(keys, kid, raw.get(kid)!), sigBytes, utf8.encode(token.slice(0, sigDot)));
  } catch {
    return undefined;
  }
  if (!valid) return undefined;
  return parsePayload(token.slice(0, kidDot));
}

/**
 * What a token says, WITHOUT checking its signature: only for tokens this process wrote into a stored message (to
 * show a person deciding on it where its links really go). Never for a token that came in with a request.
 */
export function readOwnToken(token: string): TrackingTokenPayload | undefined {
  if (typeof token !== 'string' || token.length > MAX_TRACKING_TOKEN_LENGTH) return undefined;
  const dot = token.indexOf('.');
  return dot > 0 ? parsePayload(token.slice(0, dot)) : undefined;
}

// ─── payload ──────────────────────────────────────────────────────────────────────────────────────────────────────

type Wire = ['o', string, string] | ['c', string, string, number, string] | ['u', string, string, string];

function toWire(payload: TrackingTokenPayload): Wire {
  switch (payload.kind) {
    case 'open':
      return ['o', payload.ownerId, payload.messageId];
    case 'click':
      return ['c', payload.ownerId, payload.messageId, payload.link, payload.url];
    case 'unsubscribe':
      return ['u', payload.ownerId, payload.messageId, payload.address];
  }
}

function parsePayload(encoded: string): TrackingTokenPayload | undefined {
  const bytes = base64UrlDecode(encoded);
  if (!bytes) return undefined;
  let wire: unknown;
  try {
    wire = JSON.parse(utf8Decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (!Array.isArray(wire)) return undefined;
  const [kind, ownerId, messageId, a, b] = wire as unknown[];
  let payload: TrackingTokenPayload;
  if (kind === 'o' && wire.length === 3) payload = { kind: 'open', ownerId, messageId } as TrackingTokenPayload;
  else if (kind === 'c' && wire.length === 5) payload = { kind: 'click', ownerId, messageId, link: a, url: b } as TrackingTokenPayload;
  else if (kind === 'u' && wire.length === 4) payload = { kind: 'unsubscribe', ownerId, messageId, address: a } as TrackingTokenPayload;
  else return undefined;
  return payloadProblem(payload) ? undefined : payload;
}

/** The first field a verifier would refuse, or undefined. Checks every field's type and bounds, whoever built it. */
function payloadProblem(payload: TrackingTokenPayload): { field: string; message: string } | undefined {
  if (typeof payload !== 'object' || payload === null) return { field: 'payload', message: 'must be an object' };
  const p = payload as Record<string, unknown>;
  if (!isText(p.ownerId, MAX_ID)) return { field: 'ownerId', message: `must be a string of 1 to ${MAX_ID} characters` };
  if (!isText(p.messageId, MAX_ID)) return { field: 'messageId', message: `must be a string of 1 to ${MAX_ID} characters` };
  switch (p.kind) {
    case 'open':
      return undefined;
    case 'click':
      if (typeof p.link !== 'number' || !Number.isSafeInteger(p.link) || p.link < 0) return { field: 'link', message: 'must be an integer of 0 or more' };
      if (!isText(p.url, MAX_URL) || !isHttpUrl(p.url)) return { field: 'url', message: 'must be an http: or https: URL' };
      return undefined;
    case 'unsubscribe':
      if (!isText(p.address, MAX_ADDRESS) || !p.address.includes('@')) return { field: 'address', message: 'must be an email address' };
      return undefined;
    default:
      return { field: 'kind', message: 'must be "open", "click" or "unsubscribe"' };
  }
}

const isText = (value: unknown, max: number): value is string => typeof value === 'string' && value.length > 0 && value.length <= max;
const isHttpUrl = (url: string) => /^https?:/i.test(url);

// ─── keys ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Decoded keys per keys object, read again when its `keys` object or `current` is replaced (keys are read-only: to
 * rotate, pass a new `keys` record).
 */
const decodedCache = new WeakMap<object, { keys: object; current: string; raw: Map<string, Uint8Array>; signing: KeyObject }>();
const importedCache = new WeakMap<object, Map<string, { secret: Uint8Array; key: Promise<CryptoKey> }>>();

function signingKey(keys: TrackingKeys): KeyObject {
  rawKeys(keys);
  return decodedCache.get(keys)!.signing;
}

function rawKeys(keys: TrackingKeys): Map<string, Uint8Array> {
  const cached = typeof keys === 'object' && keys !== null ? decodedCache.get(keys) : undefined;
  if (cached && cached.keys === keys.keys && cached.current === keys.current) return cached.raw;
  if (!keys || typeof keys !== 'object' || !keys.keys || typeof keys.keys !== 'object') {
    throw new ConfigError('tracking.keys must be { current: "k1", keys: { k1: "<32+ random bytes, base64>" } }.', { setting: 'tracking.keys' });
  }
  const entries = Object.entries(keys.keys);
  const raw = new Map<string, Uint8Array>();
  for (const [id, secret] of entries) {
    if (!KEY_ID.test(id)) {
      throw new ConfigError(
        `tracking.keys.keys has the key id ${JSON.stringify(id.slice(0, 80))}; a key id is 1 to 32 letters, digits, "_" or "-" (it is part of every tracking URL).`,
        { setting: 'tracking.keys.keys' },
      );
    }
    raw.set(id, decodeKey(id, secret));
  }
  if (typeof keys.current !== 'string' || !raw.has(keys.current)) {
    throw new ConfigError(
      `tracking.keys.current is ${JSON.stringify(keys.current)} but must name one of tracking.keys.keys (${raw.size ? [...raw.keys()].join(', ') : 'none given'}).`,
      { setting: 'tracking.keys.current' },
    );
  }
  decodedCache.set(keys, { keys: keys.keys, current: keys.current, raw, signing: createSecretKey(raw.get(keys.current)!) });
  return raw;
}

/** Base64 (standard or URL-safe) of 32+ bytes is decoded; any other string of 32+ characters is used as its UTF-8. */
function decodeKey(id: string, secret: unknown): Uint8Array {
  const setting = `tracking.keys.keys.${id}`;
  const make = 'e.g. the output of `openssl rand -base64 32`';
  if (typeof secret !== 'string' || secret.trim() === '') {
    const what = secret === undefined || secret === null ? 'not set (undefined)' : typeof secret === 'string' ? 'empty' : `a ${typeof secret}`;
    throw new ConfigError(
      `${setting} is ${what}: if it comes from an environment variable, that variable is unset or empty here. Give 32 random bytes as base64, ${make}.`,
      { setting },
    );
  }
  const decoded = looseBase64Decode(secret.trim());
  if (decoded && decoded.length >= MIN_TRACKING_KEY_BYTES) return decoded;
  if (secret.length >= MIN_TRACKING_KEY_BYTES) return utf8.encode(secret);
  // The key itself is never repeated, only its length.
  throw new ConfigError(
    `${setting} is ${secret.length} characters but must be at least ${MIN_TRACKING_KEY_BYTES} bytes of randomness: give 32 random bytes as base64, ${make}.`,
    { setting },
  );
}

function importedKey(keys: TrackingKeys, kid: string, secret: Uint8Array): Promise<CryptoKey> {
  let perKeys = importedCache.get(keys);
  if (!perKeys) importedCache.set(keys, (perKeys = new Map()));
  const hit = perKeys.get(kid);
  if (hit && hit.secret === secret) return hit.key;
  // Not extractable: once imported, the key cannot be read back out of the CryptoKey.
  const key = crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  perKeys.set(kid, { secret, key });
  return key;
}

// ─── base64url ────────────────────────────────────────────────────────────────────────────────────────────────────

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

function base64UrlEncode(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  if (i + 1 === bytes.length) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (i + 2 === bytes.length) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/** Strict base64url without padding; undefined for any other character or an impossible length. */
function base64UrlDecode(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c]! : -1;
    if (v < 0) return undefined;
    value = ((value << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >> bits) & 0xff;
    }
  }
  return out;
}

/** Standard or URL-safe base64, padded or not (for keys only). */
function looseBase64Decode(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return undefined;
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 61) end--;
  if (text.length !== end && text.length % 4 !== 0) return undefined;
  return base64UrlDecode(text.slice(0, end).replace(/\+/g, '-').replace(/\//g, '_'));
}
