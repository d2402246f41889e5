import type { NewOutboxRecord } from '@agent-smtp/core';
import { iso } from './row-mappers.js';

/**
 * What the outbox's SQL functions take, shared by every store that calls them (this package over `query()`, the
 * Supabase store over `rpc()`): one place decides how a record becomes arguments.
 */

/** Lease lengths and delays go to SQL as whole milliseconds (integer parameters). */
export const wholeMs = (value: number): number => Math.max(0, Math.ceil(value));

/** The core's check of a record's approval fields, run before any call (also exported here for the Supabase store). */
export { checkApproval } from '@agent-smtp/core';

/** One record of `enqueue_many`'s jsonb batch. */
export function toBatchRecord(r: NewOutboxRecord): Record<string, unknown> {
  return {
    id: r.id,
    ownerId: r.ownerId,
    agentId: r.agentId,
    idempotencyKey: r.idempotencyKey,
    fingerprint: r.fingerprint,
    messageId: r.messageId,
    email: r.email,
    sendAt: iso(r.sendAt),
    delayMs: r.delayMs ? wholeMs(r.delayMs) : undefined,
    maxAttempts: r.maxAttempts,
    tags: r.tags,
    metadata: r.metadata ?? {},
    approval: r.approval && { reason: r.approval.reason, ttlMs: wholeMs(r.approval.ttlMs) },
  };
}
