import { createHash } from 'node:crypto';
import type { Metadata, StoredEmail } from './stored-email.js';
import type { ParsedAddress } from './address.js';

const addresses = (list: ParsedAddress[]): string[] => list.map((a) => `${a.name ?? ''} <${a.address.toLowerCase()}>`);

// Plain UTF-16 code-unit order: localeCompare would make the hash (and so idempotency) depend on the process's locale
// and ICU data, and two workers in different locales must compute the same fingerprint for the same message.
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What the caller attached to a message besides its content; a different value under the same key is a conflict too. */
export interface FingerprintExtras {
  tags: readonly string[];
  metadata: Metadata;
}

/**
 * A hash of what makes a message this message: a retry with the same idempotency key must match it, and
 * anything else under that key is a conflict. Attachment bytes are hashed, not embedded. Tags count as a set and
 * metadata as a map: only their order may differ.
 */
export function fingerprintEmail(email: StoredEmail, extras: FingerprintExtras): string {
  const canonical = JSON.stringify([
    addresses([email.from]),
    addresses(email.to),
    addresses(email.cc),
    addresses(email.bcc),
    addresses(email.replyTo),
    email.subject,
    email.text ?? null,
    email.html ?? null,
    email.attachments.map((a) => [a.filename, a.contentType ?? null, a.cid ?? null, createHash('sha256').update(a.contentBase64).digest('hex')]),
    Object.entries(email.headers).sort(([a], [b]) => byCodeUnits(a, b)),
    email.inReplyTo ?? null,
    email.references,
    [...new Set(extras.tags)].sort(),
    Object.entries(extras.metadata).sort(([a], [b]) => byCodeUnits(a, b)),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
