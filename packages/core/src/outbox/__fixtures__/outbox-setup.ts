import { useTestResources } from '../../__fixtures__/test-resources.js';
import { createMailer, type Mailer, type MailerOptions } from '../../mailer/mailer.js';
import type { MailStore } from '../../store/mail-store.js';
import { MemoryStore } from '../../store/memory-store.js';
import type { SmtpSinkOptions } from '@agent-smtp/testing';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A sink and a mailer on a MemoryStore with short backoffs and retries, closed after each test. Call once at the
 * top level of a test file; `setup()` in each test.
 */
export function useOutboxSetup() {
  const resources = useTestResources();
  async function setup(sinkOptions: SmtpSinkOptions = {}, options: Partial<MailerOptions> = {}) {
    const sink = await resources.sink(sinkOptions);
    const store = options.store ?? new MemoryStore();
    const mailer = resources.track(
      createMailer({
        servers: [sink.serverConfig({ name: 'sink', maxRetries: 0 })],
        store,
        defaults: { from: 'agent@example.com' },
        env: {},
        pool: { maxRetryWaitMs: 0, backoff: { baseMs: 20, maxMs: 40 } },
        outbox: { maxAttempts: 3, retry: { baseMs: 100, maxMs: 200 } },
        ...options,
      }),
    );
    return { sink, store, mailer };
  }
  return { resources, setup };
}

/** Polls until `probe` gives a value; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 8_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export const waitForStatus = (mailer: Mailer, id: string, status: string, timeoutMs = 5_000) =>
  waitFor(
    `${id} to be ${status}`,
    async () => {
      const report = await mailer.getStatus(id);
      return report?.status === status ? report : undefined;
    },
    timeoutMs,
  );

/**
 * Watches a store's claims, so a test can wait for the peer's own signal instead of a fixed sleep: `claimedSince(t)`
 * resolves once a claim that started at or after `t` has returned (e.g. one made after a lease would have expired,
 * which would have taken the message over).
 */
export function watchClaims(store: MailStore): { claimedSince(time: number, timeoutMs?: number): Promise<void> } {
  const claim = store.outbox.claim.bind(store.outbox);
  const finished: number[] = [];
  store.outbox.claim = async (options) => {
    const startedAt = Date.now();
    try {
      return await claim(options);
    } finally {
      finished.push(startedAt);
    }
  };
  return {
    claimedSince: async (time, timeoutMs = 8_000) => {
      await waitFor(`a claim after ${new Date(time).toISOString()}`, async () => (finished.some((t) => t >= time) ? true : undefined), timeoutMs);
    },
  };
}
