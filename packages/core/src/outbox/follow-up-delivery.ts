import type { OutboxRecord } from '../store/mail-store.js';
import { type DeliveryContext, deliver } from './deliver.js';
import type { RetryOptions } from './settlement.js';

/**
 * Delivers the follow-ups a process queued itself (and takes over its own sends whose outcome could not be recorded), for processes that run no worker (a `send()`-only app, the MCP
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

  /**
   * Takes `record` over once its lease expires: a send of this process whose outcome could not be recorded. Nothing
   * else would in a process with no worker; the claim makes it a bounded takeover (sent once more at most, flagged).
   */
  watch(record: OutboxRecord): void {
    this.owners.set(record.id, record.ownerId);
    this.schedule(record.id, this.context.leaseMs + 100);
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
      if (record) {
        const delivery = await deliver(record, { ...this.context, onFollowUp: (next) => this.track(next) });
        if (delivery.settlement.status === 'retry') again = delivery.settlement.delayMs;
        else if (!delivery.recorded) again = this.context.leaseMs + 100;
      } else {
        again = nextLook(await store.outbox.get(ownerId, id));
      }
    } catch (err) {
      logger.warn({ err, id }, 'could not deliver a follow-up now; trying again');
      again = 5_000;
    }
    if (again === undefined) this.owners.delete(id);
    else this.schedule(id, again);
  }
}

/**
 * When to look at a message again that could not be claimed: when it is due (queued: a worker elsewhere retried it,
 * or the timer ran a little early), or when its lease ends (sending: someone holds it, perhaps a send whose outcome
 * was lost). Measured on the store's clock; a finished message is not looked at again.
 */
function nextLook(current: OutboxRecord | undefined): number | undefined {
  if (current?.status === 'queued') return Math.max(1_000, current.nextAttemptAt.getTime() - current.updatedAt.getTime());
  if (current?.status === 'sending' && current.leaseExpiresAt) return Math.max(1_000, current.leaseExpiresAt.getTime() - current.updatedAt.getTime() + 100);
  return undefined;
}
