import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { assertTrackingKeys, MAX_TRACKING_TOKEN_LENGTH, signToken, verifyToken } from './tracking-token.js';
import type { TrackingKeys, TrackingTokenPayload } from './tracking-types.js';

const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('base64url');
const keys: TrackingKeys = { current: 'k1', keys: { k1: K1 } };
const rotated: TrackingKeys = { current: 'k2', keys: { k1: K1, k2: K2 } };

const payloads: TrackingTokenPayload[] = [
  { kind: 'open', ownerId: 'owner-1', messageId: 'msg_01' },
  { kind: 'click', ownerId: 'owner-1', messageId: 'msg_01', link: 3, url: 'https://example.com/a?b=1&c=%20#frag' },
  { kind: 'unsubscribe', ownerId: 'o', messageId: 'm', address: 'ada@example.com' },
  { kind: 'click', ownerId: 'ünïcode 🚀', messageId: 'm"\\', link: 0, url: 'HTTP://例え.jp/パス' },
];

/** base64url of a JSON value, as a token's payload part. */
const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A token signed the way signToken signs, over any payload text (to test what verify does with well-signed junk). */
const forge = (payloadPart: string, kid = 'k1', secret = Buffer.from(K1, 'base64')) =>
  `${payloadPart}.${kid}.${createHmac('sha256', secret).update(`${payloadPart}.${kid}`).digest('base64url')}`;

