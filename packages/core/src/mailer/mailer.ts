import { loadSmtpServersFromEnv } from '../config/load-smtp-servers-from-env.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { AgentSmtpError, type AgentSmtpErrorCode } from '../errors/agent-smtp-error.js';
import { ConfigError } from '../errors/config-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { type Logger, safeLogger } from '../logger/logger.js';
import { envelopeRecipients } from '../message/build-pool-message.js';
import type { OutgoingEmail } from '../message/email-schema.js';
import type { NormalizedEmail } from '../message/normalize-email.js';
import type { Delivery } from '../outbox/deliver.js';
import { followUpTree } from '../outbox/follow-up.js';
import type { OutboxWorker, WorkerOptions } from '../outbox/outbox-worker.js';
import { readPathAttachments } from '../pipeline/attachment-paths.js';
import { composeEmail, newRecordId, toNewOutboxRecord } from '../pipeline/compose.js';
import { approvalReason, assertMaySend, type CompiledPolicy, hasApprovalRules, policedComposed } from '../policy/check-policy.js';
import { describeLimits } from '../policy/describe-limits.js';
import type { Policy } from '../policy/policy.js';
import { PolicySource } from '../policy/policy-source.js';
import { type QuotaRefund, takeQuota } from '../policy/quota.js';
import { readOwnToken } from '../tracking/tracking-token.js';
import { PolicyError } from '../errors/policy-error.js';
import type { BackoffOptions } from '../pool/backoff.js';
import type { ServerStatus } from '../pool/server-state.js';
import type { RejectedRecipient, VerifyResult } from '../pool/smtp-pool.js';
import { StaticPoolSource } from '../service/pool-source.js';
import type { ApprovalDecision, ApprovalState, AuditEntry, EnqueueResult as OutboxEnqueueResult, MailEvent, MailStore, MessageError, NewOutboxRecord, OutboxRecord, OutboxStatus, Suppression } from '../store/mail-store.js';
import type { MailStats, MailStatsQuery } from '../store/mail-store.js';
import { parseAddress } from '../message/address.js';
import { MemoryStore } from '../store/memory-store.js';
import { MailRuntime, type MailSettings } from './mail-runtime.js';

export interface MailerOptions extends MailSettings {
  /**
   * SMTP servers by priority, or a function that returns them (called again by `reload()`). Default: read from the
   * environment (`SMTP_HOST`, `SMTP_HOST_1`, …), which `reload()` then reads again.
   */
  servers?: readonly SmtpServerConfig[] | (() => readonly SmtpServerConfig[]);
  /** Where records and the audit trail are kept. Default: a `MemoryStore`. */
  store?: MailStore;
  /** The user this mailer acts for; every record and audit entry carries it. Default: `default`. */
  ownerId?: string;
  /** The agent this mailer acts for, recorded on every record and audit entry. */
  agentId?: string;
  /**
   * What this mailer may send: recipients, quotas, attachments, approval (see `Policy`). Default: none, the
   * developer's own mailer may send anything. A service gives each agent its own (`policies`, `defaultPolicy`).
   */
  policy?: Policy;
  pool?: { backoff?: BackoffOptions; maxRetryWaitMs?: number; maxRequeues?: number };
  /** pino-compatible; everything logged through it is redacted. Default: logs nothing. */
  logger?: Logger;
  /** Environment read when `servers` is not given and by `reload()` without arguments. Default: `process.env`. */
  env?: Record<string, string | undefined>;
}

export interface SendResult {
  /** The SDK's id for this message; pass it to `getStatus`. */
  id: string;
  /** The Message-ID header, e.g. `<…@example.com>`. */
  messageId: string;
  /**
   * `sent`: the server accepted it. `unknown`: the connection broke after the whole message was sent, so it may
   * have been delivered; it is not resent automatically. For a replayed idempotency key, whatever the first
   * message's status is now (`queued`, `sending`, `cancelled`…).
   */
  status: OutboxStatus;
  server: string | undefined;
  accepted: string[];
  rejected: string[];
  rejectedReasons: RejectedRecipient[];
  /**
   * Recipients the server refused only for now (4xx, e.g. greylisting). They are in `rejected` too, and are queued
   * as the follow-up message `followUpId` (same content and Message-ID) for a worker to retry.
   */
  deferred: string[];
  followUpId: string | undefined;
  response: string | undefined;
  /** True when this result is the stored outcome of an earlier call with the same idempotency key. */
  replayed: boolean;
  /**
   * Set when the policy made the message wait for a human (`status` is `pending_approval`): nothing is sent before
   * `approve(id)`, and nothing ever once it expires or is rejected.
   */
  approval?: ApprovalState | undefined;
}

/** A message waiting for a human's decision, as `listPending` shows it to the person deciding. */
export interface PendingEmail {
  id: string;
  agentId: string | undefined;
  from: string;
  /** Every envelope recipient (to, cc, bcc). */
  recipients: string[];
  subject: string;
  /** The first 500 characters of the plain-text body (or of the HTML, tags and all, when there is no text). */
  preview: string;
  /** How long the body is in all (the preview may show only its start): text, else HTML, in characters. */
  bodyChars: number;
  /** Every http(s) link in the text and HTML parts (at most 50): what the email would make its reader open. */
  links: string[];
  attachments: { filename: string; bytes: number }[];
  reason: string;
  expiresAt: Date;
  createdAt: Date;
}

/** Which audit entries to read (`Mailer.listAudit`, `service.audit.list`). */
export interface AuditQuery {
  /** One agent's entries (a mailer with an agent reads only its own). */
  agentId?: string | undefined;
  action?: string | undefined;
  /** At or after this time. */
  from?: Date | undefined;
  /** Before this time. */
  to?: Date | undefined;
  /** `nextCursor` of the previous page. */
  cursor?: string | undefined;
  /** Default 100, at most 1000. */
  limit?: number | undefined;
}

/** A page of audit entries, newest first. */
export interface AuditPage {
  entries: AuditEntry[];
  /** Set when there may be more: pass it as `cursor`. */
  nextCursor: string | undefined;
}

