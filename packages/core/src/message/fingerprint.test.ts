import { afterEach, describe, expect, it, vi } from 'vitest';
import { fingerprintEmail } from './fingerprint.js';
import type { StoredEmail } from './stored-email.js';

const address = (a: string) => ({ address: a, name: undefined }) as unknown as StoredEmail['from'];

function email(headers: Record<string, string>): StoredEmail {
  return { from: address('agent@example.com'), to: [address('ada@example.com')], cc: [], bcc: [], replyTo: [], subject: 's', text: 'x', attachments: [], headers, references: [] };
}

// Keys whose locale order differs from their code-unit order (case, accents, punctuation), in several insertion orders.
const KEYS = ['X-b', 'X-B', 'x-a', 'X-Ä', 'X-Z', 'X-_', 'X-1'];
const permutations = [KEYS, [...KEYS].reverse(), [...KEYS.slice(3), ...KEYS.slice(0, 3)]];

afterEach(() => vi.restoreAllMocks());

describe('fingerprintEmail', () => {
  it('is the same for every order of the same headers and metadata', () => {
    const prints = permutations.map((keys) =>
      fingerprintEmail(email(Object.fromEntries(keys.map((k) => [k, `v${k}`]))), { tags: [...keys].reverse(), metadata: Object.fromEntries(keys.map((k) => [k, k])) }),
    );
    expect(new Set(prints).size).toBe(1);
  });

  it('does not depend on the locale: it never asks for a locale comparison', () => {
    const expected = fingerprintEmail(email(Object.fromEntries(KEYS.map((k) => [k, 'v']))), { tags: [], metadata: {} });
    // A process whose locale orders strings differently would answer differently here; the fingerprint must not change.
    const compare = vi.spyOn(String.prototype, 'localeCompare').mockImplementation(function (this: string, other: string) {
      return other < this ? -1 : other > this ? 1 : 0;
    });
    expect(fingerprintEmail(email(Object.fromEntries(KEYS.map((k) => [k, 'v']))), { tags: [], metadata: {} })).toBe(expected);
    expect(compare).not.toHaveBeenCalled();
  });
});