describe('signToken / verifyToken', () => {
  it('round-trips every kind of payload', async () => {
    for (const payload of payloads) {
      const token = signToken(keys, payload);
      expect(token).toMatch(/^[A-Za-z0-9_-]+\.k1\.[A-Za-z0-9_-]{43}$/);
      expect(await verifyToken(keys, token)).toEqual(payload);
    }
  });

  it('is deterministic and synchronous', () => {
    const a = signToken(keys, payloads[1]!);
    expect(typeof a).toBe('string');
    expect(signToken(keys, payloads[1]!)).toBe(a);
  });

  it('refuses every single-character change of a token', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %';
    let tried = 0;
    for (const payload of payloads.slice(0, 3)) {
      const token = signToken(keys, payload);
      const variants: string[] = [];
      for (let i = 0; i < token.length; i++) {
        for (const c of alphabet) if (c !== token[i]) variants.push(token.slice(0, i) + c + token.slice(i + 1));
        variants.push(token.slice(0, i) + token.slice(i + 1)); // deletion
        variants.push(`${token.slice(0, i)}A${token.slice(i)}`); // insertion
      }
      const results = await Promise.all(variants.map((v) => verifyToken(keys, v)));
      expect(results.filter((r) => r !== undefined)).toEqual([]);
      tried += variants.length;
    }
    expect(tried).toBeGreaterThan(10_000);
  });

  it('refuses every truncation and every extension', async () => {
    const token = signToken(keys, payloads[1]!);
    const cut = Array.from({ length: token.length }, (_, i) => token.slice(0, i));
    const tails = Array.from({ length: token.length - 1 }, (_, i) => token.slice(i + 1));
    const longer = [`${token}A`, `${token}.`, `${token}=`, `.${token}`, `${token}.${token}`];
    const results = await Promise.all([...cut, ...tails, ...longer].map((v) => verifyToken(keys, v)));
    expect(results.filter((r) => r !== undefined)).toEqual([]);
  });

  it('verifies tokens of a retired key after rotation and refuses an unknown key id', async () => {
    const old = signToken(keys, payloads[0]!);
    const fresh = signToken(rotated, payloads[0]!);
    expect(fresh).toContain('.k2.');
    expect(await verifyToken(rotated, old)).toEqual(payloads[0]);
    expect(await verifyToken(rotated, fresh)).toEqual(payloads[0]);
    expect(await verifyToken(keys, fresh)).toBeUndefined(); // k2 unknown to the old set
    expect(await verifyToken({ current: 'k2', keys: { k2: K2 } }, old)).toBeUndefined(); // k1 dropped
    // the same signature relabelled with another kid
    expect(await verifyToken(rotated, old.replace('.k1.', '.k2.'))).toBeUndefined();
  });

  it('refuses kid names that are prototype properties', async () => {
    const token = signToken(keys, payloads[0]!);
    const [p, , s] = token.split('.');
    for (const kid of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(await verifyToken(keys, `${p}.${kid}.${s}`)).toBeUndefined();
    }
  });

  it('refuses well-signed payloads of the wrong shape', async () => {
    const junk: unknown[] = [
      null, 1, 'x', {}, [], ['o'], ['o', 'a'], ['o', 'a', 'b', 'c'], ['x', 'a', 'b'], ['o', '', 'b'], ['o', 'a', ''], ['o', 1, 'b'],
      ['o', 'a'.repeat(513), 'b'], ['c', 'a', 'b', -1, 'https://x'], ['c', 'a', 'b', 1.5, 'https://x'], ['c', 'a', 'b', '1', 'https://x'],
      ['c', 'a', 'b', 1e300, 'https://x'], ['c', 'a', 'b', 1, 'javascript:alert(1)'], ['c', 'a', 'b', 1, '/relative'], ['c', 'a', 'b', 1, 7],
      ['c', 'a', 'b', 1], ['u', 'a', 'b', 'no-at-sign'], ['u', 'a', 'b', 5], ['u', 'a', 'b'], { kind: 'open', ownerId: 'a', messageId: 'b' },
    ];
    const forged = junk.map((j) => forge(encode(j)));
    forged.push(forge('not base64!'), forge(Buffer.from('{"unterminated').toString('base64url')), forge(Buffer.from([0xff, 0xfe, 0x80]).toString('base64url')));
    forged.push(forge('A')); // impossible base64 length
    const results = await Promise.all(forged.map((t) => verifyToken(keys, t)));
    expect(results).toEqual(forged.map(() => undefined));
    // and the helper itself forges correctly: a well-shaped payload verifies
    expect(await verifyToken(keys, forge(encode(['o', 'a', 'b'])))).toEqual({ kind: 'open', ownerId: 'a', messageId: 'b' });
  });

  it('refuses oversized tokens before any work, and refuses non-canonical signature spellings', async () => {
    expect(await verifyToken(keys, 'A'.repeat(MAX_TRACKING_TOKEN_LENGTH + 1))).toBeUndefined();
    expect(await verifyToken(keys, 'A'.repeat(10_000_000))).toBeUndefined();
    const token = signToken(keys, payloads[0]!);
    const last = token.at(-1)!;
    // the 43rd character holds 4 bits of signature and 2 unused bits; another spelling of the same bytes is refused
    const index = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(last);
    const sibling = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[index ^ 1]!;
    expect(Buffer.from(token.split('.')[2]!.slice(0, -1) + sibling, 'base64url')).toEqual(Buffer.from(token.split('.')[2]!, 'base64url'));
    expect(await verifyToken(keys, token.slice(0, -1) + sibling)).toBeUndefined();
    for (const bad of [undefined, null, 5, {}, '', '.', '..', 'a.b.c', 'a..c']) expect(await verifyToken(keys, bad as string)).toBeUndefined();
  });

  it('fuzz: 10,000 hostile tokens, none verifies', async () => {
    const started = performance.now();
    let seed = 0x9e3779b9;
    const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 2 ** 32; };
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const valid = Array.from({ length: 50 }, (_, i) =>
      signToken(rotated, { kind: 'click', ownerId: `o${i}`, messageId: `m${i}`, link: i, url: `https://example.com/${i}?q=${i}` }),
    );
    const validOld = valid.slice(0, 10).map((_, i) => signToken(keys, { kind: 'open', ownerId: `o${i}`, messageId: `m${i}` }));
    const all = [...valid, ...validOld];
    const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/';
    const otherKey = randomBytes(32);
    const hostile: string[] = [];
    for (let n = 0; n < 10_000; n++) {
      const kind = n % 5;
      if (kind === 0) {
        // random bytes, as text of random shape
        hostile.push(randomBytes(1 + Math.floor(rand() * 200)).toString(pick(['base64url', 'latin1', 'hex', 'base64'] as const)));
      } else if (kind === 1) {
        // random mutations (1-3 characters replaced, inserted or deleted) of a valid token
        let t = pick(all);
        const original = t;
        for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) {
          const i = Math.floor(rand() * t.length);
          const op = rand();
          t = op < 0.6 ? t.slice(0, i) + pick([...chars]) + t.slice(i + 1) : op < 0.8 ? t.slice(0, i) + t.slice(i + 1) : t.slice(0, i) + pick([...chars]) + t.slice(i);
        }
        hostile.push(t === original ? `${t}A` : t);
      } else if (kind === 2) {
        // payload of one token with the signature of another
        const [a, b] = [pick(all), pick(all)];
        if (a === b) { hostile.push(`${a}x`); continue; }
        const [pa, ka] = a.split('.');
        hostile.push(`${pa}.${ka}.${b.split('.')[2]}`);
      } else if (kind === 3) {
        // payload signed by one key but labelled with the other's key id
        const [pa, ka, sa] = pick(all).split('.');
        hostile.push(`${pa}.${ka === 'k1' ? 'k2' : 'k1'}.${sa}`);
      } else {
        // a well-formed token signed with a key nobody configured, under a known key id
        hostile.push(forge(encode(['c', 'o', 'm', n, 'https://evil.example/']), pick(['k1', 'k2']), otherKey));
      }
    }
    const results = await Promise.all(hostile.map((t) => verifyToken(rotated, t)));
    expect(results.filter((r) => r !== undefined)).toHaveLength(0);
    expect(hostile).toHaveLength(10_000);
    // the valid ones still verify under the same keys (the fuzz is not refusing everything for some other reason)
    expect((await Promise.all(all.map((t) => verifyToken(rotated, t)))).every((r) => r !== undefined)).toBe(true);
    // about 0.5 s on an idle 2-core machine; the bound leaves room for a loaded one
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('signToken input', () => {
  it('throws ValidationError for a payload no verifier would accept', () => {
    const bad = [
      { kind: 'click', ownerId: 'o', messageId: 'm', link: 0, url: 'mailto:a@b.c' },
      { kind: 'click', ownerId: 'o', messageId: 'm', link: -1, url: 'https://x' },
      { kind: 'open', ownerId: '', messageId: 'm' },
      { kind: 'unsubscribe', ownerId: 'o', messageId: 'm', address: 'nobody' },
      { kind: 'click', ownerId: 'o', messageId: 'm', link: 0, url: `https://x/${'é'.repeat(4000)}` }, // token over the cap
    ];
    for (const payload of bad) expect(() => signToken(keys, payload as TrackingTokenPayload)).toThrow(ValidationError);
  });
});

describe('assertTrackingKeys', () => {
  it('accepts base64 of 32+ bytes, and strings of 32+ characters', () => {
    expect(() => assertTrackingKeys(keys)).not.toThrow();
    expect(() => assertTrackingKeys(rotated)).not.toThrow();
    expect(() => assertTrackingKeys({ current: 'a', keys: { a: 'correct horse battery staple, 32+ chars' } })).not.toThrow();
  });

  it('throws ConfigError naming tracking.keys… for short keys, bad ids and a missing current', () => {
    const cases: [unknown, string][] = [
      [{ current: 'a', keys: { a: randomBytes(16).toString('base64') } }, 'tracking.keys.keys.a'],
      [{ current: 'a', keys: { a: 'short passphrase' } }, 'tracking.keys.keys.a'],
      [{ current: 'a', keys: { a: '' } }, 'tracking.keys.keys.a'],
      [{ current: 'a', keys: { a: undefined } }, 'tracking.keys.keys.a'],
      [{ current: 'a.b', keys: { 'a.b': K1 } }, 'tracking.keys.keys'],
      [{ current: 'b', keys: { a: K1 } }, 'tracking.keys.current'],
      [{ current: 'a', keys: {} }, 'tracking.keys.current'],
      [{ current: 'a' }, 'tracking.keys'],
      [undefined, 'tracking.keys'],
    ];
    for (const [input, setting] of cases) {
      let caught: unknown;
      try { assertTrackingKeys(input as TrackingKeys); } catch (error) { caught = error; }
      expect(ConfigError.isInstance(caught), JSON.stringify(input)).toBe(true);
      expect((caught as ConfigError).setting).toBe(setting);
      expect((caught as ConfigError).message).toContain(setting);
    }
  });

  it('never repeats a key in its messages', () => {
    const secret = 'tiny-secret';
    expect(() => assertTrackingKeys({ current: 'a', keys: { a: secret } })).toThrow(/^(?!.*tiny-secret)/s);
  });
});