export interface SendOptions {
  /** Aborts a send that has not reached a server yet. */
  signal?: AbortSignal;
  /**
   * A human already approved this message (a framework's own approval step, such as the AI SDK's `needsApproval`):
   * it goes out without waiting, and the audit names who approved. Only code the developer wrote sets this; a model
   * never can.
   */
  approvedBy?: string;
}

export interface EnqueueResult {
  id: string;
  messageId: string;
  status: OutboxStatus;
  sendAt: Date;
  /** True when the idempotency key was seen before: nothing new was queued. */
  replayed: boolean;
  /** Set when the message waits for a human's approval (`status` is `pending_approval`). */
  approval?: ApprovalState | undefined;
}

export interface EnqueueManyOptions {
  /**
   * Messages read, checked and written per store call (one round trip, one transaction where the store has them).
   * Default 500, at most 1,000; a batch is also written once its content reaches 32 MiB.
   */
  batchSize?: number | undefined;
  /** Stops reading more messages; what was written stays queued. */
  signal?: AbortSignal | undefined;
  /**
   * Called with each message's outcome, in input order, once its batch is written (awaited: a slow consumer slows the
   * reading). `index` is the message's place in `inputs`. One that throws stops the run (the rest of that batch is
   * queued but not reported).
   */
  onResult?: ((item: EnqueueManyItem) => void | Promise<void>) | undefined;
}

/** One message's outcome in `enqueueMany`: its result, or why it was refused (nothing was queued for it). */
export type EnqueueManyItem = { index: number; result: EnqueueResult; error?: undefined } | { index: number; result?: undefined; error: AgentSmtpError };

export interface EnqueueManySummary {
  /** New messages queued to send. */
  queued: number;
  /** New messages held for a human's approval. */
  pendingApproval: number;
  /** Messages whose idempotency key was seen before (in an earlier call or earlier in this one): nothing new queued. */
  replayed: number;
  /** Messages refused (invalid, outside the agent's policy, over its quota, a key reused for other content). */
  refused: number;
}

/** A message's record with the history of what happened to it, oldest first. */
export interface MessageStatusReport extends OutboxRecord {
  history: MailEvent[];
  /**
   * Follow-up messages queued for recipients a server deferred (4xx) on an attempt of this one, with their fate:
   * the original's `rejected` lists them, and these say whether a later try delivered them.
   */
  followUps: FollowUpStatus[];
}

export interface FollowUpStatus {
  id: string;
  /** The message (the original, or another follow-up) whose deferred recipients this one carries. */
  followUpOf: string;
  status: OutboxStatus;
  /** The deferred recipients this follow-up carries. */
  recipients: string[];
  accepted: string[];
  rejected: string[];
  error: MessageError | undefined;
}

export interface MailerStatus {
  servers: ServerStatus[];
}

/** Creates a `Mailer`. With no `servers`, reads them from the environment; with none there either, throws `ConfigError`. */
export function createMailer(options: MailerOptions = {}): Mailer {
  return new Mailer(options);
}

/** How a service makes the scoped mailers that share its runtime (not part of the public API). */
export const SCOPED = Symbol('agent-smtp.scoped-mailer');
export interface ScopedMailerInit {
  [SCOPED]: MailRuntime;
  ownerId: string;
  agentId: string | undefined;
}

/**
 * Sends email for one owner (and agent) through that owner's SMTP servers, keeping a record and an audit entry of
 * everything it does. `createMailer()` makes one with servers of its own; `service.forAgent()` a cheap one that
 * shares the service's store, pools and workers.
 */
export class Mailer {
  readonly store: MailStore;
  readonly ownerId: string;
  readonly agentId: string | undefined;
  private readonly runtime: MailRuntime;
  /** Set for a mailer with servers of its own (`createMailer`), which `reload()` and `close()` act on. */
  private readonly own: { pools: StaticPoolSource; loadServers: () => readonly SmtpServerConfig[] } | undefined;
  private readonly workers = new Set<OutboxWorker>();

  constructor(options: MailerOptions | ScopedMailerInit = {}) {
    if (SCOPED in options) {
      this.runtime = options[SCOPED];
      this.ownerId = options.ownerId;
      this.agentId = options.agentId;
      this.own = undefined;
    } else {
      const env = options.env ?? process.env;
      const logger = safeLogger(options.logger);
      const source = options.servers;
      const loadServers = typeof source === 'function' ? source : source ? () => source : () => serversFromEnv(env);
      const pools = new StaticPoolSource(loadServers(), { ...options.pool, logger });
      this.runtime = new MailRuntime(options.store ?? new MemoryStore(), pools, logger, options, options.store === undefined, PolicySource.fixed(options.policy));
      this.ownerId = options.ownerId ?? 'default';
      this.agentId = options.agentId;
      this.own = { pools, loadServers };
    }
    this.store = this.runtime.store;
  }

  /**
   * Validates, renders and sends one email now, failing over between servers. Resolves with status `sent`
   * (possibly with some recipients rejected or deferred) or `unknown`; throws a typed error when it was not sent.
   * The message goes through the outbox, so it has a record and, if this process dies mid-send, a worker finishes
   * it. With an `idempotencyKey` seen before, returns the first result and sends nothing. An aborted `signal`
   * stops a send that has not reached a server.
   */
  send(input: OutgoingEmail, options: SendOptions = {}): Promise<SendResult> {
    // Tracked from the first step, so a close() that starts meanwhile waits for it rather than closing under it.
    return this.runtime.track(() =>
      this.refusalsAudited('send', async () => {
        const policy = await this.policy();
        const { email, id } = await this.prepare(input, policy);
        if (email.sendAt && email.sendAt.getTime() > Date.now() + 1_000) {
          throw ValidationError.of('sendAt', 'is in the future: send() sends now; use enqueue() to schedule a message');
        }
        const approval = this.approvalFor(email, policy, options.approvedBy);
        return this.runtime.once(this.ownerId, email.idempotencyKey, () =>
          approval ? this.hold(email, id, policy, approval) : this.sendNow(email, id, policy, options.signal, options.approvedBy),
        );
      }),
    );
  }

