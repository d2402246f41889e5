import { randomUUID } from 'node:crypto';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import type { Logger } from '../logger/logger.js';
import { parseAddress, parseAddressList, type AddressInput, type AddressListInput } from '../message/address.js';
import { DEFAULT_LIMITS, type MessageLimits } from '../message/limits.js';
import { assertSingleLine } from '../message/normalize-email.js';
import { type Delivery, deliver } from '../outbox/deliver.js';
import { FollowUpDelivery } from '../outbox/follow-up-delivery.js';
import { isFollowUp } from '../outbox/follow-up.js';
import { refundDailyQuota } from '../policy/quota.js';
import { OUTBOX_DEFAULTS } from '../outbox/outbox-defaults.js';
import { OutboxWorker, type WorkerOptions } from '../outbox/outbox-worker.js';
import { DEFAULT_SEND_CHECKS, type SendCheck } from '../outbox/send-checks.js';
import type { RetryOptions } from '../outbox/settlement.js';
import type { ComposeContext } from '../pipeline/compose.js';
import { resolveTracking } from '../pipeline/apply-tracking.js';
import type { TrackingOptions } from '../tracking/tracking-types.js';
import { checkRecipientsAndContent, policedStored } from '../policy/check-policy.js';
import { type PolicyLookup, PolicySource } from '../policy/policy-source.js';
import type { PoolSource } from '../service/pool-source.js';
import type { MailStore, OutboxRecord } from '../store/mail-store.js';
import { TemplateEngine } from '../template/template-engine.js';

/** How long close() waits, after cutting the connections, for the work they held to settle. */
const CLOSE_GRACE_MS = 2_000;

