import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { envelopeRecipients } from '../message/build-pool-message.js';
import type { MailStore, OutboxRecord, Suppression } from '../store/mail-store.js';

/**
 * A check `deliver` runs on a claimed record right before it is sent (after any time it spent queued). Throwing an
 * `AgentSmtpError` refuses the message: nothing is sent and the record fails with that error (retryable if the
 * error is). Checks see the wire-form envelope the server would get.
 */
export type SendCheck = (record: OutboxRecord, context: SendCheckContext) => Promise<void>;

export interface SendCheckContext {
  store: MailStore;
  /** The suppressions of the records claimed together with this one, read once for them all (a worker's claim). */
  claimed?: ClaimedSuppressions | undefined;
}

/**
 * The suppressed addresses among the recipients of a worker's claim, read with one store call per owner instead of
 * one per message (a round trip each on Postgres), when the first of those records is checked: right before it is
 * sent, as the others are (a claim's records go out at once, each in its own slot).
 */
export class ClaimedSuppressions {
  readonly #byOwner = new Map<string, Promise<Map<string, Suppression>>>();

  constructor(
    private readonly store: MailStore,
    private readonly records: readonly OutboxRecord[],
  ) {}

  /** The record's suppressed recipients; a record not in the claim is looked up alone. */
  async find(record: OutboxRecord, recipients: readonly string[]): Promise<Suppression[]> {
    if (!this.records.includes(record)) return this.store.suppressions.find(record.ownerId, [...recipients]);
    let owner = this.#byOwner.get(record.ownerId);
    if (!owner) {
      const all = new Set<string>();
      for (const r of this.records) if (r.ownerId === record.ownerId) for (const to of recipientsOf(r)) all.add(to);
      // Suppressions match an address whatever its case (as the stores' own `find` does): keyed in lower case.
      owner = this.store.suppressions.find(record.ownerId, [...all]).then((hits) => new Map(hits.map((h) => [h.address.toLowerCase(), h])));
      // A failed read is not kept: the next record of the claim reads again.
      owner.catch(() => this.#byOwner.delete(record.ownerId));
      this.#byOwner.set(record.ownerId, owner);
    }
    const suppressed = await owner;
    return recipients.flatMap((to) => suppressed.get(to.toLowerCase()) ?? []);
  }
}

const recipientsOf = (record: OutboxRecord): string[] => record.email.envelopeTo ?? envelopeRecipients(record.email);

/** Refuses a message to any address its owner has suppressed (an unsubscribe, a bounce, a complaint, by hand). */
export const refuseSuppressed: SendCheck = async (record, { store, claimed }) => {
  const recipients = recipientsOf(record);
  const hits = claimed ? await claimed.find(record, recipients) : await store.suppressions.find(record.ownerId, recipients);
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