  /**
   * Validates and renders an email and puts it in the outbox, to be sent by a worker (`startWorker`) at
   * `sendAt` (default: now). With an `idempotencyKey` seen before, queues nothing and returns the first record.
   */
  enqueue(input: OutgoingEmail, options: Pick<SendOptions, 'approvedBy'> = {}): Promise<EnqueueResult> {
    return this.runtime.track(() =>
      this.refusalsAudited('enqueue', async () => {
        const policy = await this.policy();
        const { email, id } = await this.prepare(input, policy);
        const approval = this.approvalFor(email, policy, options.approvedBy);
        return this.runtime.once(this.ownerId, email.idempotencyKey, async () => {
          const { created, record } = await this.accept(email, id, policy, undefined, approval);
          if (created) {
            const to = envelopeRecipients(record.email);
            await this.audit(approval ? 'approval_requested' : 'enqueue', 'ok', { id: record.id, to, sendAt: record.sendAt.toISOString() }, record.id, {
              recipientCount: to.length,
              actor: options.approvedBy,
            });
            if (!approval) this.runtime.notifyWorkers();
          }
          return enqueueResultOf(record, !created);
        });
      }),
    );
  }

  /**
   * Queues many messages: `inputs` is an array or an (async) iterable, read a batch at a time (`batchSize` messages,
   * or 32 MiB of content, whichever comes first), so a large send streams in flat memory. Each message is checked and
   * composed as `enqueue` does (under this agent's policy; held for approval where the policy says so); each batch
   * takes its quota at once and is written with one store call. A message that is refused (invalid, outside the
   * policy, over the quota, its idempotency key used for other content) is reported through `onResult` and counted,
   * and the others go on. Idempotency keys hold within the call and across calls: run an interrupted job again with
   * the same keys and what was queued is `replayed`, not duplicated. A store failure, an `onResult` that throws, the
   * signal or `close()` stops the run and rejects: the batches written before stay queued (`onResult` reported them).
   */
  enqueueMany(inputs: Iterable<OutgoingEmail> | AsyncIterable<OutgoingEmail>, options: EnqueueManyOptions = {}): Promise<EnqueueManySummary> {
    const batchSize = options.batchSize ?? 500;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
      return Promise.reject(ValidationError.of('batchSize', `must be a whole number from 1 to ${MAX_BATCH}`));
    }
    const iterable = inputs as Partial<Iterable<unknown> & AsyncIterable<unknown>> | null | undefined;
    if (!iterable || typeof iterable !== 'object' || (typeof iterable[Symbol.iterator] !== 'function' && typeof iterable[Symbol.asyncIterator] !== 'function')) {
      return Promise.reject(ValidationError.of('inputs', 'must be an array or an (async) iterable of emails'));
    }
    return this.runtime.track(async () => {
      const summary: EnqueueManySummary = { queued: 0, pendingApproval: 0, replayed: 0, refused: 0 };
      let batch: BatchEntry[] = [];
      let bytes = 0;
      let policy: CompiledPolicy | undefined;
      let index = 0;
      const stopIfAsked = () => {
        options.signal?.throwIfAborted();
        this.runtime.assertOpen();
      };
      const flush = async () => {
        const entries = batch;
        batch = [];
        bytes = 0;
        policy = undefined;
        await this.writeBatch(entries, summary, options.onResult, stopIfAsked);
      };
      stopIfAsked();
      for await (const input of inputs) {
        stopIfAsked();
        // The policy as it is when a batch starts: a change made meanwhile applies from the next batch.
        policy ??= await this.policy();
        const at = index++;
        try {
          const { email, id } = await this.prepare(input, policy);
          const approval = this.approvalFor(email, policy, undefined);
          const base = toNewOutboxRecord(email, this.scope, this.runtime.maxAttempts, id);
          const record = approval === undefined ? base : { ...base, approval: { reason: approval, ttlMs: policy.approval.expiresAfterMs } };
          batch.push({ at, record, key: email.idempotencyKey, policy });
          bytes += storedBytes(record);
        } catch (err) {
          if (!isRefusal(err)) throw err;
          batch.push({ at, error: err });
        }
        if (batch.length >= batchSize || bytes >= MAX_BATCH_BYTES) await flush();
      }
      if (batch.length > 0) await flush();
      return summary;
    });
  }

  /**
   * One batch of `enqueueMany`: the quota taken at once (a key repeated in the batch counts once; near the limit, as
   * many as fit, in order), one store call, one audit entry; then each message's outcome, in order.
   */
  private async writeBatch(entries: BatchEntry[], summary: EnqueueManySummary, onResult: EnqueueManyOptions['onResult'], stopIfAsked: () => void): Promise<void> {
    const started = Date.now();
    const items = new Map<number, EnqueueManyItem>();
    for (const entry of entries) if (entry.error) items.set(entry.at, { index: entry.at, error: entry.error });
    // A key seen earlier in the batch: no quota and no row of its own; it is the first one's replay (or a conflict).
    const firstOfKey = new Map<string, AcceptedEntry>();
    const repeats: { entry: AcceptedEntry; first: AcceptedEntry }[] = [];
    const accepted: AcceptedEntry[] = [];
    for (const entry of entries) {
      if (entry.error) continue;
      const first = entry.key === undefined ? undefined : firstOfKey.get(entry.key);
      if (first) repeats.push({ entry, first });
      else {
        if (entry.key !== undefined) firstOfKey.set(entry.key, entry);
        accepted.push(entry);
      }
    }
    let refund: QuotaRefund | undefined;
    let taken = 0;
    try {
      if (accepted.length > 0) {
        const policy = accepted[0]!.policy;
        try {
          refund = await takeQuota(this.store.counters, this.scope, policy, new Date(), accepted.length);
          taken = accepted.length;
        } catch (err) {
          if (!PolicyError.isInstance(err)) throw err;
          // Not room for all. Messages whose key was stored before are replays and take nothing (a rerun near the
          // limit must not spend its units on them); then as many of the rest as fit, in order.
          for (let j = accepted.length - 1; j >= 0; j--) {
            const entry = accepted[j]!;
            const existing = entry.key === undefined ? undefined : await this.store.outbox.findByIdempotencyKey(this.ownerId, entry.key);
            if (!existing) continue;
            items.set(entry.at, replayItem(entry.at, existing, entry.record.fingerprint, entry.key!));
            accepted.splice(j, 1);
          }
          const fit = await this.takeWhatFits(policy, accepted.length);
          refund = fit.refund;
          taken = fit.count;
          for (const over of accepted.splice(fit.count)) items.set(over.at, { index: over.at, error: fit.error ?? err });
        }
      }
      if (accepted.length > 0) {
        stopIfAsked();
        const results = await this.store.outbox.enqueueMany(accepted.map((a) => a.record));
        let replays = 0;
        results.forEach(({ created: isNew, record }, j) => {
          const { at, key, record: sent } = accepted[j]!;
          if (isNew) items.set(at, { index: at, result: enqueueResultOf(record, false) });
          else {
            replays++;
            items.set(at, replayItem(at, record, sent.fingerprint, key!));
          }
        });
        taken -= replays;
        if (replays > 0) await this.giveBack(() => refund!(replays));
      }
    } catch (err) {
      // Nothing of this batch was written, so its quota goes back; unless the store says it was (then the units are spent).
      if (taken > 0 && (err as { stored?: unknown } | null)?.stored !== true) await this.giveBack(() => refund!(taken));
      await this.auditBatch([...items.values()], started);
      throw err;
    }
    for (const { entry, first } of repeats) {
      const firstItem = items.get(first.at)!;
      items.set(
        entry.at,
        firstItem.error
          ? { index: entry.at, error: firstItem.error }
          : entry.record.fingerprint === first.record.fingerprint
            ? { index: entry.at, result: { ...firstItem.result, replayed: true } }
            : { index: entry.at, error: idempotencyConflict(entry.key!) },
      );
    }
    const ordered = [...items.values()].sort((a, b) => a.index - b.index);
    await this.auditBatch(ordered, started);
    if (ordered.some((item) => item.result && !item.result.replayed && item.result.status === 'queued')) this.runtime.notifyWorkers();
    for (const item of ordered) {
      if (item.error) summary.refused++;
      else if (item.result.replayed) summary.replayed++;
      else if (item.result.status === 'pending_approval') summary.pendingApproval++;
      else summary.queued++;
      await onResult?.(item);
    }
  }

  /** Near the quota's end: takes it one message at a time, as far as it goes. */
  private async takeWhatFits(policy: CompiledPolicy, wanted: number): Promise<{ count: number; refund: QuotaRefund; error: PolicyError | undefined }> {
    const refunds: QuotaRefund[] = [];
    const refund: QuotaRefund = async (units = refunds.length) => {
      for (const give of refunds.splice(0, units)) await give();
    };
    let error: PolicyError | undefined;
    while (refunds.length < wanted) {
      try {
        refunds.push(await takeQuota(this.store.counters, this.scope, policy));
      } catch (err) {
        if (!PolicyError.isInstance(err)) {
          await this.giveBack(refund);
          throw err;
        }
        error = err;
        break;
      }
    }
    return { count: refunds.length, refund, error };
  }

  /** A batch's audit: one entry for what was queued, one per message held for approval, one for what was refused. */
  private async auditBatch(items: readonly EnqueueManyItem[], started: number): Promise<void> {
    const queued = items.filter((item) => item.result && !item.result.replayed && item.result.status !== 'pending_approval').map((item) => item.result!.id);
    if (queued.length > 0) {
      await this.audit('enqueue', 'ok', { batch: true, count: queued.length, ids: queued.slice(0, 20) }, undefined, { durationMs: Date.now() - started });
    }
    for (const item of items) {
      if (item.result && !item.result.replayed && item.result.status === 'pending_approval') {
        await this.audit('approval_requested', 'ok', { id: item.result.id, reason: item.result.approval?.reason, batch: true }, item.result.id);
      }
    }
    const refused = items.filter((item) => item.error).map((item) => item.error!.code);
    if (refused.length > 0) {
      const codes: Record<string, number> = {};
      for (const code of refused) codes[code] = (codes[code] ?? 0) + 1;
      await this.audit('refused', 'error', { operation: 'enqueueMany', count: refused.length, codes }, undefined, { errorCode: refused[0], durationMs: Date.now() - started });
    }
  }

  /**
   * Approves a message waiting for approval (an operator's or a human's call, never the agent's): it is sent now
   * (or queued, when its `sendAt` is later), and the audit names `by`. Throws `APPROVAL_EXPIRED` after its expiry
   * (it is never sent then), `APPROVAL_NOT_PENDING` when it was decided or cancelled already, `NOT_FOUND`.
   */
  approve(id: string, options: { by: string; signal?: AbortSignal }): Promise<SendResult> {
    return this.runtime.track(async () => {
      const { outcome, record } = await this.decide(id, true, options?.by);
      if (outcome === 'expired') {
        throw new AgentSmtpError('APPROVAL_EXPIRED', `Message "${id}" waited for approval past ${record.approval?.expiresAt.toISOString()}; it was not sent and never will be. Send it again if it is still wanted.`);
      }
      // Sent from here when it is due, so approving works without a worker. A human approved it: a transient failure
      // puts it back in the queue (retried from here or by a worker), never leaves it failed with nobody to retry it.
      let claimed: OutboxRecord | undefined;
      try {
        [claimed] = await this.store.outbox.claim({ ids: [id], ownerId: this.ownerId, limit: 1, workerId: this.runtime.directWorkerId, leaseMs: this.runtime.leaseMs });
      } catch (err) {
        // The approval is recorded (the message is queued): a store that fails now must not leave it to a worker
        // that may not exist. This process tries again when it can.
        this.runtime.logger.warn({ err, id }, 'approved, but could not start sending now; sending it later');
        this.runtime.deliverLater(record);
        return resultOf(record, false);
      }
      if (!claimed) {
        const current = (await this.store.outbox.get(this.ownerId, id)) ?? record;
        if (current.status === 'queued') this.runtime.deliverLater(current);
        return resultOf(current, false);
      }
      const delivery = await this.runtime.deliverNow(claimed, options.signal, { retry: true });
      if (delivery.settlement.status === 'retry') return resultOf(delivery.record, false);
      if (delivery.failure !== undefined) throw delivery.failure;
      return resultOf(delivery.record, false, delivery);
    });
  }

  /** Rejects a message waiting for approval: it is never sent. Same errors as `approve`, but an expired one is just reported `expired`. */
  reject(id: string, options: { by: string }): Promise<{ id: string; status: OutboxStatus }> {
    return this.runtime.track(async () => {
      const { record } = await this.decide(id, false, options?.by);
      return { id, status: record.status };
    });
  }

  /** Records a human's decision and audits it (with who decided); throws `NOT_FOUND` and `APPROVAL_NOT_PENDING`. */
  private async decide(id: string, approve: boolean, byInput: unknown): Promise<ApprovalDecision> {
    const by = actorOf(byInput);
    const started = Date.now();
    const decision = await this.store.outbox.decide(this.ownerId, id, { approve, by });
    if (!decision) throw new AgentSmtpError('NOT_FOUND', `No message with id "${id}" exists for this owner.`);
    const { outcome, record } = decision;
    // A message that will never be sent gives its quota back.
    if (outcome === 'rejected' || outcome === 'expired') await this.runtime.refundQuota(record);
    const decided = outcome === 'approved' || outcome === 'rejected';
    await this.audit(approve ? 'approve' : 'reject', decided ? 'ok' : 'error', { id, outcome }, id, {
      actor: by,
      agentId: record.agentId,
      recipientCount: envelopeRecipients(record.email).length,
      durationMs: Date.now() - started,
      ...(decided ? {} : { errorCode: outcome === 'expired' ? 'APPROVAL_EXPIRED' : 'APPROVAL_NOT_PENDING' }),
    });
    if (outcome === 'not_pending') throw new AgentSmtpError('APPROVAL_NOT_PENDING', `Message "${id}" is not waiting for approval (it is ${record.status}); nothing changed.`);
    return decision;
  }

  /**
   * The messages waiting for approval, oldest first: every agent's of this owner for a mailer without an agent (an
   * operator's), else this agent's. Page with `after` (the last id of the previous page).
   */
  async listPending(options: { after?: string; limit?: number } = {}): Promise<PendingEmail[]> {
    const records = await this.store.outbox.listPending(this.ownerId, { agentId: this.agentId, after: options.after, limit: options.limit });
    return records.map(pendingOf);
  }

  /**
   * This owner's audit trail, newest first: this agent's entries for a mailer with an agent, else every agent's (or
   * `agentId`'s). Pass `nextCursor` back as `cursor` for the next (older) page.
   */
  async listAudit(query: AuditQuery = {}): Promise<AuditPage> {
    const limit = Math.min(Math.max(Math.floor(query.limit ?? 100), 1), 1000);
    for (const [field, value] of [['from', query.from], ['to', query.to]] as const) {
      if (value !== undefined && !(value instanceof Date && !Number.isNaN(value.getTime()))) throw ValidationError.of(field, 'must be a valid Date');
    }
    const entries = await this.store.audit.list(this.ownerId, {
      agentId: this.agentId ?? query.agentId,
      action: query.action,
      from: query.from,
      to: query.to,
      before: query.cursor,
      limit,
    });
    return { entries, nextCursor: entries.length === limit ? entries[entries.length - 1]!.id : undefined };
  }

  /**
   * What happened to this owner's mail (every agent's): sends, recipients accepted, opens and clicks with people and
   * machines apart, bounces, unsubscribes, complaints. Narrow by message id, tag and time (`from` inclusive, `to` not).
   */
  async getStats(query: MailStatsQuery = {}): Promise<MailStats> {
    for (const [field, value] of [['from', query.from], ['to', query.to]] as const) {
      if (value !== undefined && !(value instanceof Date && !Number.isNaN(value.getTime()))) throw ValidationError.of(field, 'must be a valid Date');
    }
    return this.store.stats.summary(this.ownerId, query);
  }

  /**
   * Why `input` would wait for a human under this agent's policy, or undefined when it would go out at once. Composes
   * the email as `send` would (and throws what `send` would throw), but stores and sends nothing.
   */
  async approvalNeeded(input: OutgoingEmail): Promise<string | undefined> {
    const policy = await this.policy();
    if (!hasApprovalRules(policy)) return undefined;
    return approvalReason(policedComposed((await this.prepare(input, policy)).email), policy);
  }

  /** This owner's suppressed addresses (unsubscribes, bounces, complaints, added by hand), oldest first. */
  async listSuppressions(options: { limit?: number } = {}): Promise<Suppression[]> {
    return this.store.suppressions.list(this.ownerId, { limit: Math.min(Math.max(Math.floor(options.limit ?? 100), 1), 10_000) });
  }

  /** Suppresses an address for this owner: every later send to it is refused (`SUPPRESSED`). Audited. */
  async suppress(address: string, options: { reason?: Suppression['reason']; by?: string } = {}): Promise<Suppression> {
    const wire = parseAddress(address, 'address').address;
    const added = await this.store.suppressions.add({ ownerId: this.ownerId, address: wire, reason: options.reason ?? 'manual', detail: options.by ? { by: options.by } : {} });
    await this.audit('suppression_add', 'ok', { address: wire, reason: added.reason }, undefined, { actor: options.by });
    return added;
  }

  /** Lifts a suppression (the recipient asked to get mail again). Returns whether there was one. Audited. */
  async unsuppress(address: string, options: { by?: string } = {}): Promise<boolean> {
    const wire = parseAddress(address, 'address').address;
    const removed = await this.store.suppressions.remove(this.ownerId, wire);
    await this.audit('suppression_remove', 'ok', { address: wire, removed }, undefined, { actor: options.by });
    return removed;
  }

  /** One message waiting for approval as the person deciding sees it; undefined when it is not (or no longer) waiting. */
  async getPending(id: string): Promise<PendingEmail | undefined> {
    const record = await this.store.outbox.get(this.ownerId, id);
    if (record?.status !== 'pending_approval' || approvalLapsed(record)) return undefined;
    return pendingOf(record);
  }

  /**
   * What this agent may do, in a sentence or two a model can plan with: whom it may write to, how many emails are
   * left today, what needs approval. Empty when its policy limits nothing.
   */
  async describeLimits(): Promise<string> {
    return describeLimits(this.store.counters, this.scope, await this.policy());
  }

  /** Cancels a queued message that no worker has claimed yet. Returns whether it was cancelled. */
  async cancel(id: string): Promise<{ cancelled: boolean; status: OutboxStatus }> {
    const result = await this.store.outbox.cancel(this.ownerId, id);
    if (!result) throw new AgentSmtpError('NOT_FOUND', `No message with id "${id}" exists for this owner.`);
    if (result.cancelled) await this.runtime.refundQuota(result.record);
    await this.audit('cancel', result.cancelled ? 'ok' : 'error', { id, status: result.record.status }, id);
    return { cancelled: result.cancelled, status: result.record.status };
  }

  /**
   * Starts a worker that sends this owner's queued messages from the store. Several workers, in several processes
   * on several machines, may share one Postgres store. `stop()` finishes what the worker claimed.
   */
  startWorker(options: WorkerOptions = {}): OutboxWorker {
    const worker = this.runtime.startWorker(this.ownerId, options);
    this.workers.add(worker);
    return worker;
  }

  /** The record of a message sent by this owner, with its history and follow-ups; undefined when there is none. */
  async getStatus(id: string): Promise<MessageStatusReport | undefined> {
    const stored = await this.store.outbox.get(this.ownerId, id);
    if (!stored) return undefined;
    // One whose approval ran out is expired already, whether or not a store write has marked it so yet.
    const record = stored.status === 'pending_approval' && approvalLapsed(stored) ? { ...stored, status: 'expired' as const } : stored;
    const [history, followUps] = await Promise.all([this.store.events.list(this.ownerId, { messageId: id }), this.followUpsOf(record)]);
    return { ...record, history, followUps };
  }

  /** Connects to (and authenticates with) every server without sending; reports latency or the error for each. */
  testConnection(): Promise<VerifyResult[]> {
    return this.runtime.track(() => this.runtime.pools.use(this.scope, (pool) => pool.verify()));
  }

  /** Health and counters per server (none yet when this owner's servers were not used). Holds no credentials. */
  status(): MailerStatus {
    return { servers: this.runtime.pools.peek(this.scope)?.status() ?? [] };
  }

  /** Prefers one server by name for the sends that follow; `null` goes back to priority order. */
  async useServer(name: string | null): Promise<void> {
    await this.runtime.pools.use(this.scope, async (pool) => pool.use(name));
    await this.audit('use_server', 'ok', { server: name });
  }

  /**
   * Takes a new server list without dropping sends in flight: the one given, or else the configuration read again
   * from where it came from (the environment, or the `servers` function). A list given in code stays as it is.
   * A service's mailer reads its owner's stored configuration again.
   */
  async reload(servers?: readonly SmtpServerConfig[]): Promise<void> {
    if (this.own) {
      this.own.pools.reload(servers ?? this.own.loadServers());
      await this.audit('reload', 'ok', { servers: this.own.pools.pool.serverNames });
      return;
    }
    if (servers) throw ValidationError.of('servers', 'cannot be given to a service mailer: save the SMTP configuration through the service instead');
    const pools = this.runtime.pools as { invalidate?(ownerId: string): void };
    pools.invalidate?.(this.ownerId);
    // Read them again now, so what follows (status, the reload tool's answer) shows the servers as they are.
    await this.runtime.pools.use(this.scope, async () => undefined);
    await this.audit('reload', 'ok', { servers: this.status().servers.map((s) => s.name) });
  }

  /** Replaces every SMTP connection and clears every server's backoff. */
  async reconnect(): Promise<void> {
    await this.runtime.pools.use(this.scope, async (pool) => pool.reconnect());
    await this.audit('reconnect', 'ok', {});
  }

  /**
   * A mailer made by `createMailer`: stops taking sends, waits up to `timeoutMs` (default 10 s) for the sends and
   * workers in flight, then cuts off what is still running by closing every connection: a message cut off before
   * the server had all of it goes back to the queue (or, for `send()`, fails retryably), one cut off after is
   * `unknown`; none is lost. Then closes the store if the mailer made it. Leaves no timer behind. Follow-ups not yet
   * due stay queued for a worker. A service's mailer only stops the workers it started; `service.close()` does the rest.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.own) return this.runtime.close(options.timeoutMs ?? 10_000);
    await Promise.all([...this.workers].map((w) => w.stop()));
    this.workers.clear();
  }

  private get scope() {
    return { ownerId: this.ownerId, agentId: this.agentId };
  }

  /** The follow-ups queued for this message's deferred recipients, and theirs in turn (see `followUpTree`). */
  private async followUpsOf(record: OutboxRecord): Promise<FollowUpStatus[]> {
    return (await followUpTree(this.store.outbox, record)).map(({ followUp: f, of }) => ({
      id: f.id,
      followUpOf: of,
      status: f.status,
      recipients: f.email.envelopeTo ?? [],
      accepted: f.accepted,
      rejected: f.rejected,
      error: f.error,
    }));
  }

  /**
   * Stores a composed email, after taking one message from the agent's quota; gives the quota back when nothing new
   * was stored (a replayed key) or the store refused it. A quota refusal for a key already stored is no refusal:
   * the caller gets the stored result, as for any replay.
   */
  private async accept(email: NormalizedEmail, id: string, policy: CompiledPolicy, claim: { workerId: string; leaseMs: number } | undefined, approval: string | undefined) {
    let refund: (() => Promise<void>) | undefined;
    const record = { ...toNewOutboxRecord(email, this.scope, this.runtime.maxAttempts, id), ...(approval === undefined ? {} : { approval: { reason: approval, ttlMs: policy.approval.expiresAfterMs } }) };
    try {
      refund = await takeQuota(this.store.counters, this.scope, policy);
    } catch (err) {
      // Out of quota, but the key was used before: that is a replay, answered from the stored record; nothing new is stored.
      const existing = PolicyError.isInstance(err) && email.idempotencyKey !== undefined ? await this.store.outbox.findByIdempotencyKey(this.ownerId, email.idempotencyKey) : undefined;
      if (!existing) throw err;
      return checkedReplay(existing, record.fingerprint, email.idempotencyKey!);
    }
    try {
      const result = await this.store.outbox.enqueue(record, claim ? { claim } : {});
      if (!result.created) {
        await this.giveBack(refund);
        return checkedReplay(result.record, record.fingerprint, email.idempotencyKey!);
      }
      return result;
    } catch (err) {
      await this.giveBack(refund);
      throw err;
    }
  }

  private async giveBack(refund: (() => Promise<void>) | undefined): Promise<void> {
    try {
      await refund?.();
    } catch (err) {
      this.runtime.logger.warn({ err }, 'could not give quota back');
    }
  }

  /** Stores a message that needs approval; nothing is sent. */
  private async hold(email: NormalizedEmail, id: string, policy: CompiledPolicy, reason: string): Promise<SendResult> {
    const { created, record } = await this.accept(email, id, policy, undefined, reason);
    if (created) {
      const to = envelopeRecipients(record.email);
      await this.audit('approval_requested', 'ok', { id: record.id, to, reason }, record.id, { recipientCount: to.length });
    }
    return resultOf(record, !created);
  }

  private async sendNow(email: NormalizedEmail, id: string, policy: CompiledPolicy, signal: AbortSignal | undefined, approvedBy: string | undefined): Promise<SendResult> {
    const lease = { workerId: this.runtime.directWorkerId, leaseMs: this.runtime.leaseMs };
    const { created, record: existing } = await this.accept(email, id, policy, lease, undefined);
    if (created && approvedBy !== undefined) {
      await this.audit('approve', 'ok', { id: existing.id, outcome: 'approved_before_send' }, existing.id, { actor: approvedBy, recipientCount: envelopeRecipients(existing.email).length });
    }
    let record = existing;
    if (!created) {
      if (existing.status !== 'failed') return resultOf(existing, true);
      if (!existing.error?.retryable) throw errorOf(existing);
      // A retryable failure may be tried again under the same key.
      const reclaimed = await this.store.outbox.reclaim(this.ownerId, existing.id, lease);
      if (!reclaimed) return resultOf((await this.store.outbox.get(this.ownerId, existing.id)) ?? existing, true);
      record = reclaimed;
    }
    return this.deliverClaimed(record, signal);
  }

  /** Delivers a record this process claimed, and reports it as `send` does (throws when it was not sent). */
  private async deliverClaimed(record: OutboxRecord, signal: AbortSignal | undefined): Promise<SendResult> {
    const delivery = await this.runtime.deliverNow(record, signal);
    if (delivery.failure !== undefined) throw delivery.failure;
    this.runtime.logger.info({ id: record.id, server: delivery.settlement.server, status: delivery.settlement.status }, 'email sent');
    return resultOf(delivery.record, false, delivery);
  }

  private policy(): Promise<CompiledPolicy> {
    return this.runtime.policies.policyFor(this.scope);
  }

  /** Composes the email under this agent's policy; its record id is assigned first, so tracking tokens can name it. */
  private async prepare(input: OutgoingEmail, policy: CompiledPolicy): Promise<{ email: NormalizedEmail; id: string }> {
    // Known at once for a mailer with servers of its own; a service may have to read the owner's configuration.
    const sender = this.runtime.pools.senderFor(this.scope);
    const serverFrom = sender instanceof Promise ? await sender : sender;
    // An agent that may not send is refused before any file is read for it.
    assertMaySend(policy);
    // Files named by path are read (inside the agent's folder, within its caps) before anything else looks at them.
    const withFiles = await readPathAttachments(input, policy);
    const id = newRecordId();
    const ids = { ownerId: this.ownerId, messageId: id };
    return { email: composeEmail(withFiles, this.runtime.composeContext(serverFrom, policy, ids)), id };
  }

  /** Why the message must wait for a human, unless one approved it already. */
  private approvalFor(email: NormalizedEmail, policy: CompiledPolicy, approvedBy: string | undefined): string | undefined {
    if (approvedBy !== undefined) {
      actorOf(approvedBy);
      return undefined;
    }
    // The common case (no approval rule) costs nothing on the send path.
    return hasApprovalRules(policy) ? approvalReason(policedComposed(email), policy) : undefined;
  }

  /** Runs a send or enqueue; a refusal (policy, validation) gets an audit entry before it is thrown. */
  private async refusalsAudited<T>(operation: 'send' | 'enqueue', run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      return await run();
    } catch (err) {
      if (isRefusal(err)) {
        const field = (err as { field?: unknown }).field;
        await this.audit('refused', 'error', { operation, ...(typeof field === 'string' ? { field } : {}) }, undefined, { errorCode: err.code, durationMs: Date.now() - started });
      }
      throw err;
    }
  }

  /** Best effort: a failing audit write is logged, never turned into an error after the work was done. */
  private async audit(
    action: string,
    outcome: 'ok' | 'error',
    detail: Record<string, unknown>,
    messageId?: string,
    fields: Partial<Pick<AuditEntry, 'actor' | 'recipientCount' | 'durationMs' | 'errorCode' | 'agentId'>> = {},
  ): Promise<void> {
    try {
      const extra = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
      await this.store.audit.append({ ownerId: this.ownerId, agentId: this.agentId, action, outcome, messageId, detail, ...extra });
    } catch (err) {
      this.runtime.logger.warn({ err, action, messageId }, 'could not write the audit entry');
    }
  }
}

