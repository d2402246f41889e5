import type { SmtpAttempt } from '../errors/smtp-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import type { Logger } from '../logger/logger.js';
import { buildPoolMessage } from '../message/build-pool-message.js';
import type { PoolSendResult, RejectedRecipient } from '../pool/smtp-pool.js';
import type { PoolSource } from '../service/pool-source.js';
import type { MailStore, OutboxRecord, Settlement } from '../store/mail-store.js';
import { deferredRecipients, followUpTree, queueFollowUp } from './follow-up.js';
import { keepLeased, settleDurably } from './lease.js';
import type { ClaimedSuppressions, SendCheck } from './send-checks.js';
import { failureSettlement, type RetryOptions, settlementOf } from './settlement.js';
import { storableOptional, storableText } from './storable.js';

/** What `deliver` needs: where the record lives, the servers of its owner, and how to retry. */
export interface DeliveryContext {
  store: MailStore;
  /** The pool of the record's owner (and agent). */
  pools: PoolSource;
  logger: Logger;
  /** The lease the record was claimed under; the heartbeat renews it while the send runs. */
  leaseMs: number;
  /** Names who sent it in the audit entry (a worker id, or `direct:…`). */
  workerId: string;
  /** Transient failures: retried with this backoff (a worker), or `false` (a direct send, whose caller is told). */
  retry: Required<RetryOptions> | false;
  /** The backoff of a follow-up for deferred recipients. */
  followUpRetry: Required<RetryOptions>;
  /** Aborts a send that has not reached the server yet (see `SmtpPool.send`). */
  signal?: AbortSignal | undefined;
  /** Waits between tries to record the outcome when the store fails (see `settleDurably`). */
  recordRetryDelaysMs?: readonly number[] | undefined;
  /** Send-time checks, in order (suppression first): one that throws refuses the message and nothing is sent. */
  checks?: readonly SendCheck[] | undefined;
  /** A worker's claim this record came in: the checks read the claim's suppressions once for all of them. */
  claimed?: ClaimedSuppressions | undefined;
  /** Told of each follow-up queued, so this process can see that it gets delivered. */
  onFollowUp?: ((followUp: OutboxRecord) => void) | undefined;
}

export interface Delivery {
  /** The record as settled; when the settle could not be written, the record with the outcome applied. */
  record: OutboxRecord;
  settlement: Settlement;
  /** The error when it definitely was not sent (what a direct send throws). */
  failure: unknown;
  rejectedReasons: RejectedRecipient[];
  /** Recipients deferred (4xx) and queued in the follow-up. */
  deferred: string[];
  followUp: OutboxRecord | undefined;
  /** False when the outcome could not be written: the record is left to its lease, to be taken over once. */
  recorded: boolean;
}

/**
 * Sends one stored record that is claimed under a lease, and records what happened: the one code path that sends
 * mail, for direct sends and workers alike. Checks, heartbeat, send, classify, one event per failed server attempt, a
 * follow-up for deferred recipients, settle, audit. Never throws: once the server has answered, no bookkeeping
 * failure may turn into an error that invites a resend.
 */
export async function deliver(record: OutboxRecord, context: DeliveryContext): Promise<Delivery> {
  const { store, logger } = context;
  const startedAt = Date.now();
  let envelope: string[] = [];
  let outcome: PoolSendResult | undefined;
  let failure: unknown;
  const heartbeat = keepLeased(store.outbox, record, context.leaseMs, logger);
  try {
    if (context.checks) for (const check of context.checks) await check(record, { store, claimed: context.claimed });
    const message = buildPoolMessage(record.email, record.messageId);
    // A takeover must not write to recipients an earlier attempt handed to a follow-up: they would get two copies.
    const covered = record.possibleDuplicate ? await recipientsOfEarlierFollowUps(store, record) : new Set<string>();
    if (covered.size) message.envelope = { ...message.envelope, to: message.envelope.to.filter((to) => !covered.has(to)) };
    envelope = message.envelope.to;
    outcome = envelope.length
      ? await context.pools.use({ ownerId: record.ownerId, agentId: record.agentId }, (pool) => pool.send(message, { signal: context.signal }))
      : coveredOutcome(record);
  } catch (caught) {
    failure = caught;
  } finally {
    heartbeat.stop();
  }
  try {
    const durationMs = Date.now() - startedAt;
    return await recordOutcome(record, context, { outcome, failure, envelope, storeNow: record.updatedAt.getTime() + durationMs, durationMs });
  } catch (err) {
    // A bug in our own bookkeeping: logged, and the record is left to its lease (taken over once, flagged).
    logger.error({ err, id: record.id, attempt: record.attempt }, 'could not record the outcome of a send');
    const settlement = outcome ? settlementOf(outcome) : failureSettlement(record, failure, context.retry);
    return { record: { ...record, ...settledFields(settlement) }, settlement, failure: outcome ? undefined : failure, rejectedReasons: [], deferred: [], followUp: undefined, recorded: false };
  }
}

