import { describe, expect, it } from 'vitest';
import type { ClaimOptions } from '../store/mail-store.js';
import { MemoryStore } from '../store/memory-store.js';
import { useOutboxSetup, waitFor } from './__fixtures__/outbox-setup.js';
import { OUTBOX_DEFAULTS } from './outbox-defaults.js';

const { setup } = useOutboxSetup();

/** A MemoryStore that records the `leaseMs` of every claim a worker makes. */
function storeRecordingLeases(): { store: MemoryStore; leases: number[] } {
  const store = new MemoryStore();
  const leases: number[] = [];
  const claim = store.outbox.claim.bind(store.outbox);
  store.outbox.claim = (options: ClaimOptions) => {
    leases.push(options.leaseMs);
    return claim(options);
  };
  return { store, leases };
}

// Issue 9 item 12: `createMailer({ outbox: { leaseMs } })` reached direct sends only; every worker claimed for 60 s.
describe('the lease of a worker', () => {
  it("is the mailer's outbox.leaseMs, unless the worker sets its own", async () => {
    const { store, leases } = storeRecordingLeases();
    const { mailer } = await setup({}, { store, outbox: { leaseMs: 7_000 } });

    const inherits = mailer.startWorker({ pollMs: 20 });
    const overrides = mailer.startWorker({ pollMs: 20, leaseMs: 9_000 });
    expect([inherits.leaseMs, overrides.leaseMs]).toEqual([7_000, 9_000]);
    // What the store was asked for, not only what the worker says.
    await waitFor('a claim by each worker', async () => (new Set(leases).size === 2 ? true : undefined));
    expect(new Set(leases)).toEqual(new Set([7_000, 9_000]));
  });

  it('is OUTBOX_DEFAULTS.leaseMs for a mailer that sets none', async () => {
    const { store, leases } = storeRecordingLeases();
    const { mailer } = await setup({}, { store });
    const worker = mailer.startWorker({ pollMs: 20 });
    expect(worker.leaseMs).toBe(OUTBOX_DEFAULTS.leaseMs);
    await waitFor('a claim', async () => (leases.length > 0 ? true : undefined));
    expect(leases[0]).toBe(OUTBOX_DEFAULTS.leaseMs);
  });
});