function serversFromEnv(env: Record<string, string | undefined>): SmtpServerConfig[] {
  const servers = loadSmtpServersFromEnv(env);
  if (servers.length === 0) {
    throw new ConfigError('No SMTP server is configured: pass `servers` to createMailer, or set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD).', {
      setting: 'SMTP_HOST',
    });
  }
  return servers;
}

/** `enqueueMany`'s largest batch: within the API's default "Max rows" (1,000) of the Supabase store. */
const MAX_BATCH = 1_000;
/** A batch is written once its messages' content reaches this many bytes, however few they are. */
const MAX_BATCH_BYTES = 32 * 2 ** 20;

type AcceptedEntry = { at: number; record: NewOutboxRecord; key: string | undefined; policy: CompiledPolicy; error?: undefined };
type BatchEntry = AcceptedEntry | { at: number; error: AgentSmtpError; record?: undefined; key?: undefined; policy?: undefined };

/** About what a record weighs in a batch: its bodies and attachments, and a little for the rest. */
function storedBytes(record: NewOutboxRecord): number {
  let bytes = 1_024 + (record.email.text?.length ?? 0) + (record.email.html?.length ?? 0);
  for (const attachment of record.email.attachments) bytes += attachment.contentBase64.length;
  return bytes;
}

/** What the caller got wrong, or the policy refused: audited as a refusal, and in `enqueueMany` one message's outcome. */
function isRefusal(err: unknown): err is AgentSmtpError {
  return AgentSmtpError.isInstance(err) && (PolicyError.isInstance(err) || err.code === 'VALIDATION_ERROR' || err.code === 'TEMPLATE_ERROR' || err.code === 'IDEMPOTENCY_CONFLICT');
}

