import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../logger/logger.js';
import { buildPoolMessage } from '../message/build-pool-message.js';
import type { SmtpPool } from '../pool/smtp-pool.js';
import type { MailStore, OutboxRecord, Settlement } from '../store/mail-store.js';
import { deferredRecipients, queueFollowUp } from './follow-up.js';
import { keepLeased, settleDurably } from './lease.js';
import { DEFAULT_RETRY, failureSettlement, type RetryOptions, settlementOf } from './settlement.js';

/** Who the worker works for: it claims only this owner's messages and audits in its name. */
export interface WorkerIdentity {
  ownerId: string;
  agentId: string | undefined;
}

export interface WorkerOptions {
  /** Messages sent at once. Default: 10. */
  concurrency?: number;
  /** How often to look for due messages when the queue is empty. Default: 1000 ms. */
  pollMs?: number;
  /** How long a claim holds a message; past it, another worker takes it over. Default: 60000 ms. */
  leaseMs?: number;
  /** Names this worker in leases and events. Default: host, pid and a random suffix. */
  workerId?: string;
  retry?: RetryOptions;
}

/** Sends queued messages until stopped. Several workers, in several processes, may share one store. */
export class OutboxWorker {
  readonly workerId: string;
  private readonly concurrency: number;
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly retry: Required<RetryOptions>;
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;
  private wake: (() => void) | undefined;
  private wakeOnCompletion = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly store: MailStore,
    private readonly pool: SmtpPool,
    private readonly logger: Logger,
    private readonly identity: WorkerIdentity,
    options: WorkerOptions = {},
  ) {
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.concurrency = options.concurrency ?? 10;
    this.pollMs = options.pollMs ?? 1_000;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.loop = this.run();
  }

  get running(): boolean {
    return !this.stopping;
  }

  /** Looks for due messages now instead of at the next poll (e.g. right after an enqueue). */
  notify(): void {
    this.wake?.();
  }

  /** Stops claiming and resolves once every message it claimed has been sent and settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const batch = Math.ceil(this.concurrency / 2);
    while (!this.stopping) {
      const free = this.concurrency - this.inFlight.size;
      // Claim in batches, one round trip for many messages: wait until half the slots are free.
      if (free < batch && this.inFlight.size > 0) {
        await this.sleep(this.pollMs, true);
        continue;
      }
      let claimed: OutboxRecord[] = [];
      try {
        claimed = await this.store.outbox.claim({ workerId: this.workerId, limit: free, leaseMs: this.leaseMs, ownerId: this.identity.ownerId });
      } catch (err) {
        this.logger.error({ err, worker: this.workerId }, 'outbox claim failed');
      }
      for (const record of claimed) {
        const task: Promise<void> = this.process(record).finally(() => {
          this.inFlight.delete(task);
          if (this.wakeOnCompletion) this.wake?.();
        });
        this.inFlight.add(task);
      }
      // Fewer than asked for: the queue is drained for now, so wait for the poll (or an enqueue's notify).
      if (claimed.length < free) await this.sleep(this.pollMs, false);
    }
    await Promise.all(this.inFlight);
  }

  private async process(record: OutboxRecord): Promise<void> {
    let settlement: Settlement;
    let deferred: string[] = [];
    const message = buildPoolMessage(record.email, record.messageId);
    const heartbeat = keepLeased(this.store.outbox, record, this.leaseMs, this.logger);
    try {
      const outcome = await this.pool.send(message);
      settlement = settlementOf(outcome);
      deferred = deferredRecipients(outcome.rejectedReasons);
    } catch (caught) {
      settlement = failureSettlement(record, caught, this.retry);
    } finally {
      heartbeat.stop();
    }
    // Queued before the settle: if this process dies in between, the retried attempt queues the same follow-up.
    const followUp = deferred.length ? await queueFollowUp(this.store.outbox, record, deferred, this.retry, this.logger) : undefined;
    const settled = await settleDurably(this.store.outbox, record, settlement, this.logger);
    if (settled) this.logger.info({ id: record.id, attempt: record.attempt, status: settled.status }, 'outbox message settled');
    const failed = settlement.status === 'failed' || settlement.status === 'retry';
    await this.store.audit
      .append({
        ownerId: record.ownerId,
        agentId: this.identity.agentId,
        action: 'send',
        outcome: failed ? 'error' : 'ok',
        messageId: record.id,
        detail: {
          to: message.envelope.to,
          status: settlement.status,
          attempt: record.attempt,
          worker: this.workerId,
          ...(settlement.server ? { server: settlement.server } : {}),
          ...(deferred.length ? { deferred, followUp } : {}),
          ...(settlement.status !== 'sent' ? { code: settlement.error.code } : {}),
        },
      })
      .catch((err: unknown) => this.logger.warn({ err, id: record.id }, 'could not write the audit entry'));
  }

  private sleep(ms: number, wakeOnCompletion: boolean): Promise<void> {
    this.wakeOnCompletion = wakeOnCompletion;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
