import { createHash } from 'node:crypto';
import type { StoredEmail } from '../store/mail-store.js';
import type { ParsedAddress } from './address.js';

const addresses = (list: ParsedAddress[]): string[] => list.map((a) => `${a.name ?? ''} <${a.address.toLowerCase()}>`);

/**
 * A hash of what makes a message this message: a retry with the same idempotency key must match it, and
 * anything else under that key is a conflict. Attachment bytes are hashed, not embedded.
 */
export function fingerprintEmail(email: StoredEmail): string {
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
    Object.entries(email.headers).sort(([a], [b]) => a.localeCompare(b)),
    email.inReplyTo ?? null,
    email.references,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
