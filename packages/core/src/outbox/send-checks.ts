import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { envelopeRecipients } from '../message/build-pool-message.js';
import type { MailStore, OutboxRecord } from '../store/mail-store.js';

/**
 * A check `deliver` runs on a claimed record right before it is sent (after any time it spent queued). Throwing an
 * `AgentSmtpError` refuses the message: nothing is sent and the record fails with that error (retryable if the
 * error is). Checks see the wire-form envelope the server would get.
 */
export type SendCheck = (record: OutboxRecord, context: { store: MailStore }) => Promise<void>;

/** Refuses a message to any address its owner has suppressed (an unsubscribe, a bounce, a complaint, by hand). */
export const refuseSuppressed: SendCheck = async (record, { store }) => {
  const recipients = record.email.envelopeTo ?? envelopeRecipients(record.email);
  const hits = await store.suppressions.find(record.ownerId, recipients);
  if (hits.length === 0) return;
  const list = hits.map((h) => `${h.address} (${h.reason})`).join(', ');
  throw new AgentSmtpError(
    'SUPPRESSED',
    `Not sent: ${list} ${hits.length === 1 ? 'is' : 'are'} on this sender's suppression list. Send again without ${hits.length === 1 ? 'that address' : 'those addresses'}; a suppression is removed only by the user.`,
    { retryable: false },
  );
};

/** The checks every send goes through, in order. */
export const DEFAULT_SEND_CHECKS: readonly SendCheck[] = [refuseSuppressed];