function enqueueResultOf(record: OutboxRecord, replayed: boolean): EnqueueResult {
  return {
    id: record.id,
    messageId: record.messageId,
    status: record.status,
    sendAt: record.sendAt,
    replayed,
    ...(record.approval ? { approval: record.approval } : {}),
  };
}

/** A batch message whose key was stored before: a replay when it is the same message, else a conflict (refused). */
function replayItem(index: number, existing: OutboxRecord, fingerprint: string | undefined, key: string): EnqueueManyItem {
  try {
    return { index, result: enqueueResultOf(checkedReplay(existing, fingerprint, key).record, true) };
  } catch (err) {
    return { index, error: err as AgentSmtpError };
  }
}

/** A stored record under a replayed key: the caller's message must be the same one, or it is a conflict. */
function checkedReplay(existing: OutboxRecord, fingerprint: string | undefined, key: string): { created: false; record: OutboxRecord } {
  if (existing.fingerprint !== fingerprint) throw idempotencyConflict(key);
  return { created: false, record: existing };
}

/** The other message is named by nothing here: it may be another agent's of the same owner. */
function idempotencyConflict(key: string): AgentSmtpError {
  return new AgentSmtpError('IDEMPOTENCY_CONFLICT', `idempotencyKey "${key}" was already used for a different message; use a new key for a new message.`);
}

