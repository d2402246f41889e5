import { ValidationError } from '../errors/validation-error.js';
import type { Lease, NewOutboxRecord } from './mail-store.js';

/**
 * A message waits for a human or is sent directly, never both, and an approval needs a positive expiry. Every store
 * checks a record with this before storing anything, so a batch with one bad record stores none of it and the caller
 * gets the field name (the Postgres store's SQL functions refuse the same).
 */
export function checkApproval(input: NewOutboxRecord, claim: Lease | undefined): void {
  if (!input.approval) return;
  if (claim) throw ValidationError.of('approval', 'a message that waits for approval cannot be claimed for a direct send; enqueue it without claim');
  if (!(input.approval.ttlMs > 0) || !Number.isFinite(input.approval.ttlMs)) {
    throw ValidationError.of('approval.ttlMs', `is ${input.approval.ttlMs} but must be a positive number of milliseconds`);
  }
}