async function recordOutcome(
  record: OutboxRecord,
  context: DeliveryContext,
  sent: { outcome: PoolSendResult | undefined; failure: unknown; envelope: string[]; storeNow: number; durationMs: number },
): Promise<Delivery> {
  const { store, logger } = context;
  const { outcome, failure } = sent;
  // The claim's time is on the store's clock; `storeNow` adds what has passed here since.
  const settlement = outcome ? settlementOf(outcome) : failureSettlement(record, failure, context.retry, sent.storeNow);
  const rejectedReasons = outcome?.rejectedReasons ?? [];

  const attempts = outcome?.attempts ?? attemptsOf(failure);
  if (attempts.length) await recordAttempts(store, record, attempts, logger);
  const deferred = deferredRecipients(rejectedReasons);
  // Queued before the settle: if this process dies in between, a takeover leaves those recipients to this follow-up.
  const followUp = deferred.length ? await queueFollowUp(store.outbox, record, deferred, context.followUpRetry, logger) : undefined;
  if (followUp) context.onFollowUp?.(followUp);
  // The audit entry says what the server answered, which the settle does not change: both are written at once (one
  // round trip less for each message a worker's slot waits on). The audit is best effort and never throws.
  const [settled] = await Promise.all([
    settleDurably(store.outbox, record, settlement, logger, context.recordRetryDelaysMs),
    audit(store, record, settlement, sent, context.workerId, followUp ? { deferred, followUp: followUp.id } : undefined, logger),
  ]);
  if (settled) logger.info({ id: record.id, attempt: record.attempt, status: settled.status, server: settlement.server }, 'outbox message settled');
  return {
    record: settled ?? { ...record, ...settledFields(settlement) },
    settlement,
    failure: settlement.status === 'failed' || settlement.status === 'retry' ? failure : undefined,
    rejectedReasons,
    deferred: followUp ? deferred : [],
    followUp,
    recorded: settled !== undefined,
  };
}

/** Recipients that follow-ups of this record's earlier attempts carry (deferred then, theirs to deliver now). */
async function recipientsOfEarlierFollowUps(store: MailStore, record: OutboxRecord): Promise<Set<string>> {
  const tree = await followUpTree(store.outbox, record);
  return new Set(tree.filter((f) => f.of === record.id).flatMap((f) => f.followUp.email.envelopeTo ?? []));
}

/** Every recipient of a takeover is with an earlier attempt's follow-up: nothing is left to send here. */
function coveredOutcome(record: OutboxRecord): PoolSendResult {
  return {
    status: 'sent',
    server: record.server ?? 'none',
    messageId: record.messageId,
    accepted: [],
    rejected: [],
    rejectedReasons: [],
    response: 'Every recipient is with a follow-up of an earlier attempt; nothing was sent again.',
    attempts: [],
  };
}

/** The server attempts a failed send made (none for a refusal before any server was tried). */
function attemptsOf(failure: unknown): readonly SmtpAttempt[] {
  const attempts = SmtpError.isInstance(failure) ? (failure as Partial<SmtpError>).attempts : undefined;
  return Array.isArray(attempts) ? attempts : [];
}

/** Each server's refusal within the attempt, as history: a failover's earlier tries would otherwise vanish. */
async function recordAttempts(store: MailStore, record: OutboxRecord, attempts: readonly SmtpAttempt[], logger: Logger): Promise<void> {
  for (const attempt of attempts) {
    // An ambiguous end is the outcome itself (`unknown`), not a refusal.
    if (attempt.failure === 'ambiguous') continue;
    try {
      await store.events.append({
        ownerId: record.ownerId,
        messageId: record.id,
        type: 'attempt_failed',
        attempt: record.attempt,
        detail: {
          server: storableText(attempt.server, 200),
          failure: attempt.failure,
          ...(attempt.code ? { code: storableText(attempt.code, 100) } : {}),
          ...(attempt.responseCode ? { responseCode: attempt.responseCode } : {}),
          ...(attempt.response || attempt.message ? { response: storableOptional(attempt.response ?? attempt.message) } : {}),
        },
      });
    } catch (err) {
      logger.warn({ err, id: record.id }, 'could not record a failed SMTP attempt');
      return;
    }
  }
}

/** Best effort: a failing audit write is logged, never turned into an error after the work was done. */
async function audit(
  store: MailStore,
  record: OutboxRecord,
  settlement: Settlement,
  sent: { envelope: string[]; durationMs: number },
  worker: string,
  followUp: { deferred: string[]; followUp: string } | undefined,
  logger: Logger,
): Promise<void> {
  const failed = settlement.status === 'failed' || settlement.status === 'retry';
  try {
    await store.audit.append({
      ownerId: record.ownerId,
      agentId: record.agentId,
      action: 'send',
      outcome: failed ? 'error' : 'ok',
      messageId: record.id,
      recipientCount: sent.envelope.length,
      durationMs: sent.durationMs,
      ...(settlement.status !== 'sent' ? { errorCode: settlement.error.code } : {}),
      detail: {
        id: record.id,
        to: sent.envelope,
        status: settlement.status,
        attempt: record.attempt,
        worker,
        ...(settlement.server ? { server: settlement.server } : {}),
        ...(followUp ?? {}),
        ...(settlement.status !== 'sent' ? { code: settlement.error.code, ...(settlement.error.responseCode ? { responseCode: settlement.error.responseCode } : {}) } : {}),
      },
    });
  } catch (err) {
    logger.warn({ err, id: record.id }, 'could not write the audit entry');
  }
}

function settledFields(settlement: Settlement): Partial<OutboxRecord> {
  if (settlement.status === 'sent') return settlement;
  return { status: settlement.status === 'retry' ? 'queued' : settlement.status, server: settlement.server, error: settlement.error };
}
