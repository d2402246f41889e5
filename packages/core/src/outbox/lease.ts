import type { Logger } from '../logger/logger.js';
import type { OutboxRecord, OutboxStore, Settlement } from '../store/mail-store.js';

/**
 * Keeps the lease of a send that is still running alive: extends it every third of `leaseMs`. Without it, a send
 * slower than its lease (timeouts, failover, waiting for a server's backoff) would be taken over by another worker
 * and sent twice while the first worker is still at it. Call `stop()` when the send is over.
 */
export function keepLeased(outbox: OutboxStore, record: OutboxRecord, leaseMs: number, logger: Logger): { stop(): void } {
  const timer = setInterval(() => {
    outbox.extendLease(record.id, record.attempt, leaseMs).then(
      (extended) => {
        if (!extended) logger.warn({ id: record.id, attempt: record.attempt }, 'lease lost while sending');
      },
      (err: unknown) => logger.warn({ err, id: record.id }, 'could not extend the lease; retrying at the next beat'),
    );
  }, Math.max(10, Math.floor(leaseMs / 3)));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** About 7 s of tries: a store that restarts or fails over in that time loses no outcome. */
export const DEFAULT_RECORD_RETRY_DELAYS_MS: readonly number[] = [50, 200, 800, 2_000, 4_000];

/**
 * Records how an attempt ended, retrying a failing store (the settle is fenced by the attempt, so a retry cannot
 * overwrite anything). Never throws: once the SMTP server has answered, a bookkeeping failure must not turn into
 * an error that invites a resend. When the full outcome cannot be written, the bare outcome is (no server text),
 * so a value the store cannot hold never leaves a delivered message to be taken over. If the store stays down,
 * the lease expires and a worker takes the message over once, marked as a possible duplicate (`claim`).
 */
export async function settleDurably(
  outbox: OutboxStore,
  record: OutboxRecord,
  settlement: Settlement,
  logger: Logger,
  retryDelaysMs: readonly number[] = DEFAULT_RECORD_RETRY_DELAYS_MS,
): Promise<OutboxRecord | undefined> {
  // The wait before each try. Every other try, and always the last, is the bare outcome: a store that refuses a
  // value refuses it every time, so at least one bare try is made however few delays were given.
  const waits = [0, ...(retryDelaysMs.length ? retryDelaysMs : [0])];
  for (const [i, wait] of waits.entries()) {
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const bare = i % 2 === 1 || i === waits.length - 1;
    try {
      const settled = await outbox.settle(record.id, record.attempt, bare ? bareSettlement(settlement) : settlement);
      if (!settled) logger.warn({ id: record.id, attempt: record.attempt }, 'lease was taken over; outcome not recorded');
      return settled;
    } catch (err) {
      if (i === waits.length - 1) {
        logger.error({ err, id: record.id, attempt: record.attempt, status: settlement.status }, 'could not record the outcome; the lease will expire and the message be taken over');
      }
    }
  }
  return undefined;
}

/** The outcome without any text a server wrote. */
function bareSettlement(settlement: Settlement): Settlement {
  if (settlement.status === 'sent') return { ...settlement, response: undefined };
  const error = { code: settlement.error.code.replace(/[^A-Z_]/g, '') || 'UNKNOWN', message: 'The details of this outcome could not be stored.', retryable: settlement.error.retryable };
  return { ...settlement, error };
}
