import { createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import { MemoryStore } from '../store/memory-store.js';
import { sleep, useOutboxSetup, waitFor, waitForStatus } from './__fixtures__/outbox-setup.js';

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
      { id: result.followUpId, status: 'sent', recipients: ['bob@example.com'], accepted: ['bob@example.com'], rejected: [], error: undefined },
    ]);
  });

  it('a follow-up deferred again is retried again, and close() leaves none of its timers behind', async () => {
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
    // Lease expiries kept coming: had the claim not stopped it, it would have gone out up to ten times.
    await sleep(600);
    expect(sink.messages.map((m) => m.subject)).toEqual(['Unrecordable', 'Unrecordable']);
    expect((await mailer.getStatus(queued.id))!.status).toBe('unknown');
    broken = false;
  });

  it('a server reply the store refuses is recorded without its text, and sent once', async () => {
    const store = new MemoryStore();
    const settle = store.outbox.settle.bind(store.outbox);
    store.outbox.settle = async (id, attempt, settlement) => {
      // A store that cannot hold the server's words (like a column limit), but can hold the bare outcome.
      if (settlement.status === 'sent' && settlement.response !== undefined) throw new Error('value too long');
      return settle(id, attempt, settlement);
    };
    const { sink, mailer } = await setup({}, { store, outbox: { leaseMs: 200, recordRetryDelaysMs: [20, 20] } });
    mailer.startWorker({ pollMs: 20, leaseMs: 200 });
    const result = await mailer.send({ to: 'ada@example.com', subject: 'Once', text: 'x' });
    expect(result).toMatchObject({ status: 'sent', response: undefined });
    await sleep(500);
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
