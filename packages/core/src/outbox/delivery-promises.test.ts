import { createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import { MemoryStore } from '../store/memory-store.js';
import { useOutboxSetup, waitFor, waitForStatus, watchClaims } from './__fixtures__/outbox-setup.js';

// The promises of DESIGN §3 (never lost, never silently duplicated, bounded) under the faults of issue 7: each
// test asserts on what the SMTP sink received, not only on what the SDK says.

const { resources, setup } = useOutboxSetup();
const statusIs = (mailer: Mailer, id: string, status: string) => waitForStatus(mailer, id, status, 8_000);

/** A TCP listener that accepts connections and never says a word: a server hung before its greeting. */
async function silentServer(): Promise<{ port: number; sockets: Socket[]; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    sockets,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('deferred recipients reach their server without any worker running', () => {
  it('send() alone delivers the follow-up, and the original status shows its fate', async () => {
    let greylisted = true;
    const { sink, mailer } = await setup({
      behavior: {
        rcptTo: (to) => (to === 'bob@example.com' && greylisted ? ((greylisted = false), { code: 450, message: '4.2.0 Greylisted' }) : undefined),
      },
    });
    const result = await mailer.send({ to: ['ada@example.com', 'bob@example.com'], subject: 'Greylisted', text: 'x' });
    expect(result).toMatchObject({ status: 'sent', deferred: ['bob@example.com'] });
    // No startWorker(): the mailer that queued the follow-up sees it delivered.
    await sink.waitForMessages(2);
    expect(sink.messages.map((m) => m.envelope.to)).toEqual([['ada@example.com'], ['bob@example.com']]);
    const report = await waitFor('the follow-up to show as sent', async () => {
      const r = await mailer.getStatus(result.id);
      return r?.followUps[0]?.status === 'sent' ? r : undefined;
    });
    expect(report.followUps).toEqual([
      { id: result.followUpId, followUpOf: result.id, status: 'sent', recipients: ['bob@example.com'], accepted: ['bob@example.com'], rejected: [], error: undefined },
    ]);
  });

  it('a follow-up deferred again is retried again', async () => {
    let refusals = 2;
    const { sink, mailer } = await setup({
      behavior: { rcptTo: (to) => (to === 'bob@example.com' && refusals > 0 ? (refusals--, { code: 451, message: '4.7.1 later' }) : undefined) },
    });
    const result = await mailer.send({ to: ['ada@example.com', 'bob@example.com'], subject: 'Twice', text: 'x' });
    const followUp = await statusIs(mailer, result.followUpId!, 'sent');
    expect(followUp.history.map((e) => e.type)).toEqual(['queued', 'claimed', 'attempt_failed', 'retry', 'claimed', 'sent']);
    expect(sink.messages.map((m) => m.envelope.to)).toEqual([['ada@example.com'], ['bob@example.com']]);
  });
});

describe('an outcome that cannot be recorded never sends a message a third time', () => {
  it('with every settle failing, the message reaches the server twice at most and ends unknown, flagged', async () => {
    const store = new MemoryStore();
    const settle = store.outbox.settle.bind(store.outbox);
    let broken = true;
    store.outbox.settle = async (...args) => {
      if (broken) throw new Error('value too long for type character varying');
      return settle(...args);
    };
    const { sink, mailer } = await setup({}, { store, outbox: { maxAttempts: 10, leaseMs: 200, recordRetryDelaysMs: [20, 20] } });
    const queued = await mailer.enqueue({ to: 'ada@example.com', subject: 'Unrecordable', text: 'x' });
    mailer.startWorker({ pollMs: 20, leaseMs: 200, recordRetryDelaysMs: [20, 20] });
    const report = await statusIs(mailer, queued.id, 'unknown');
    expect(report).toMatchObject({ attempt: 2, possibleDuplicate: true, error: { code: 'LEASE_EXPIRED' } });
    // Lease expiries kept coming: had the claim not stopped it, it would have gone out up to ten times. Once the
    // mailer is closed every send it started has ended, so the sink's count is final.
    broken = false;
    await mailer.close();
    expect(sink.messages.map((m) => m.subject)).toEqual(['Unrecordable', 'Unrecordable']);
    expect((await store.outbox.get(mailer.ownerId, queued.id))!.status).toBe('unknown');
  });

  it('a server reply the store refuses is recorded without its text, and sent once', async () => {
    const store = new MemoryStore();
    const settle = store.outbox.settle.bind(store.outbox);
    store.outbox.settle = async (id, attempt, settlement) => {
      // A store that cannot hold the server's words (like a column limit), but can hold the bare outcome.
      if (settlement.status === 'sent' && settlement.response !== undefined) throw new Error('value too long');
      return settle(id, attempt, settlement);
    };
    const claims = watchClaims(store);
    const { sink, mailer } = await setup({}, { store, outbox: { leaseMs: 200, recordRetryDelaysMs: [20, 20] } });
    mailer.startWorker({ pollMs: 20, leaseMs: 200 });
    const result = await mailer.send({ to: 'ada@example.com', subject: 'Once', text: 'x' });
    expect(result).toMatchObject({ status: 'sent', response: undefined });
    // A claim made after the lease would have expired is the one that would have taken it over.
    await claims.claimedSince(Date.now() + 250);
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
    expect((await mailer.getStatus(result.id))!).toMatchObject({ status: 'sent', attempt: 1, possibleDuplicate: false });
  });
});

describe('a failover keeps each server’s answer in the message history', () => {
  it('records the first server’s 451 before the second one accepted', async () => {
    const first = await resources.sink({ behavior: { mailFrom: () => ({ code: 451, message: '4.3.0 Try later' }) } });
    const second = await resources.sink();
    const mailer = resources.track(
      createMailer({
        servers: [first.serverConfig({ name: 'first', priority: 2, maxRetries: 0 }), second.serverConfig({ name: 'second', priority: 1 })],
        defaults: { from: 'agent@example.com' },
        env: {},
      }),
    );
    const result = await mailer.send({ to: 'ada@example.com', subject: 'Failover', text: 'x' });
    expect(first.messages).toHaveLength(0);
    expect(second.messages.map((m) => m.subject)).toEqual(['Failover']);
    const report = await mailer.getStatus(result.id);
    expect(report!.history.map((e) => e.type)).toEqual(['queued', 'claimed', 'attempt_failed', 'sent']);
    expect(report!.history[2]!.detail).toMatchObject({ server: 'first', failure: 'transient', responseCode: 451 });
    expect(String(report!.history[2]!.detail.response)).toContain('4.3.0 Try later');
  });
});

describe('close() waits for work in flight up to a deadline, then cuts it off without losing it', () => {
  it('a send hung at the greeting: close() returns promptly, the send fails retryably, nothing is lost', async () => {
    const hung = await silentServer();
    try {
      const store = new MemoryStore();
      const mailer = createMailer({
        servers: [{ host: '127.0.0.1', port: hung.port, name: 'hung', maxRetries: 0, timeouts: { greetingMs: 60_000 } }],
        store,
        defaults: { from: 'agent@example.com' },
        env: {},
      });
      const sending = mailer.send({ to: 'ada@example.com', subject: 'Hung', text: 'x' });
      const outcome = sending.then(
        () => undefined,
        (err: unknown) => err,
      );
      await waitFor('the connection', async () => (hung.sockets.length > 0 ? true : undefined));
      const started = Date.now();
      await mailer.close({ timeoutMs: 200 });
      expect(Date.now() - started).toBeLessThan(3_000);
      const err = (await outcome) as { code?: string; retryable?: boolean };
      expect(err).toMatchObject({ retryable: true });
      // A direct send ends failed, retryably: the caller was told and may try again (under its key, if it gave one).
      const [entry] = await store.audit.list(mailer.ownerId, { action: 'send' });
      expect(await store.outbox.get(mailer.ownerId, entry!.messageId!)).toMatchObject({ status: 'failed', error: { retryable: true }, leaseOwner: undefined });
      await expect(mailer.send({ to: 'ada@example.com', subject: 'After', text: 'x' })).rejects.toMatchObject({ code: 'CLOSED' });
    } finally {
      await hung.close();
    }
  });

  it('a worker waiting out a long server backoff: close() returns promptly and the message goes back to the queue', async () => {
    const { sink, store, mailer } = await setup(
      { behavior: { mailFrom: () => ({ code: 421, message: '4.3.2 shutting down' }) } },
      { pool: { maxRetryWaitMs: 60_000, backoff: { baseMs: 24_000, maxMs: 24_000 } } },
    );
    await mailer.reload([sink.serverConfig({ name: 'sink', maxRetries: 1 })]);
    const queued = await mailer.enqueue({ to: 'ada@example.com', subject: 'Backoff', text: 'x' });
    mailer.startWorker({ pollMs: 20 });
    await waitFor('the first refusal', async () => (sink.stats.rejected > 0 ? true : undefined));
    const started = Date.now();
    await mailer.close({ timeoutMs: 200 });
    expect(Date.now() - started).toBeLessThan(3_000);
    const record = await store.outbox.get(mailer.ownerId, queued.id);
    expect(record).toMatchObject({ status: 'queued', leaseOwner: undefined });
    expect(sink.messages).toHaveLength(0);
  });
});

describe('the review’s cases: close() racing the store, takeovers after a follow-up, nested follow-ups', () => {
  it('a send() called just before close() is waited for and sent', async () => {
    const { sink, mailer } = await setup();
    const sending = mailer.send({ to: 'ada@example.com', subject: 'Just in time', text: 'x' });
    await mailer.close();
    await expect(sending).resolves.toMatchObject({ status: 'sent' });
    expect(sink.messages.map((m) => m.subject)).toEqual(['Just in time']);
  });

  it('a worker claim that returns after close() cut the connections puts the message back in the queue, untried', async () => {
    const store = new MemoryStore();
    const claim = store.outbox.claim.bind(store.outbox);
    let slow = false;
    store.outbox.claim = async (options) => {
      const claimed = await claim(options);
      if (slow && claimed.length) await new Promise((r) => setTimeout(r, 400));
      return claimed;
    };
    const { sink, mailer } = await setup({}, { store });
    const queued = await mailer.enqueue({ to: 'ada@example.com', subject: 'Late claim', text: 'x' });
    slow = true;
    mailer.startWorker({ pollMs: 20 });
    await waitFor('the claim', async () => ((await store.outbox.get(mailer.ownerId, queued.id))?.status === 'sending' ? true : undefined));
    await mailer.close({ timeoutMs: 50 });
    const record = await store.outbox.get(mailer.ownerId, queued.id);
    expect(record).toMatchObject({ status: 'queued', error: { code: 'ABORTED', retryable: true } });
    expect(sink.stats.connections).toBe(0);
  });

  it('close() returns even when a store call never does', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({}, { store });
    store.outbox.enqueue = () => new Promise(() => undefined);
    const stuck = mailer.send({ to: 'ada@example.com', subject: 'Stuck', text: 'x' });
    void stuck.catch(() => undefined);
    const started = Date.now();
    await mailer.close({ timeoutMs: 100 });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a takeover leaves the recipients an earlier attempt handed to a follow-up to that follow-up', async () => {
    const store = new MemoryStore();
    const settle = store.outbox.settle.bind(store.outbox);
    let failSettles = 2;
    store.outbox.settle = async (...args) => {
      // The first attempt's outcome is lost after the server accepted Ada and deferred Bob.
      if (failSettles > 0 && args[1] === 1 && !(await store.outbox.get('default', args[0]))?.email.envelopeTo) {
        failSettles--;
        throw new Error('connection terminated');
      }
      return settle(...args);
    };
    let greylisted = true;
    const { sink, mailer } = await setup(
      { behavior: { rcptTo: (to) => (to === 'bob@example.com' && greylisted ? ((greylisted = false), { code: 450, message: '4.2.0 Greylisted' }) : undefined) } },
      { store, outbox: { leaseMs: 200, recordRetryDelaysMs: [], retry: { baseMs: 100, maxMs: 200 } } },
    );
    const queued = await mailer.enqueue({ to: ['ada@example.com', 'bob@example.com'], subject: 'Taken over', text: 'x' });
    mailer.startWorker({ pollMs: 20, leaseMs: 200, recordRetryDelaysMs: [] });
    const report = await waitFor('the takeover and the follow-up to finish', async () => {
      const r = await mailer.getStatus(queued.id);
      return r?.status === 'sent' && r.followUps[0]?.status === 'sent' ? r : undefined;
    });
    expect(report).toMatchObject({ attempt: 2, possibleDuplicate: true });
    await mailer.close();
    // Ada twice (the flagged takeover), Bob once: by the follow-up, not by the takeover too.
    expect(sink.messages.map((m) => m.envelope.to.join()).sort()).toEqual(['ada@example.com', 'ada@example.com', 'bob@example.com']);
    expect(report.followUps).toHaveLength(1);
  });

  it('getStatus follows a recipient deferred twice to the follow-up of the follow-up that delivered it', async () => {
    const refusals = new Map([
      ['bob@example.com', 1],
      ['cy@example.com', 2],
    ]);
    const { sink, mailer } = await setup({
      behavior: {
        rcptTo: (to) => {
          const left = refusals.get(to) ?? 0;
          if (left === 0) return undefined;
          refusals.set(to, left - 1);
          return { code: 451, message: '4.7.1 later' };
        },
      },
    });
    const result = await mailer.send({ to: ['ada@example.com', 'bob@example.com', 'cy@example.com'], subject: 'Nested', text: 'x' });
    const report = await waitFor('both follow-ups to be sent', async () => {
      const r = await mailer.getStatus(result.id);
      return r && r.followUps.length === 2 && r.followUps.every((f) => f.status === 'sent') ? r : undefined;
    });
    expect(report.followUps.map((f) => [f.followUpOf === result.id ? 'original' : 'follow-up', f.recipients, f.accepted])).toEqual([
      ['original', ['bob@example.com', 'cy@example.com'], ['bob@example.com']],
      ['follow-up', ['cy@example.com'], ['cy@example.com']],
    ]);
    expect(sink.messages.map((m) => m.envelope.to)).toEqual([['ada@example.com'], ['bob@example.com'], ['cy@example.com']]);
  });

  it('a send-only process takes over its own send whose outcome was lost, once', async () => {
    const store = new MemoryStore();
    const settle = store.outbox.settle.bind(store.outbox);
    let failures = 2;
    store.outbox.settle = async (...args) => {
      if (failures-- > 0) throw new Error('connection terminated');
      return settle(...args);
    };
    const { sink, mailer } = await setup({}, { store, outbox: { leaseMs: 200, recordRetryDelaysMs: [10] } });
    const result = await mailer.send({ to: 'ada@example.com', subject: 'Lost outcome', text: 'x' });
    expect(result.status).toBe('sent');
    // No worker runs here: the mailer itself takes the record over when its lease expires, and records it.
    const report = await waitForStatus(mailer, result.id, 'sent');
    expect(report).toMatchObject({ attempt: 2, possibleDuplicate: true });
    await mailer.close();
    expect(sink.messages.map((m) => m.subject)).toEqual(['Lost outcome', 'Lost outcome']);
  });
});