/** The result of a send; `delivery` when this call sent it (its per-recipient answers and follow-up). */
function resultOf(record: OutboxRecord, replayed: boolean, delivery?: Pick<Delivery, 'rejectedReasons' | 'deferred' | 'followUp'>): SendResult {
  return {
    id: record.id,
    messageId: record.messageId,
    status: record.status,
    server: record.server,
    accepted: [...record.accepted],
    rejected: [...record.rejected],
    rejectedReasons: delivery?.rejectedReasons ?? record.rejected.map((address) => ({ address, responseCode: undefined, response: undefined })),
    deferred: delivery?.deferred ?? [],
    followUpId: delivery?.followUp?.id,
    response: record.response,
    replayed,
    ...(record.approval ? { approval: record.approval } : {}),
  };
}

/** A message's approval ran out (whether or not a store write has marked it `expired` yet). */
function approvalLapsed(record: OutboxRecord): boolean {
  return record.approval !== undefined && record.approval.expiresAt.getTime() <= Date.now();
}

/** Who decided, as the audit records it: 1 to 256 printable characters. */
function actorOf(by: unknown): string {
  if (typeof by !== 'string' || by.length === 0 || by.length > 256 || /[\u0000-\u001f\u007f]/.test(by)) {
    throw ValidationError.of('by', 'must name who decided (1 to 256 printable characters), e.g. a user id or email');
  }
  return by;
}

