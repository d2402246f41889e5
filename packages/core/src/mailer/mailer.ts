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
import { followUpTree } from '../outbox/follow-up.js';
import type { OutboxWorker, WorkerOptions } from '../outbox/outbox-worker.js';
import { composeEmail, toNewOutboxRecord } from '../pipeline/compose.js';
import type { BackoffOptions } from '../pool/backoff.js';
import type { ServerStatus } from '../pool/server-state.js';
import type { RejectedRecipient, VerifyResult } from '../pool/smtp-pool.js';
import { StaticPoolSource } from '../service/pool-source.js';
import type { MailEvent, MailStore, MessageError, OutboxRecord, OutboxStatus } from '../store/mail-store.js';
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
}

export interface EnqueueResult {
  id: string;
  messageId: string;
  status: OutboxStatus;
  sendAt: Date;
  /** True when the idempotency key was seen before: nothing new was queued. */
  replayed: boolean;
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
      this.runtime = new MailRuntime(options.store ?? new MemoryStore(), pools, logger, options, options.store === undefined);
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
  send(input: OutgoingEmail, options: { signal?: AbortSignal } = {}): Promise<SendResult> {
    // Tracked from the first step, so a close() that starts meanwhile waits for it rather than closing under it.
    return this.runtime.track(async () => {
      const email = await this.prepare(input);
      if (email.sendAt && email.sendAt.getTime() > Date.now() + 1_000) {
        throw ValidationError.of('sendAt', 'is in the future: send() sends now; use enqueue() to schedule a message');
      }
      return this.runtime.once(this.ownerId, email.idempotencyKey, () => this.sendNow(email, options.signal));
    });
  }

  /**
   * Validates and renders an email and puts it in the outbox, to be sent by a worker (`startWorker`) at
   * `sendAt` (default: now). With an `idempotencyKey` seen before, queues nothing and returns the first record.
   */
  enqueue(input: OutgoingEmail): Promise<EnqueueResult> {
    return this.runtime.track(async () => {
      const email = await this.prepare(input);
      return this.runtime.once(this.ownerId, email.idempotencyKey, async () => {
        const { created, record } = await this.insert(email, undefined);
        if (created) {
          await this.audit('enqueue', 'ok', { id: record.id, to: envelopeRecipients(record.email), sendAt: record.sendAt.toISOString() }, record.id);
          this.runtime.notifyWorkers();
        }
        return { id: record.id, messageId: record.messageId, status: record.status, sendAt: record.sendAt, replayed: !created };
      });
    });
  }

  /** Cancels a queued message that no worker has claimed yet. Returns whether it was cancelled. */
  async cancel(id: string): Promise<{ cancelled: boolean; status: OutboxStatus }> {
    const result = await this.store.outbox.cancel(this.ownerId, id);
    if (!result) throw new AgentSmtpError('NOT_FOUND', `No message with id "${id}" exists for this owner.`);
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
    const record = await this.store.outbox.get(this.ownerId, id);
    if (!record) return undefined;
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

  private async insert(email: NormalizedEmail, claim: { workerId: string; leaseMs: number } | undefined) {
    const record = toNewOutboxRecord(email, this.scope, this.runtime.maxAttempts);
    const result = await this.store.outbox.enqueue(record, claim ? { claim } : {});
    if (!result.created && result.record.fingerprint !== record.fingerprint) {
      throw new AgentSmtpError(
        'IDEMPOTENCY_CONFLICT',
        `idempotencyKey "${email.idempotencyKey}" was already used for a different message (${result.record.id}); use a new key for a new message.`,
      );
    }
    return result;
  }

  private async sendNow(email: NormalizedEmail, signal: AbortSignal | undefined): Promise<SendResult> {
    const lease = { workerId: this.runtime.directWorkerId, leaseMs: this.runtime.leaseMs };
    const { created, record: existing } = await this.insert(email, lease);
    let record = existing;
    if (!created) {
      if (existing.status !== 'failed') return resultOf(existing, true);
      if (!existing.error?.retryable) throw errorOf(existing);
      // A retryable failure may be tried again under the same key.
      const reclaimed = await this.store.outbox.reclaim(this.ownerId, existing.id, lease);
      if (!reclaimed) return resultOf((await this.store.outbox.get(this.ownerId, existing.id)) ?? existing, true);
      record = reclaimed;
    }
    const delivery = await this.runtime.deliverNow(record, signal);
    if (delivery.failure !== undefined) throw delivery.failure;
    this.runtime.logger.info({ id: record.id, server: delivery.settlement.server, status: delivery.settlement.status }, 'email sent');
    return {
      ...resultOf(delivery.record, false),
      rejectedReasons: delivery.rejectedReasons,
      deferred: delivery.deferred,
      followUpId: delivery.followUp?.id,
    };
  }

  private async prepare(input: OutgoingEmail): Promise<NormalizedEmail> {
    // Known at once for a mailer with servers of its own; a service may have to read the owner's configuration.
    const sender = this.runtime.pools.senderFor(this.scope);
    const serverFrom = sender instanceof Promise ? await sender : sender;
    return composeEmail(input, { ...this.runtime.compose, serverFrom });
  }

  /** Best effort: a failing audit write is logged, never turned into an error after the work was done. */
  private async audit(action: string, outcome: 'ok' | 'error', detail: Record<string, unknown>, messageId?: string): Promise<void> {
    try {
      await this.store.audit.append({ ownerId: this.ownerId, agentId: this.agentId, action, outcome, messageId, detail });
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

function resultOf(record: OutboxRecord, replayed: boolean): SendResult {
  return {
    id: record.id,
    messageId: record.messageId,
    status: record.status,
    server: record.server,
    accepted: [...record.accepted],
    rejected: [...record.rejected],
    rejectedReasons: record.rejected.map((address) => ({ address, responseCode: undefined, response: undefined })),
    deferred: [],
    followUpId: undefined,
    response: record.response,
    replayed,
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