/** True when `timeoutMs` passed before `work` settled; leaves no timer either way. */
async function raceTimeout(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work.then(
        () => false,
        () => false,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The options a single mailer and a whole service share: how messages are composed, stored and retried. */
export interface MailSettings {
  /** Applied to every message that does not set its own. */
  defaults?: { from?: AddressInput; replyTo?: AddressListInput; headers?: Record<string, string> };
  limits?: Partial<MessageLimits>;
  /**
   * `strict` (default true) refuses a template with a missing variable instead of rendering it empty. The compiled
   * template cache holds `cacheSize` templates (500) within `cacheBytes` (8 MiB).
   */
  templates?: { strict?: boolean; cacheSize?: number; cacheBytes?: number };
  /**
   * Queued sends: tries per message (default 10), the backoff between them and how long to keep trying
   * (`retry`: 30 s doubling to 1 h, for up to 24 h), and the lease of a send, direct or by a worker (60 s, renewed
   * while sending; a worker's own `leaseMs` overrides it). The defaults are `OUTBOX_DEFAULTS`.
   */
  outbox?: {
    maxAttempts?: number;
    retry?: RetryOptions;
    leaseMs?: number;
    /** Waits between tries to record an outcome while the store fails. Default: 50, 200, 800, 2000, 4000 ms. */
    recordRetryDelaysMs?: readonly number[];
  };
  /** Checks run on every message right before it is sent, after the built-in suppression check. */
  sendChecks?: readonly SendCheck[];
  /** Link rewriting, the open pixel and one-click unsubscribe (see docs/tracking.md). Default: none. */
  tracking?: TrackingOptions;
}

/**
 * What the mailers of one process share: the store, the pools, the settings, the work in flight and the follow-ups
 * it must deliver. A `createMailer` mailer has one of its own; a service's `forAgent` mailers share the service's.
 */
export class MailRuntime {
  readonly compose: Omit<ComposeContext, 'serverFrom' | 'ids'>;
  readonly maxAttempts: number;
  readonly leaseMs: number;
  readonly retry: Required<RetryOptions>;
  readonly checks: readonly SendCheck[];
  readonly directWorkerId = `direct:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** Where each agent's policy comes from. */
  readonly policies: PolicyLookup;
  private readonly recordRetryDelaysMs: readonly number[] | undefined;
  private readonly followUps: FollowUpDelivery;
  private readonly running = new Set<Promise<unknown>>();
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly workers = new Set<OutboxWorker>();
  private closing: Promise<void> | undefined;

  constructor(
    readonly store: MailStore,
    readonly pools: PoolSource,
    readonly logger: Logger,
    settings: MailSettings,
    private readonly ownsStore: boolean,
    policies: PolicyLookup = PolicySource.fixed(undefined),
  ) {
    this.policies = policies;
    const defaultHeaders = settings.defaults?.headers ?? {};
    for (const [name, value] of Object.entries(defaultHeaders)) assertSingleLine(value, `defaults.headers.${name}`);
    this.compose = {
      limits: { ...DEFAULT_LIMITS, ...settings.limits },
      templates: new TemplateEngine({
        strict: settings.templates?.strict ?? true,
        cacheSize: settings.templates?.cacheSize,
        cacheBytes: settings.templates?.cacheBytes,
      }),
      defaultFrom: settings.defaults?.from === undefined ? undefined : parseAddress(settings.defaults.from, 'defaults.from'),
      defaultReplyTo: parseAddressList(settings.defaults?.replyTo, 'defaults.replyTo'),
      defaultHeaders,
      tracking: resolveTracking(settings.tracking),
    };
    this.maxAttempts = settings.outbox?.maxAttempts ?? OUTBOX_DEFAULTS.maxAttempts;
    this.leaseMs = settings.outbox?.leaseMs ?? OUTBOX_DEFAULTS.leaseMs;
    this.retry = { ...OUTBOX_DEFAULTS.retry, ...settings.outbox?.retry };
    this.recordRetryDelaysMs = settings.outbox?.recordRetryDelaysMs;
    // The policy again right before sending: it may have changed while the message waited (an agent stopped).
    const policyCheck: SendCheck = async (record) =>
      checkRecipientsAndContent(policedStored(record.email), await policies.policyFor({ ownerId: record.ownerId, agentId: record.agentId }));
    // A message refused for good right before sending was never sent: its quota goes back.
    this.checks = [...DEFAULT_SEND_CHECKS, policyCheck, ...(settings.sendChecks ?? [])].map(
      (check): SendCheck =>
        async (record, context) => {
          try {
            await check(record, context);
          } catch (err) {
            if (AgentSmtpError.isInstance(err) && !err.retryable) await this.refundQuota(record);
            throw err;
          }
        },
    );
    this.followUps = new FollowUpDelivery({
      store,
      pools,
      checks: this.checks,
      logger,
      leaseMs: this.leaseMs,
      workerId: this.directWorkerId,
      retry: this.retry,
      followUpRetry: this.retry,
      recordRetryDelaysMs: this.recordRetryDelaysMs,
    });
  }

  /**
   * The context of one compose, field by field: a spread of `compose` plus fields gave every send a V8 hidden class
   * of its own on Node 20, and made every read of the context in the compose pipeline a slow one.
   */
  composeContext(serverFrom: ComposeContext['serverFrom'], policy: ComposeContext['policy'], ids: ComposeContext['ids']): ComposeContext {
    const c = this.compose;
    return {
      limits: c.limits,
      templates: c.templates,
      defaultFrom: c.defaultFrom,
      serverFrom,
      defaultReplyTo: c.defaultReplyTo,
      defaultHeaders: c.defaultHeaders,
      policy,
      tracking: c.tracking,
      ids,
    };
  }

  /**
   * Sends a record claimed by this process now (a direct send); its follow-ups are delivered from here. With
   * `retry`, a transient failure puts it back in the queue as a worker's would, and this process tries it again.
   */
  async deliverNow(record: OutboxRecord, signal: AbortSignal | undefined, options: { retry?: boolean } = {}): Promise<Delivery> {
    const delivery = await deliver(record, {
      store: this.store,
      pools: this.pools,
      checks: this.checks,
      logger: this.logger,
      leaseMs: this.leaseMs,
      workerId: this.directWorkerId,
      retry: options.retry ? this.retry : false,
      followUpRetry: this.retry,
      recordRetryDelaysMs: this.recordRetryDelaysMs,
      signal,
      onFollowUp: (followUp) => this.followUps.track(followUp),
    });
    // Its outcome could not be written: in a process with no worker nobody would take it over when its lease
    // expires, so this one does (once, flagged as a possible duplicate, like any takeover).
    if (!delivery.recorded) this.followUps.watch(delivery.record);
    else if (delivery.settlement.status === 'retry') this.followUps.track(delivery.record);
    return delivery;
  }

  /** Delivers a queued record from this process when it is due (unless a worker takes it first). */
  deliverLater(record: OutboxRecord): void {
    this.followUps.track(record);
    this.notifyWorkers();
  }

  /**
   * Gives back the daily quota a message took when it was accepted, for one that will never be sent (rejected,
   * expired, cancelled, refused right before sending). Follow-ups took none. Best effort: logged when it fails.
   */
  async refundQuota(record: OutboxRecord): Promise<void> {
    if (isFollowUp(record)) return;
    try {
      const scope = { ownerId: record.ownerId, agentId: record.agentId };
      await refundDailyQuota(this.store.counters, scope, await this.policies.policyFor(scope), record.createdAt);
    } catch (err) {
      this.logger.warn({ err, id: record.id }, 'could not give quota back');
    }
  }

  /** A worker claiming one owner's due mail, or every owner's (`ownerId` undefined), each through its owner's pool. */
  startWorker(ownerId: string | undefined, options: WorkerOptions): OutboxWorker {
    this.assertOpen();
    const worker = new OutboxWorker(
      { store: this.store, pools: this.pools, logger: this.logger, checks: this.checks },
      { ownerId },
      // The mailer's outbox settings are the worker's defaults; `outbox.leaseMs` used to stop at direct sends.
      { retry: this.retry, recordRetryDelaysMs: this.recordRetryDelaysMs, ...options, leaseMs: options.leaseMs ?? this.leaseMs },
    );
    this.workers.add(worker);
    return worker;
  }

  /**
   * Runs `task` once per owner and idempotency key at a time in this process; concurrent callers wait for the first.
   * Here rather than per mailer: a service makes a mailer per tool call, and they share this.
   */
  async once<T>(ownerId: string, key: string | undefined, task: () => Promise<T>): Promise<T> {
    if (key === undefined) return task();
    const flightKey = `${ownerId}\u0000${key}`;
    const pending = this.inFlight.get(flightKey);
    if (pending) await pending.catch(() => undefined);
    const run = task();
    this.inFlight.set(flightKey, run);
    try {
      return await run;
    } finally {
      if (this.inFlight.get(flightKey) === run) this.inFlight.delete(flightKey);
    }
  }

  /** Wakes the workers: a message was queued. */
  notifyWorkers(): void {
    for (const worker of this.workers) worker.notify();
  }

  /** Runs `task` unless closed, in the set `close()` waits for. */
  track<T>(task: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    const work = task();
    this.running.add(work);
    const forget = () => this.running.delete(work);
    work.then(forget, forget);
    return work;
  }

  assertOpen(): void {
    if (this.closing) throw new AgentSmtpError('CLOSED', 'This mailer is closed; create a new one to send again.');
  }

  /**
   * Stops taking sends, waits up to `timeoutMs` for the sends and workers in flight, then cuts off what still runs
   * by closing every connection (each send settles by how far it got), and closes the store if it was made here.
   */
  close(timeoutMs: number): Promise<void> {
    this.closing ??= this.shutdown(timeoutMs);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const settled = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        () => undefined,
      );
    const work = Promise.all([...[...this.workers].map((w) => w.stop()), ...[...this.running].map(settled), this.followUps.stop()]);
    const timedOut = await raceTimeout(work, timeoutMs);
    if (timedOut) this.logger.warn({ timeoutMs, sends: this.running.size }, 'close: sends still running after the timeout; closing their connections');
    // With the connections gone, whatever still runs settles at once (classified by how far it got). A store call
    // that never returns could still hold it: past a short grace, close() returns and says what it left.
    await this.pools.close({ force: timedOut });
    if (timedOut && (await raceTimeout(work, CLOSE_GRACE_MS))) {
      this.logger.error({ sends: this.running.size }, 'close: work still running after its connections were closed (a store call that does not return?); leaving it');
    } else {
      await work;
    }
    this.workers.clear();
    if (this.ownsStore) await this.store.close?.();
  }
}
