import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import type { PoolSendResult } from '../pool/smtp-pool.js';
import type { MessageError, OutboxRecord, Settlement } from '../store/mail-store.js';
import { backoffDelay } from '../pool/backoff.js';
import { storableError, storableOptional, storableText } from './storable.js';

export interface RetryOptions {
  /** First wait before a queued message is tried again after a transient failure. Default: 30000 ms. */
  baseMs?: number;
  /** Longest wait between tries. Default: 3600000 ms (1 hour). */
  maxMs?: number;
  /**
   * How long after `sendAt` a message keeps being retried at all; past it, a transient failure fails it. Default:
   * 86400000 ms (24 hours), so an outage of some hours delays mail rather than losing it.
   */
  giveUpAfterMs?: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { baseMs: 30_000, maxMs: 3_600_000, giveUpAfterMs: 86_400_000 };

/** What the pool's answer means for the outbox record, in values every store can hold. */
export function settlementOf(outcome: PoolSendResult): Settlement {
  const server = storableText(outcome.server, 200);
  if (outcome.status === 'unknown') {
    return { status: 'unknown', server, error: describeError(outcome.error) };
  }
  return { status: 'sent', server, accepted: outcome.accepted, rejected: outcome.rejected, response: storableOptional(outcome.response) };
}

/**
 * What a failed attempt means: a permanent refusal fails the message; a transient one is retried with
 * exponential backoff while attempts remain (`retry` false for direct sends, whose caller sees the error).
 * `storeNow` is the store's clock as best known (the claim's time plus what has passed since): the retry budget
 * is counted from `sendAt`, which the store set, and the wait goes to the store as a delay from its own now.
 */
export function failureSettlement(record: OutboxRecord, caught: unknown, retry: Required<RetryOptions> | false, storeNow = Date.now()): Settlement {
  const error = describeError(caught);
  const smtp = SmtpError.isInstance(caught) && caught instanceof SmtpError ? caught : undefined;
  const server = smtp?.server === undefined ? undefined : storableText(smtp.server, 200);
  if (retry && error.retryable) {
    // Every server was backing off, so none was tried: that costs the message no attempt, and it keeps its own
    // schedule rather than the servers' (a reload or a recovered server then picks it up at the next try).
    const triedNoServer = smtp !== undefined && smtp.attempts.length === 0;
    const backoff = backoffDelay(record.attempt, retry.baseMs, retry.maxMs);
    // The servers' own backoff ends at a time on this process's clock: as a delay it is clock-independent.
    const serverWait = smtp?.retryAt ? smtp.retryAt.getTime() - Date.now() : 0;
    const delayMs = Math.max(0, triedNoServer ? backoff : Math.max(backoff, serverWait));
    const withinBudget = storeNow + delayMs <= record.sendAt.getTime() + retry.giveUpAfterMs;
    if (withinBudget && (triedNoServer || record.attempt < record.maxAttempts)) {
      return { status: 'retry', delayMs, error, server };
    }
  }
  return { status: 'failed', error, server };
}

/** A secret-free description of an error, as records keep it (in values every store can hold). */
export function describeError(caught: unknown): MessageError {
  if (SmtpError.isInstance(caught) && caught instanceof SmtpError) {
    return storableError({ code: caught.code, message: caught.message, responseCode: caught.responseCode, response: caught.response, retryable: caught.retryable });
  }
  if (AgentSmtpError.isInstance(caught)) return storableError({ code: caught.code, message: caught.message, retryable: caught.retryable });
  return storableError({ code: 'SMTP_TRANSIENT', message: caught instanceof Error ? caught.message : String(caught), retryable: true });
}
