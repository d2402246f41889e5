import type { OutboxRecord } from '../store/mail-store.js';
import { type DeliveryContext, deliver } from './deliver.js';
import type { RetryOptions } from './settlement.js';

/**
 * Delivers the follow-ups a process queued itself, for processes that run no worker (a `send()`-only app, the MCP
 * CLI): without it, recipients reported as "retried automatically" would wait in the queue for a worker that never
 * comes. Each follow-up is claimed by id when due and sent through `deliver`; a retry is scheduled again. Timers
 * are unref'd and cleared by `stop()`. Claims are fenced, so a worker that takes the same follow-up first wins.
 */
export class FollowUpDelivery {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Whose each tracked follow-up is: claims and reads are scoped by owner. */
  private readonly owners = new Map<string, string>();
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly context: Omit<DeliveryContext, 'onFollowUp' | 'retry'> & { retry: Required<RetryOptions> },
  ) {}

  /** Follow-ups waiting for their time, or being sent. */
  get pending(): number {
    return this.timers.size + this.running.size;
  }

  /** Sends `followUp` when it is due: its delay is measured on the store's clock (due time minus creation). */
  track(followUp: OutboxRecord): void {
    this.owners.set(followUp.id, followUp.ownerId);
    this.schedule(followUp.id, followUp.nextAttemptAt.getTime() - followUp.updatedAt.getTime());
  }

  /** Cancels what has not started and waits for what has. Follow-ups left stay queued for a worker. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.owners.clear();
    await Promise.all(this.running);
  }

  private schedule(id: string, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(id));
    const timer = setTimeout(() => {
      this.timers.delete(id);
      const run: Promise<void> = this.run(id).finally(() => this.running.delete(run));
      this.running.add(run);
    }, Math.max(0, delayMs));
    timer.unref();
    this.timers.set(id, timer);
  }

  private async run(id: string): Promise<void> {
    const { store, logger } = this.context;
    const ownerId = this.owners.get(id);
    if (ownerId === undefined) return;
    let again: number | undefined;
    try {
      const [record] = await store.outbox.claim({ workerId: this.context.workerId, limit: 1, leaseMs: this.context.leaseMs, ownerId, ids: [id] });
      if (!record) {
        // Not due yet by the store's clock (a timer a little early), or taken by a worker: look again if queued.
        const current = await store.outbox.get(ownerId, id);
        if (current?.status === 'queued') again = 1_000;
      } else {
        const delivery = await deliver(record, { ...this.context, onFollowUp: (next) => this.track(next) });
        if (delivery.settlement.status === 'retry') again = delivery.settlement.delayMs;
      }
    } catch (err) {
      logger.warn({ err, id }, 'could not deliver a follow-up now; trying again');
      again = 5_000;
    }
    if (again === undefined) this.owners.delete(id);
    else this.schedule(id, again);
  }
}
