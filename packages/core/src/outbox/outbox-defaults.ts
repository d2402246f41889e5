import { DEFAULT_RECORD_RETRY_DELAYS_MS } from './lease.js';
import { DEFAULT_RETRY } from './settlement.js';

/**
 * The defaults of the mailer's `outbox` option, in one place: the mailer, its workers and the docs read them from
 * here (the docs are tested against them), so a number stated twice cannot drift.
 */
export const OUTBOX_DEFAULTS = Object.freeze({
  /** Tries per message, the first included. */
  maxAttempts: 10,
  /**
   * How long a claim holds a message, for direct sends and workers alike; renewed every third of it while the send
   * runs, so it bounds how soon another worker takes over the messages of a process that died, not how long a send may take.
   */
  leaseMs: 60_000,
  /** Backoff between tries (30 s doubling to 1 h) and how long after `sendAt` to keep trying (24 h). */
  retry: DEFAULT_RETRY,
  /** Waits between tries to record an outcome while the store fails (about 7 s in all). */
  recordRetryDelaysMs: DEFAULT_RECORD_RETRY_DELAYS_MS,
});

/** The defaults of `startWorker()`; its `leaseMs` and `retry` default to the mailer's `outbox` settings. */
export const WORKER_DEFAULTS = Object.freeze({
  /** Messages sent at once. */
  concurrency: 10,
  /** How often to look for due messages when the queue is empty. */
  pollMs: 1_000,
});
