import { randomUUID } from 'node:crypto';
import type { NewOutboxRecord, StoredEmail } from '@agent-smtp/core';

/** A stored email with something in every field (UTF-8, a bcc, an attachment, a header), for store tests. */
export function sampleStoredEmail(patch: Partial<StoredEmail> = {}): StoredEmail {
  return {
    from: { name: 'Agent', address: 'agent@example.com', domain: 'example.com' },
    to: [{ name: 'Ada Lovelace', address: 'ada@example.com', domain: 'example.com' }],
    cc: [],
    bcc: [{ name: undefined, address: 'audit@example.org', domain: 'example.org' }],
    replyTo: [],
    subject: 'Hello',
    text: 'Hi Ada — ünïcødé ✓',
    html: '<p>Hi Ada</p>',
    attachments: [{ filename: 'a.txt', contentBase64: Buffer.from('attached').toString('base64'), contentType: 'text/plain' }],
    headers: { 'X-Campaign': 'spring' },
    references: ['<earlier@example.com>'],
    ...patch,
  };
}

/** A message ready for `outbox.enqueue`, due a second ago, with a fresh id and Message-ID. */
export function newOutboxRecord(ownerId: string, patch: Partial<NewOutboxRecord> = {}): NewOutboxRecord {
  return {
    id: `msg_${randomUUID()}`,
    ownerId,
    agentId: 'agent-1',
    idempotencyKey: undefined,
    fingerprint: undefined,
    messageId: `<${randomUUID()}@example.com>`,
    email: sampleStoredEmail(),
    sendAt: new Date(Date.now() - 1_000),
    maxAttempts: 3,
    tags: ['t1'],
    metadata: { order: 42, vip: true, note: null, ref: 'A-1' },
    ...patch,
  };
}
