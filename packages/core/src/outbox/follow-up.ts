import type { Logger } from '../logger/logger.js';
import { backoffDelay } from '../pool/backoff.js';
import type { RejectedRecipient } from '../pool/smtp-pool.js';
import type { OutboxRecord, OutboxStore } from '../store/mail-store.js';
import { randomUuid } from '../store/random-uuid.js';
import type { RetryOptions } from './settlement.js';

/** Recipients the server refused only for now (4xx: greylisting, mailbox busy): they must be tried again. */
export function deferredRecipients(rejected: readonly RejectedRecipient[]): string[] {
  return rejected.filter((r) => r.responseCode !== undefined && r.responseCode >= 400 && r.responseCode < 500).map((r) => r.address);
}

/** The idempotency key of the follow-up an attempt queues: one per attempt, so a retried call queues it once. */
const followUpPrefix = (id: string): string => `deferred:${id}:`;
export const followUpKey = (id: string, attempt: number): string => `${followUpPrefix(id)}${attempt}`;
/** Whether a record is a follow-up for deferred recipients (queued by the SDK, not by the agent). */
export const isFollowUp = (record: Pick<OutboxRecord, 'idempotencyKey'>): boolean => record.idempotencyKey?.startsWith('deferred:') ?? false;

/** Follow-ups nest this deep at most in `followUpTree`: each level is a recipient deferred once more. */
const MAX_FOLLOW_UP_DEPTH = 10;

/**
 * Every follow-up queued for `record`'s deferred recipients, and theirs in turn, depth first, oldest first, each
 * with the message it follows up. One read: a follow-up keeps its original's Message-ID, and its key names its parent.
 */
export async function followUpTree(outbox: OutboxStore, record: OutboxRecord): Promise<{ followUp: OutboxRecord; of: string }[]> {
  const sameMessage = await outbox.findByMessageId(record.ownerId, record.messageId);
  const out: { followUp: OutboxRecord; of: string }[] = [];
  const walk = (parent: string, depth: number): void => {
    if (depth >= MAX_FOLLOW_UP_DEPTH) return;
    for (const candidate of sameMessage) {
      if (!candidate.idempotencyKey?.startsWith(followUpPrefix(parent))) continue;
      out.push({ followUp: candidate, of: parent });
      walk(candidate.id, depth + 1);
    }
  };
  walk(record.id, 0);
  return out;
}

/**
 * Queues the same message (same Message-ID) for the recipients a server deferred while it accepted the others.
 * Its key is derived from this attempt, so a retried call queues one follow-up, not two. Returns its id, or
 * undefined when it could not be queued (logged: those recipients are then reported as rejected only). Its first
 * try is a backoff from now by the store's clock.
 */
export async function queueFollowUp(
  outbox: OutboxStore,
  record: OutboxRecord,
  deferred: readonly string[],
  retry: Required<RetryOptions>,
  logger: Logger,
): Promise<OutboxRecord | undefined> {
  try {
    const { record: followUp } = await outbox.enqueue({
      id: randomUuid('msg_'),
      ownerId: record.ownerId,
      agentId: record.agentId,
      idempotencyKey: followUpKey(record.id, record.attempt),
      fingerprint: undefined,
      messageId: record.messageId,
      email: { ...record.email, envelopeTo: [...deferred] },
      delayMs: backoffDelay(1, retry.baseMs, retry.maxMs),
      maxAttempts: record.maxAttempts,
      tags: record.tags,
      metadata: { ...record.metadata, followUpOf: record.id },
    });
    return followUp;
  } catch (err) {
    logger.error({ err, id: record.id, deferred: deferred.length }, 'could not queue the deferred recipients');
    return undefined;
  }
}
