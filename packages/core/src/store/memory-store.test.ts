import { describe, expect, it } from 'vitest';
import { createMailer } from '../mailer/mailer.js';
import { startSmtpSink } from '@agent-smtp/testing';
import { newOutboxRecord, runStoreContract, sampleStoredEmail } from '@agent-smtp/testing/store-contract';
import type { Settlement } from './mail-store.js';
import { DEFAULT_MAX_RETAINED_BYTES, MemoryStore } from './memory-store.js';

runStoreContract({ name: 'MemoryStore', create: () => new MemoryStore() });

describe('MemoryStore retention', () => {
  const input = (id: string, idempotencyKey?: string) => newOutboxRecord('o', { id, idempotencyKey });

  it('drops the oldest finished messages and their events past maxMessages, never an unfinished one', async () => {
    const store = new MemoryStore({ maxMessages: 3 });
    await store.outbox.enqueue(input('unfinished'));
    for (let i = 0; i < 5; i++) {
      const { record } = await store.outbox.enqueue(input(`m${i}`, `k${i}`), { claim: { workerId: 'w', leaseMs: 60_000 } });
      await store.outbox.settle(record.id, 1, { status: 'sent', server: 's', accepted: [], rejected: [], response: '250' });
    }
    expect(await store.outbox.get('o', 'unfinished')).toBeDefined();
    expect(await store.outbox.get('o', 'm0')).toBeUndefined();
    expect(await store.outbox.findByIdempotencyKey('o', 'k0')).toBeUndefined();
    expect(await store.events.list('o', { messageId: 'm0' })).toEqual([]);
    expect(await store.outbox.get('o', 'm4')).toBeDefined();
    expect((await store.events.list('o', { messageId: 'm4' })).map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
  });

  it('keeps at least maxEvents and maxAuditEntries of the newest, in bounded memory', async () => {
    const store = new MemoryStore({ maxEvents: 10, maxAuditEntries: 10 });
    for (let i = 0; i < 100; i++) {
      await store.events.append({ ownerId: 'o', messageId: `m${i}`, type: 'sent', attempt: 1, detail: {} });
      await store.audit.append({ ownerId: 'o', agentId: undefined, action: `a${i}`, outcome: 'ok', detail: {} });
    }
    const events = await store.events.list('o');
    expect(events.length).toBeGreaterThanOrEqual(10);
    expect(events.length).toBeLessThanOrEqual(20);
    expect(events.at(-1)!.messageId).toBe('m99');
    expect(await store.events.list('o', { messageId: 'm0' })).toEqual([]);
    const audit = await store.audit.list('o', { limit: 1_000 });
    expect(audit.length).toBeGreaterThanOrEqual(10);
    expect(audit.length).toBeLessThanOrEqual(20);
    expect(audit[0]!.action).toBe('a99');
  });

  it('gives an empty page for an audit cursor older than what it keeps, and pages from a kept one', async () => {
    const store = new MemoryStore({ maxAuditEntries: 10 });
    const first = await store.audit.append({ ownerId: 'o', agentId: undefined, action: 'a0', outcome: 'ok', detail: {} });
    for (let i = 1; i < 100; i++) await store.audit.append({ ownerId: 'o', agentId: undefined, action: `a${i}`, outcome: 'ok', detail: {} });
    expect(await store.audit.list('o', { before: first.id })).toEqual([]);
    const [newest] = await store.audit.list('o', { limit: 1 });
    expect((await store.audit.list('o', { before: newest!.id, limit: 2 })).map((e) => e.action)).toEqual(['a98', 'a97']);
  });
});

describe('MemoryStore retention by bytes', () => {
  const lease = { workerId: 'w', leaseMs: 60_000 };
  const sent: Settlement = { status: 'sent', server: 's', accepted: ['ada@example.com'], rejected: [], response: '250 ok' };
  /** 1,000 characters of text, HTML and base64 each: 3,000 bytes of content. */
  const email = () =>
    sampleStoredEmail({ text: 't'.repeat(1_000), html: 'h'.repeat(1_000), attachments: [{ filename: 'a.bin', contentType: 'application/octet-stream', contentBase64: 'A'.repeat(1_000) }] });
  const record = (id: string, idempotencyKey?: string) => newOutboxRecord('o', { id, idempotencyKey, email: email() });

  async function finish(store: MemoryStore, id: string, settlement: Settlement = sent, key?: string): Promise<void> {
    const { record: claimed } = await store.outbox.enqueue(record(id, key), { claim: lease });
    await store.outbox.settle(claimed.id, 1, settlement);
  }

  it('strips the content of the oldest finished messages past maxRetainedBytes, keeps the rest of them, never touches queued or sending ones', async () => {
    const store = new MemoryStore({ maxRetainedBytes: 10_000 });
    // Each far bigger than the cap on its own: unfinished records are not the cap's to touch.
    const big = sampleStoredEmail({ text: 'q'.repeat(50_000), attachments: [{ filename: 'big.bin', contentBase64: 'B'.repeat(50_000) }] });
    await store.outbox.enqueue(newOutboxRecord('o', { id: 'queued', email: big, sendAt: new Date(Date.now() + 3_600_000) }));
    await store.outbox.enqueue(newOutboxRecord('o', { id: 'sending', email: big }), { claim: lease });

    const peaks: number[] = [];
    for (let i = 0; i < 6; i++) {
      await finish(store, `m${i}`, sent, `k${i}`);
      peaks.push(store.retainedBytes);
    }
    expect(peaks).toEqual([3_000, 6_000, 9_000, 9_000, 9_000, 9_000]);

    for (const id of ['queued', 'sending']) expect((await store.outbox.get('o', id))!.email).toEqual(big);
    for (const id of ['m3', 'm4', 'm5']) expect((await store.outbox.get('o', id))!.email).toEqual(email());
    for (const id of ['m0', 'm1', 'm2']) {
      const stripped = (await store.outbox.get('o', id))!;
      const { text: _t, html: _h, ...rest } = email();
      expect(stripped.email).toEqual({ ...rest, attachments: [{ filename: 'a.bin', contentType: 'application/octet-stream', contentBase64: '' }] });
      expect(stripped).toMatchObject({ status: 'sent', accepted: ['ada@example.com'], response: '250 ok' });
      expect((await store.events.list('o', { messageId: id })).map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
    }
    // The idempotency key of a stripped message still replays it rather than sending it again.
    expect(await store.outbox.enqueue(record('again', 'k0'))).toMatchObject({ created: false, record: { id: 'm0', status: 'sent' } });

    // The queued and sending ones count once they finish.
    await store.outbox.settle('sending', 1, sent);
    expect(store.retainedBytes).toBeLessThanOrEqual(10_000);
    expect((await store.outbox.get('o', 'sending'))!.email.text).toBeUndefined();
    expect((await store.outbox.get('o', 'queued'))!.email).toEqual(big);
  });

  it('drops a retryable failure whole when it would lose its content, so that a retry under its key sends it afresh', async () => {
    const store = new MemoryStore({ maxRetainedBytes: 6_000 });
    const error = { code: 'SMTP_UNAVAILABLE', message: 'all servers down', retryable: true };
    await finish(store, 'failed', { status: 'failed', error }, 'retry-me');
    await finish(store, 'm1');
    expect(store.retainedBytes).toBe(6_000);
    await finish(store, 'm2');
    expect(store.retainedBytes).toBe(6_000);
    expect(await store.outbox.get('o', 'failed')).toBeUndefined();
    expect(await store.outbox.findByIdempotencyKey('o', 'retry-me')).toBeUndefined();
    const again = await store.outbox.enqueue(record('failed-2', 'retry-me'));
    expect(again).toMatchObject({ created: true, record: { id: 'failed-2', status: 'queued' } });
    expect(again.record.email).toEqual(email());
  });

  it('stops counting a failure reclaimed for another try, and counts it again when it finishes', async () => {
    const store = new MemoryStore();
    await finish(store, 'f', { status: 'failed', error: { code: 'SMTP_UNAVAILABLE', message: 'down', retryable: true } });
    expect(store.retainedBytes).toBe(3_000);
    await store.outbox.reclaim('o', 'f', lease);
    expect(store.retainedBytes).toBe(0);
    await store.outbox.settle('f', 2, sent);
    expect(store.retainedBytes).toBe(3_000);
  });

  it('200 sends of 1 MiB through a mailer on the default MemoryStore keep at most 64 MiB of content', async () => {
    const sink = await startSmtpSink({ parse: false });
    const store = new MemoryStore();
    const mailer = createMailer({ servers: [sink.serverConfig()], store, env: {}, defaults: { from: 'agent@example.com' } });
    const body = 'x'.repeat(1024 * 1024 - 100);
    try {
      // Queued for later, never finished here: it keeps its content however much the others send.
      const waiting = await mailer.enqueue({ to: 'ada@example.com', subject: 'later', text: body, sendAt: new Date(Date.now() + 3_600_000) });
      const heap = (): number => {
        (globalThis as { gc?: () => void }).gc?.();
        return process.memoryUsage().heapUsed;
      };
      const before = heap();
      let peak = 0;
      const ids: string[] = [];
      for (let i = 0; i < 200; i += 4) {
        const results = await Promise.all([0, 1, 2, 3].map((j) => mailer.send({ to: 'ada@example.com', subject: `big-${i + j}`, text: body })));
        ids.push(...results.map((r) => r.id));
        peak = Math.max(peak, store.retainedBytes);
      }
      expect(sink.messages).toHaveLength(200);
      expect(peak).toBeLessThanOrEqual(DEFAULT_MAX_RETAINED_BYTES);
      sink.clear(); // the sink's own copies are not the store's to answer for
      const grown = heap() - before;
      // Everything still answers for its status; only the oldest lost their text.
      const statuses = await Promise.all(ids.map((id) => store.outbox.get('default', id)));
      expect(statuses.map((r) => r?.status)).toEqual(ids.map(() => 'sent'));
      expect(statuses[0]!.email.text).toBeUndefined();
      expect(statuses.at(-1)!.email.text).toBe(body);
      expect((await store.outbox.get('default', waiting.id))!.email.text).toBe(body);
      console.info(`MemoryStore after 200 sends of 1 MiB: ${(store.retainedBytes / 2 ** 20).toFixed(1)} MiB retained content, heap +${(grown / 2 ** 20).toFixed(1)} MiB${'gc' in globalThis ? ' (after gc)' : ' (no gc exposed)'}`);
    } finally {
      await mailer.close();
      await sink.close();
    }
  }, 120_000);
});

describe('MemoryStore hands out snapshots, not its own objects', () => {
  it('a record, event or audit entry it returns cannot change what it keeps', async () => {
    const store = new MemoryStore();
    const { record } = await store.outbox.enqueue(newOutboxRecord('o', { id: 'm1' }), { claim: { workerId: 'w', leaseMs: 60_000 } });
    // The data is frozen and shared; the record's own fields and dates are copies.
    expect(() => {
      (record.email as { subject: string }).subject = 'changed';
    }).toThrow(TypeError);
    expect(() => record.tags.push('x')).toThrow(TypeError);
    record.status = 'cancelled';
    record.sendAt.setTime(0);
    const settled = await store.outbox.settle('m1', 1, { status: 'sent', server: 's', accepted: ['a@example.com'], rejected: [], response: '250' });
    expect(() => settled!.accepted.push('b@example.com')).toThrow(TypeError);
    const again = (await store.outbox.get('o', 'm1'))!;
    expect(again).toMatchObject({ status: 'sent', accepted: ['a@example.com'], email: { subject: sampleStoredEmail().subject } });
    expect(again.sendAt.getTime()).not.toBe(0);
    const [event] = await store.events.list('o', { messageId: 'm1' });
    expect(() => {
      (event!.detail as Record<string, unknown>).sendAt = 'changed';
    }).toThrow(TypeError);
    const entry = await store.audit.append({ ownerId: 'o', agentId: undefined, action: 'x', outcome: 'ok', detail: { n: 1 } });
    expect(() => {
      entry.detail.n = 2;
    }).toThrow(TypeError);
    expect((await store.audit.list('o'))[0]!.detail).toEqual({ n: 1 });
  });

  it('an approval’s dates and a policy it returns cannot change what it keeps', async () => {
    const store = new MemoryStore();
    const { record } = await store.outbox.enqueue(newOutboxRecord('o', { id: 'm1', approval: { reason: 'r', ttlMs: 60_000 } }));
    const expiresAt = record.approval!.expiresAt.getTime();
    record.approval!.expiresAt.setTime(0);
    record.approval!.reason = 'changed';
    expect((await store.outbox.get('o', 'm1'))!.approval).toMatchObject({ reason: 'r', expiresAt: new Date(expiresAt) });

    const policy = { allow: ['example.com'] };
    const saved = await store.policies.save({ ownerId: 'o', agentId: undefined, policy });
    policy.allow.push('evil.example');
    expect(() => (saved.policy.allow as string[]).push('evil.example')).toThrow(TypeError);
    saved.updatedAt.setTime(0);
    const again = (await store.policies.get('o', undefined))!;
    expect(again.policy).toEqual({ allow: ['example.com'] });
    expect(again.updatedAt.getTime()).not.toBe(0);
  });

  it('a send result’s recipient lists are the caller’s to change', async () => {
    const sink = await startSmtpSink();
    const mailer = createMailer({ servers: [sink.serverConfig()], defaults: { from: 'agent@example.com' }, env: {} });
    try {
      const result = await mailer.send({ to: 'ada@example.com', subject: 'Mine', text: 'x' });
      result.accepted.push('someone@example.com');
      expect((await mailer.getStatus(result.id))!.accepted).toEqual(['ada@example.com']);
    } finally {
      await mailer.close();
      await sink.close();
    }
  });
});
