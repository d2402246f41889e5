import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../logger/logger.js';
import type { PoolSource } from '../service/pool-source.js';
import type { MailStore, OutboxRecord } from '../store/mail-store.js';
import { deliver } from './deliver.js';
import { OUTBOX_DEFAULTS, WORKER_DEFAULTS } from './outbox-defaults.js';
import { ClaimedSuppressions, type SendCheck } from './send-checks.js';
import { DEFAULT_RETRY, type RetryOptions } from './settlement.js';

/** Whose mail the worker claims: one owner's, or (a service's worker) every owner's, each sent through its own servers. */
export interface WorkerScope {
  ownerId?: string | undefined;
}

/** What the worker sends with: the store, each owner's pool, and the send-time checks. */
export interface WorkerRuntime {
  store: MailStore;
  pools: PoolSource;
  logger: Logger;
  checks: readonly SendCheck[];
}

export interface WorkerOptions {
  /** Messages sent at once. Default: 10. */
  concurrency?: number;
  /** How often to look for due messages when the queue is empty. Default: 1000 ms. */
  pollMs?: number;
  /**
   * How long a claim holds a message (renewed while it is sent); past it, another worker takes it over. Default: the
   * mailer's `outbox.leaseMs` (`OUTBOX_DEFAULTS.leaseMs`, 60000 ms).
   */
  leaseMs?: number;
  /** Names this worker in leases and events. Default: host, pid and a random suffix. */
  workerId?: string;
  retry?: RetryOptions;
  /**
   * Waits between tries to record an outcome while the store fails, after the server answered. Default: 50, 200,
   * 800, 2000, 4000 ms. Past them the lease expires and the message is taken over once, marked possibleDuplicate.
   */
  recordRetryDelaysMs?: readonly number[];
}

/** Sends queued messages until stopped. Several workers, in several processes, may share one store. */
export class OutboxWorker {
  readonly workerId: string;
  private readonly concurrency: number;
  private readonly pollMs: number;
  /** How long its claims hold a message: its own `leaseMs`, else the mailer's `outbox.leaseMs`. */
  readonly leaseMs: number;
  private readonly retry: Required<RetryOptions>;
  private readonly recordRetryDelaysMs: readonly number[] | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;
  private wake: (() => void) | undefined;
  private wakeOnCompletion = false;
  private readonly loop: Promise<void>;

  private readonly store: MailStore;
  private readonly logger: Logger;

  constructor(
    private readonly runtime: WorkerRuntime,
    private readonly scope: WorkerScope,
    options: WorkerOptions = {},
  ) {
    this.store = runtime.store;
    this.logger = runtime.logger;
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.concurrency = options.concurrency ?? WORKER_DEFAULTS.concurrency;
    this.pollMs = options.pollMs ?? WORKER_DEFAULTS.pollMs;
    this.leaseMs = options.leaseMs ?? OUTBOX_DEFAULTS.leaseMs;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.recordRetryDelaysMs = options.recordRetryDelaysMs;
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
        claimed = await this.store.outbox.claim({ workerId: this.workerId, limit: free, leaseMs: this.leaseMs, ownerId: this.scope.ownerId });
      } catch (err) {
        this.logger.error({ err, worker: this.workerId }, 'outbox claim failed');
      }
      const suppressions = claimed.length > 1 ? new ClaimedSuppressions(this.store, claimed) : undefined;
      for (const record of claimed) {
        const task: Promise<void> = this.process(record, suppressions)
          .catch((err: unknown) => this.logger.error({ err, id: record.id }, 'outbox worker: a send failed unexpectedly; its lease will expire'))
          .finally(() => {
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

  private async process(record: OutboxRecord, claimed: ClaimedSuppressions | undefined): Promise<void> {
    await deliver(record, {
      store: this.store,
      pools: this.runtime.pools,
      checks: this.runtime.checks,
      claimed,
      logger: this.logger,
      leaseMs: this.leaseMs,
      workerId: this.workerId,
      retry: this.retry,
      followUpRetry: this.retry,
      recordRetryDelaysMs: this.recordRetryDelaysMs,
    });
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
