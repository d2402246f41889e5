import type { Lease, NewOutboxRecord } from '@agent-smtp/core';
import { ValidationError } from '@agent-smtp/core';
import { iso } from './row-mappers.js';

/**
 * What the outbox's SQL functions take, shared by every store that calls them (this package over `query()`, the
 * Supabase store over `rpc()`): one place decides how a record becomes arguments.
 */

/** Lease lengths and delays go to SQL as whole milliseconds (integer parameters). */
export const wholeMs = (value: number): number => Math.max(0, Math.ceil(value));

/**
 * A message waits for a human or is sent directly, never both. Checked before the call, so a batch with one bad
 * record stores none of it and the caller gets the field name (the SQL functions refuse the same).
 */
export function checkApproval(input: NewOutboxRecord, claim: Lease | undefined): void {
  if (!input.approval) return;
  if (claim) throw ValidationError.of('approval', 'a message that waits for approval cannot be claimed for a direct send; enqueue it without claim');
  if (!(input.approval.ttlMs > 0) || !Number.isFinite(input.approval.ttlMs)) {
    throw ValidationError.of('approval.ttlMs', `is ${input.approval.ttlMs} but must be a positive number of milliseconds`);
  }
}

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
