import { describe, expect, it } from 'vitest';
import { createMailer } from '../mailer/mailer.js';
import { MemoryStore } from '../store/memory-store.js';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';
import { sleep, useOutboxSetup, waitFor, waitForStatus, watchClaims } from './__fixtures__/outbox-setup.js';

const { resources, setup } = useOutboxSetup();

const email = (subject: string) => ({ to: 'ada@example.com', subject, text: 'queued body' });

describe('outbox: enqueue and workers', () => {
  it('queues a message and a worker sends it, with the history of what happened', async () => {
    const { sink, mailer } = await setup();
    const queued = await mailer.enqueue(email('Queued'));
    expect(queued).toMatchObject({ status: 'queued', replayed: false });
    expect(sink.messages).toHaveLength(0);
    const worker = mailer.startWorker({ pollMs: 50 });
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Queued');
    expect(received!.messageId).toBe(queued.messageId);
    const report = await waitForStatus(mailer, queued.id, 'sent');
    expect(report.history.map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
    expect(report).toMatchObject({ server: 'sink', accepted: ['ada@example.com'], attempt: 1, possibleDuplicate: false });
    await worker.stop();
  });

  it('does not send a scheduled message before sendAt, and sends it after', async () => {
    const { sink, store, mailer } = await setup();
    const claims = watchClaims(store);
    mailer.startWorker({ pollMs: 20 });
    const sendAt = new Date(Date.now() + 400);
    const queued = await mailer.enqueue({ ...email('Later'), sendAt });
    // A claim ran after the enqueue and found nothing due.
    await claims.claimedSince(Date.now());
    expect(sink.messages).toHaveLength(0);
    await waitForStatus(mailer, queued.id, 'sent');
    expect(sink.messages[0]!.receivedAt.getTime()).toBeGreaterThanOrEqual(sendAt.getTime());
  });

  it('never sends a message cancelled before it was claimed', async () => {
    const { sink, store, mailer } = await setup();
    const claims = watchClaims(store);
    const queued = await mailer.enqueue({ ...email('Cancelled'), sendAt: new Date(Date.now() + 200) });
    expect(await mailer.cancel(queued.id)).toEqual({ cancelled: true, status: 'cancelled' });
    mailer.startWorker({ pollMs: 20 });
    // A claim after the message would have been due, then close: whatever the worker did is over.
    await claims.claimedSince(Date.now() + 250);
    await mailer.close();
    expect(sink.stats.connections).toBe(0);
    expect((await mailer.getStatus(queued.id))!.status).toBe('cancelled');
    await expect(mailer.cancel('msg_nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('queues once per idempotency key and refuses another message under it', async () => {
    const { sink, mailer } = await setup();
    const results = await Promise.all(Array.from({ length: 100 }, () => mailer.enqueue({ ...email('Once'), idempotencyKey: 'k-1' })));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    await expect(mailer.enqueue({ ...email('Different'), idempotencyKey: 'k-1' })).rejects.toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });
    mailer.startWorker({ pollMs: 20 });
    await waitForStatus(mailer, results[0]!.id, 'sent');
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('retries a transient failure with backoff, then sends', async () => {
    const { sink, mailer } = await setup({ behavior: { mailFrom: () => ({ code: 451, message: '4.3.0 try again later' }) } });
    const queued = await mailer.enqueue(email('Retry'));
    mailer.startWorker({ pollMs: 20 });
    const retried = await waitForStatus(mailer, queued.id, 'queued', 2_000).then(async () => {
      for (;;) {
        const r = await mailer.getStatus(queued.id);
        if (r!.history.some((e) => e.type === 'retry')) return r!;
        await sleep(10);
      }
    });
    expect(retried.error).toMatchObject({ retryable: true });
    expect(retried.nextAttemptAt.getTime()).toBeGreaterThan(Date.now() - 50);
    sink.behavior = {};
    const sent = await waitForStatus(mailer, queued.id, 'sent');
    expect(sent.attempt).toBe(2);
    expect(sent.history.map((e) => e.type)).toEqual(['queued', 'claimed', 'attempt_failed', 'retry', 'claimed', 'sent']);
    expect(sink.messages).toHaveLength(1);
  });

  it('fails after the last attempt and keeps the last SMTP answer', async () => {
    const { sink, mailer } = await setup({ behavior: { mailFrom: () => ({ code: 452, message: '4.3.1 Insufficient system storage' }) } });
    const queued = await mailer.enqueue(email('Doomed'));
    mailer.startWorker({ pollMs: 20 });
    const failed = await waitForStatus(mailer, queued.id, 'failed');
    expect(failed.attempt).toBe(3);
    expect(failed.error).toMatchObject({ code: 'SMTP_UNAVAILABLE', responseCode: 452 });
    expect(failed.error!.response).toContain('4.3.1 Insufficient system storage');
    expect(sink.messages).toHaveLength(0);
  });

  it('keeps retrying through an outage on which no server could even be tried, and sends once it ends', async () => {
    const { sink, mailer } = await setup(
      {},
      { outbox: { maxAttempts: 2, retry: { baseMs: 30, maxMs: 60 } }, pool: { maxRetryWaitMs: 0, backoff: { baseMs: 60_000 } } },
    );
    // The only server is down and backing off for longer than the outbox's retries: tries that find every
    // server backing off must not use up the two attempts.
    await mailer.reload([{ host: '127.0.0.1', port: 1, name: 'down', maxRetries: 0 }]);
    const queued = await mailer.enqueue(email('Outage'));
    mailer.startWorker({ pollMs: 10 });
    await sleep(600);
    const during = await mailer.getStatus(queued.id);
    expect(during!.status).toBe('queued');
    expect(during!.attempt).toBeGreaterThan(2);
    await mailer.reload([sink.serverConfig({ name: 'sink', maxRetries: 0 })]);
    await waitForStatus(mailer, queued.id, 'sent');
    expect(sink.messages).toHaveLength(1);
  });

  it('gives up once the message is older than giveUpAfterMs', async () => {
    const { mailer } = await setup({ behavior: { mailFrom: () => ({ code: 451, message: '4.3.0 later' }) } }, { outbox: { maxAttempts: 100, retry: { baseMs: 50, maxMs: 50, giveUpAfterMs: 300 } } });
    const queued = await mailer.enqueue(email('Expires'));
    mailer.startWorker({ pollMs: 10 });
    const failed = await waitForStatus(mailer, queued.id, 'failed', 3_000);
    expect(failed.attempt).toBeLessThan(100);
    // The last try either reached the server (451) or found it backing off; either way the budget ended it.
    expect(failed.error).toMatchObject({ code: 'SMTP_UNAVAILABLE', retryable: true });
    expect(failed.history.some((e) => e.type === 'retry')).toBe(true);
  });

  it('fails at once on a permanent refusal', async () => {
    const { mailer } = await setup({ behavior: { rcptTo: () => ({ code: 550, message: '5.1.1 No such user' }) } });
    const queued = await mailer.enqueue(email('Refused'));
    mailer.startWorker({ pollMs: 20 });
    const failed = await waitForStatus(mailer, queued.id, 'failed');
    expect(failed).toMatchObject({ attempt: 1, error: { code: 'SMTP_REJECTED', responseCode: 550, retryable: false } });
  });

  it('marks an ambiguous outcome unknown and never resends it', async () => {
    const { sink, store, mailer } = await setup({ behavior: { data: () => 'drop' } });
    const claims = watchClaims(store);
    const queued = await mailer.enqueue(email('Ambiguous'));
    mailer.startWorker({ pollMs: 20 });
    await waitForStatus(mailer, queued.id, 'unknown');
    sink.behavior = {};
    await claims.claimedSince(Date.now());
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('stop() finishes the messages the worker claimed', async () => {
    const { sink, mailer } = await setup({ parse: false });
    const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => mailer.enqueue(email(`n${i}`))));
    const worker = mailer.startWorker({ pollMs: 20, concurrency: 8 });
    await sink.waitForMessages(5);
    await worker.stop();
    const statuses = await Promise.all(ids.map(async (q) => (await mailer.getStatus(q.id))!.status));
    expect(statuses.filter((s) => s === 'sending')).toHaveLength(0);
    expect(statuses.filter((s) => s === 'sent').length).toBe(sink.messages.length);
    const count = sink.messages.length;
    await mailer.close();
    expect(sink.messages.length).toBe(count);
  });

  it('takes over a direct send whose process died mid-send, once its lease expires', async () => {
    const { sink, store, mailer } = await setup();
    // What a crashed send() leaves behind: a record claimed by a process that never settled it.
    const { record } = await store.outbox.enqueue(
      newOutboxRecord(mailer.ownerId, { email: sampleStoredEmail({ subject: 'Orphan', bcc: [], attachments: [] }) }),
      { claim: { workerId: 'direct:dead', leaseMs: 150 } },
    );
    mailer.startWorker({ pollMs: 20 });
    const sent = await waitForStatus(mailer, record.id, 'sent');
    expect(sent).toMatchObject({ attempt: 2, possibleDuplicate: true });
    expect(sink.messages.map((m) => m.subject)).toEqual(['Orphan']);
  });

  it('keeps the lease of a slow send alive, so it is never taken over and sent twice', async () => {
    const { sink, store, mailer } = await setup({ behavior: { data: () => 'hang' } });
    const claims = watchClaims(store);
    await mailer.reload([{ ...sink.serverConfig({ name: 'sink', maxRetries: 0 }), timeouts: { socketMs: 1_000 } }]);
    const queued = await mailer.enqueue(email('Slow'));
    mailer.startWorker({ pollMs: 20, leaseMs: 300 });
    mailer.startWorker({ pollMs: 20, leaseMs: 300, workerId: 'second' });
    const report = await waitForStatus(mailer, queued.id, 'unknown');
    await claims.claimedSince(Date.now() + 350);
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
    expect(report).toMatchObject({ attempt: 1, possibleDuplicate: false });
    expect(report.history.map((e) => e.type)).toEqual(['queued', 'claimed', 'unknown']);
  });

  it('a worker sends only its own owner’s mail, through its owner’s servers', async () => {
    const { sink: aliceSink, store, mailer: alice } = await setup();
    const bobSink = await resources.sink();
    const bob = createMailer({ servers: [bobSink.serverConfig()], store, ownerId: 'bob', defaults: { from: 'bob@bob.example' }, env: {} });
    resources.track(bob);
    const bobs = await bob.enqueue(email('Bob private'));
    const alices = await alice.enqueue(email('Alice'));
    const claims = watchClaims(store);
    alice.startWorker({ pollMs: 20 });
    await waitForStatus(alice, alices.id, 'sent');
    // Alice's worker polled again after sending hers, and left Bob's alone.
    await claims.claimedSince(Date.now());
    expect(aliceSink.messages.map((m) => m.subject)).toEqual(['Alice']);
    expect((await bob.getStatus(bobs.id))!.status).toBe('queued');
    bob.startWorker({ pollMs: 20 });
    await waitForStatus(bob, bobs.id, 'sent');
    expect(bobSink.messages.map((m) => m.subject)).toEqual(['Bob private']);
  });

  it('audits sends made by a worker', async () => {
    const { store, mailer } = await setup();
    const queued = await mailer.enqueue(email('Audited'));
    mailer.startWorker({ pollMs: 20 });
    await waitForStatus(mailer, queued.id, 'sent');
    // The audit entry is written after the settle.
    const entries = await waitFor('the send audit entry', async () => {
      const list = await store.audit.list(mailer.ownerId);
      return list.length === 2 ? list : undefined;
    });
    expect(entries.map((e) => `${e.action}/${e.outcome}`)).toEqual(['send/ok', 'enqueue/ok']);
    expect(entries[0]).toMatchObject({ messageId: queued.id, detail: { status: 'sent', to: ['ada@example.com'], server: 'sink' } });
  });

  it('does not throw or resend when recording the outcome fails once after the server accepted', async () => {
    const sink = await resources.sink();
    const store = new MemoryStore();
    const settle = store.outbox.settle.bind(store.outbox);
    let failures = 1;
    store.outbox.settle = async (...args) => {
      if (failures-- > 0) throw new Error('connection terminated unexpectedly');
      return settle(...args);
    };
    const mailer = createMailer({ servers: [sink.serverConfig()], store, defaults: { from: 'agent@example.com' }, env: {} });
    resources.track(mailer);
    const result = await mailer.send(email('Once despite the store'));
    expect(result.status).toBe('sent');
    expect((await mailer.getStatus(result.id))!.status).toBe('sent');
    const claims = watchClaims(store);
    mailer.startWorker({ pollMs: 20 });
    await claims.claimedSince(Date.now());
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('retries recipients a server deferred (greylisting) in a follow-up, and only them', async () => {
    let greylisted = true;
    const { sink, mailer } = await setup({
      behavior: {
        rcptTo: (to) => {
          if (to !== 'bob@example.com' || !greylisted) return undefined;
          greylisted = false;
          return { code: 450, message: '4.2.0 Greylisted, try again later' };
        },
      },
    });
    const result = await mailer.send({ to: ['ada@example.com', 'bob@example.com'], subject: 'Greylisted', text: 'x' });
    expect(result).toMatchObject({ status: 'sent', accepted: ['ada@example.com'], rejected: ['bob@example.com'], deferred: ['bob@example.com'] });
    expect(result.followUpId).toBeDefined();
    mailer.startWorker({ pollMs: 20 });
    const followUp = await waitForStatus(mailer, result.followUpId!, 'sent');
    expect(followUp.messageId).toBe(result.messageId);
    expect(sink.messages.map((m) => m.envelope.to)).toEqual([['ada@example.com'], ['bob@example.com']]);
    // Bob's copy still shows both recipients in its headers: it is the same message.
    expect(sink.messages[1]!.to).toContain('ada@example.com');
  });

  it('a worker queues a follow-up for deferred recipients too', async () => {
    let greylisted = true;
    const { sink, store, mailer } = await setup({
      behavior: { rcptTo: (to) => (to === 'bob@example.com' && greylisted ? ((greylisted = false), { code: 451, message: '4.7.1 later' }) : undefined) },
    });
    const queued = await mailer.enqueue({ to: ['ada@example.com', 'bob@example.com'], subject: 'Queued greylist', text: 'x' });
    mailer.startWorker({ pollMs: 20 });
    await waitForStatus(mailer, queued.id, 'sent');
    await sink.waitForMessages(2);
    expect(sink.messages.map((m) => m.envelope.to)).toEqual([['ada@example.com'], ['bob@example.com']]);
    const entries = await store.audit.list(mailer.ownerId, { action: 'send', limit: 10 });
    const original = entries.find((e) => e.messageId === queued.id)!;
    expect(original.detail).toMatchObject({ deferred: ['bob@example.com'], to: ['ada@example.com', 'bob@example.com'] });
    const followUp = await waitFor('the follow-up audit entry', async () =>
      (await store.audit.list(mailer.ownerId, { action: 'send', limit: 10 })).find((e) => e.messageId === original.detail.followUp),
    );
    expect(followUp.detail).toMatchObject({ status: 'sent', to: ['bob@example.com'] });
  });

  it('send() refuses a future sendAt and points to enqueue()', async () => {
    const { mailer } = await setup();
    await expect(mailer.send({ ...email('x'), sendAt: new Date(Date.now() + 60_000) })).rejects.toMatchObject({ field: 'sendAt' });
  });
});
