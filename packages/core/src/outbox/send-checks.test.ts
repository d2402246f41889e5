import { describe, expect, it, vi } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { createMailer } from '../mailer/mailer.js';
import { MemoryStore } from '../store/memory-store.js';

const resources = useTestResources();

describe('send-time suppression check in a worker', () => {
  it('reads the suppressions of a whole claim at once, and still refuses each suppressed recipient', async () => {
    const sink = await resources.sink();
    const store = new MemoryStore();
    const mailer = resources.track(createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'a@example.com' }, store, env: {} }));
    await mailer.suppress('user3@example.com');
    await mailer.suppress('USER7@example.com');
    // Recipients written in any case: a suppression matches them all.
    const summary = await mailer.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ to: `${n % 2 ? 'User' : 'user'}${n}@example.com`, subject: `n${n}`, text: 'x' })));
    // Suppressed after queueing, before sending: the send-time check is what stops it.
    await mailer.suppress('user5@EXAMPLE.com');
    expect(summary.queued).toBe(10);
    const finds = vi.spyOn(store.suppressions, 'find');
    const worker = mailer.startWorker({ concurrency: 10, pollMs: 20 });
    await sink.waitForMessages(7);
    await worker.stop();
    expect(sink.messages.flatMap((m) => m.envelope.to).sort()).toEqual(
      ['User1', 'User9', 'user0', 'user2', 'user4', 'user6', 'user8'].map((u) => `${u}@example.com`),
    );
    const failed = (await mailer.listAudit({ action: 'send' })).entries.filter((e) => e.errorCode === 'SUPPRESSED');
    expect(failed).toHaveLength(3);
    // Claims of 5 and 5 (half the slots at a time, or all 10 at once): one read per claim, not one per message.
    expect(finds.mock.calls.length).toBeLessThanOrEqual(2);
    expect(finds.mock.calls.flatMap(([, addresses]) => addresses).map((a) => a.toLowerCase()).sort()).toEqual(Array.from({ length: 10 }, (_, n) => `user${n}@example.com`).sort());
  });

  it('sends nothing of a claim whose suppression read fails, and sends it on a later try, still refusing the suppressed', async () => {
    const sink = await resources.sink();
    const store = new MemoryStore();
    const mailer = resources.track(
      createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'a@example.com' }, store, env: {}, outbox: { retry: { baseMs: 50, maxMs: 100 } } }),
    );
    await mailer.suppress('user2@example.com');
    await mailer.enqueueMany(Array.from({ length: 4 }, (_, n) => ({ to: `user${n}@example.com`, subject: `n${n}`, text: 'x' })));
    const real = store.suppressions.find.bind(store.suppressions);
    let failures = 0;
    vi.spyOn(store.suppressions, 'find').mockImplementation(async (ownerId, addresses) => {
      if (failures++ < 1) throw new Error('store down');
      return real(ownerId, addresses);
    });
    const worker = mailer.startWorker({ concurrency: 4, pollMs: 20 });
    await sink.waitForMessages(3);
    await worker.stop();
    // The failed read was for the whole claim; every message of it waited for a later try, and user2 never got one.
    expect(failures).toBeGreaterThan(1);
    expect(sink.messages.flatMap((m) => m.envelope.to).sort()).toEqual(['user0@example.com', 'user1@example.com', 'user3@example.com']);
    const sent = (await mailer.listAudit({ action: 'send' })).entries;
    expect(sent.filter((e) => e.outcome === 'ok')).toHaveLength(3);
  });
});