const PREVIEW_CHARS = 500;
const MAX_LINKS_SHOWN = 50;
// A run of URL characters after the scheme: no nested quantifier, so the scan stays linear.
const LINK = /https?:\/\/[^\s"'<>]+/gi;

/**
 * The distinct http(s) links in a body, in order, `&amp;` decoded, at most `MAX_LINKS_SHOWN`. A tracked link shows
 * where it really goes (the URL inside its token); the pixel and the unsubscribe link are left out.
 */
function linksIn(text: string): string[] {
  const links = new Set<string>();
  for (const match of text.matchAll(LINK)) {
    const link = untracked(match[0].replace(/&amp;/g, '&'));
    if (link !== undefined) links.add(link);
    if (links.size >= MAX_LINKS_SHOWN) break;
  }
  return [...links];
}

const TRACKING_ROUTE = /\/([cou])\/([A-Za-z0-9_.~-]+)$/;

function untracked(link: string): string | undefined {
  const route = TRACKING_ROUTE.exec(link);
  const payload = route ? readOwnToken(route[2]!) : undefined;
  if (!payload) return link;
  return payload.kind === 'click' ? payload.url : undefined;
}

function pendingOf(record: OutboxRecord): PendingEmail {
  const body = record.email.text ?? record.email.html ?? '';
  return {
    id: record.id,
    agentId: record.agentId,
    from: record.email.from.address,
    recipients: envelopeRecipients(record.email),
    subject: record.email.subject,
    preview: body.length > PREVIEW_CHARS ? `${body.slice(0, PREVIEW_CHARS)}…` : body,
    bodyChars: body.length,
    links: linksIn(`${record.email.text ?? ''}\n${record.email.html ?? ''}`),
    attachments: record.email.attachments.map((a) => ({ filename: a.filename, bytes: Buffer.byteLength(a.contentBase64, 'base64') })),
    reason: record.approval?.reason ?? '',
    expiresAt: record.approval?.expiresAt ?? record.createdAt,
    createdAt: record.createdAt,
  };
}

/** The stored failure of an earlier send under the same key, as the error it was (retryable as it was). */
function errorOf(record: OutboxRecord): SmtpError {
  const e = record.error!;
  return new SmtpError(
    e.code as AgentSmtpErrorCode,
    e.message,
    { server: record.server, responseCode: e.responseCode, response: e.response },
    { retryable: e.retryable },
  );
}
