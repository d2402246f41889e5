import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailStore, MessageError, OutboxRecord } from '../store/mail-store.js';
import { newOutboxRecord, sampleStoredEmail } from './outbox-record-fixture.js';

export interface StoreContractOptions {
  /** Shown in the test names, e.g. `MemoryStore` or `Postgres (PGlite)`. */
  name: string;
  /** A fresh, empty (migrated) store. */
  create: () => MailStore | Promise<MailStore>;
  /** Called once after the suite with what `create` returned. */
  cleanup?: (store: MailStore) => void | Promise<void>;
  /** Optional features a store may lack; every one defaults to true. */
  capabilities?: { credentials?: boolean };
}

const transient: MessageError = { code: 'SMTP_UNAVAILABLE', message: 'No SMTP server accepted the message', retryable: true };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The behaviour every `MailStore` must have, as one vitest suite: call it from a store package's tests. Each
 * test uses its own owner ids, so the tests share one store and never see each other's rows, which is itself
 * part of the contract: no query of one owner returns another owner's rows.
 */
export function runStoreContract(options: StoreContractOptions): void {
  describe(`MailStore contract: ${options.name}`, () => {
    let store: MailStore;
    beforeAll(async () => {
      store = await options.create();
    });
    afterAll(async () => {
      if (store) await options.cleanup?.(store);
    });

    const owner = (): string => `owner-${randomUUID()}`;
    const record = newOutboxRecord;
    /** Claims until `id` comes back (other tests' due rows may be claimed on the way; they use other owners). */
    const claimOne = async (id: string, leaseMs = 60_000, workerId = 'w1'): Promise<OutboxRecord | undefined> => {
      for (let i = 0; i < 20; i++) {
        const claimed = await store.outbox.claim({ workerId, limit: 50, leaseMs });
        const hit = claimed.find((r) => r.id === id);
        if (hit) return hit;
        if (claimed.length === 0) return undefined;
      }
      return undefined;
    };

    describe('outbox', () => {
      it('enqueues a message and gives every field back as it was', async () => {
        const ownerId = owner();
        const input = record(ownerId, { idempotencyKey: 'k1', fingerprint: 'f1', sendAt: new Date(Date.now() + 3_600_000) });
        const { created, record: stored } = await store.outbox.enqueue(input);
        expect(created).toBe(true);
        expect(stored).toMatchObject({
          id: input.id,
          ownerId,
          agentId: 'agent-1',
          idempotencyKey: 'k1',
          fingerprint: 'f1',
          status: 'queued',
          messageId: input.messageId,
          attempt: 0,
          maxAttempts: 3,
          possibleDuplicate: false,
          accepted: [],
          rejected: [],
          tags: ['t1'],
          metadata: { order: 42, vip: true, note: null, ref: 'A-1' },
        });
        expect(stored.email).toEqual(JSON.parse(JSON.stringify(input.email)));
        expect(stored.sendAt.getTime()).toBe(input.sendAt!.getTime());
        expect(stored.nextAttemptAt.getTime()).toBe(input.sendAt!.getTime());
        expect(stored.createdAt).toBeInstanceOf(Date);
        expect(await store.outbox.get(ownerId, input.id)).toEqual(stored);
        expect(await store.outbox.findByIdempotencyKey(ownerId, 'k1')).toEqual(stored);
      });

      it('keeps one row per owner and idempotency key (up to 256 characters), and returns the first', async () => {
        const ownerId = owner();
        const key = 'k'.repeat(256);
        const first = await store.outbox.enqueue(record(ownerId, { idempotencyKey: key, fingerprint: 'a' }));
        const again = await store.outbox.enqueue(record(ownerId, { idempotencyKey: key, fingerprint: 'b', email: sampleStoredEmail({ subject: 'Other' }) }));
        expect(again.created).toBe(false);
        expect(again.record.id).toBe(first.record.id);
        expect(again.record.fingerprint).toBe('a');
        expect(again.record.email.subject).toBe('Hello');
        const otherOwner = await store.outbox.enqueue(record(owner(), { idempotencyKey: key }));
        expect(otherOwner.created).toBe(true);
      });

      it('creates exactly one row when 100 enqueues with one key race', async () => {
        const ownerId = owner();
        const results = await Promise.all(Array.from({ length: 100 }, () => store.outbox.enqueue(record(ownerId, { idempotencyKey: 'race', fingerprint: 'f' }))));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(new Set(results.map((r) => r.record.id)).size).toBe(1);
      });

      it('claims due messages only, with a lease and a new attempt number, and records events', async () => {
        const ownerId = owner();
        const due = await store.outbox.enqueue(record(ownerId));
        const later = await store.outbox.enqueue(record(ownerId, { sendAt: new Date(Date.now() + 3_600_000) }));
        const claimed = await claimOne(due.record.id, 60_000, 'worker-a');
        expect(claimed).toMatchObject({ status: 'sending', attempt: 1, leaseOwner: 'worker-a', possibleDuplicate: false });
        expect(claimed!.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 50_000);
        expect(await claimOne(later.record.id)).toBeUndefined();
        expect((await store.outbox.get(ownerId, later.record.id))!.status).toBe('queued');
        // Held under a live lease: nobody else gets it.
        expect(await claimOne(due.record.id, 60_000, 'worker-b')).toBeUndefined();
        const events = await store.events.list(ownerId, { messageId: due.record.id });
        expect(events.map((e) => [e.type, e.attempt])).toEqual([
          ['queued', 0],
          ['claimed', 1],
        ]);
      });

      it('respects the claim limit, and claims only the owner asked for', async () => {
        const ownerId = owner();
        for (let i = 0; i < 3; i++) await store.outbox.enqueue(record(ownerId));
        const other = await store.outbox.enqueue(record(owner()));
        const first = await store.outbox.claim({ workerId: 'w', limit: 2, leaseMs: 60_000, ownerId });
        expect(first).toHaveLength(2);
        expect(first.every((r) => r.ownerId === ownerId)).toBe(true);
        const rest = await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, ownerId });
        expect(rest).toHaveLength(1);
        expect(await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, ownerId })).toEqual([]);
        expect((await store.outbox.get(other.record.ownerId, other.record.id))!.status).toBe('queued');
      });

      it('extends a live lease so nobody takes the message over, and refuses a stale attempt', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'slow', leaseMs: 200 } });
        await sleep(100);
        expect(await store.outbox.extendLease(r.id, 1, 60_000)).toBe(true);
        await sleep(200);
        expect(await store.outbox.claim({ workerId: 'thief', limit: 10, leaseMs: 60_000, ownerId })).toEqual([]);
        expect(await store.outbox.extendLease(r.id, 2, 60_000)).toBe(false);
        await store.outbox.settle(r.id, 1, { status: 'sent', server: 's', accepted: [], rejected: [], response: '250' });
        expect(await store.outbox.extendLease(r.id, 1, 60_000)).toBe(false);
        expect((await store.events.list(ownerId, { messageId: r.id })).map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
      });

      it('inserts a direct send already claimed', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'direct', leaseMs: 60_000 } });
        expect(r).toMatchObject({ status: 'sending', attempt: 1, leaseOwner: 'direct' });
        expect(await claimOne(r.id)).toBeUndefined();
        expect((await store.events.list(ownerId, { messageId: r.id })).map((e) => e.type)).toEqual(['queued', 'claimed']);
      });

      it('settles sent, and fences out a stale attempt', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'w', leaseMs: 60_000 } });
        expect(await store.outbox.settle(r.id, 2, { status: 'sent', server: 's', accepted: [], rejected: [], response: '250' })).toBeUndefined();
        const sent = await store.outbox.settle(r.id, 1, {
          status: 'sent',
          server: 'primary',
          accepted: ['ada@example.com'],
          rejected: ['gone@example.com'],
          response: '250 2.0.0 queued',
        });
        expect(sent).toMatchObject({ status: 'sent', server: 'primary', accepted: ['ada@example.com'], rejected: ['gone@example.com'], response: '250 2.0.0 queued', leaseOwner: undefined, leaseExpiresAt: undefined });
        expect(await store.outbox.settle(r.id, 1, { status: 'failed', error: transient })).toBeUndefined();
        expect((await store.outbox.get(ownerId, r.id))!.status).toBe('sent');
        expect((await store.events.list(ownerId, { messageId: r.id })).map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
      });

      it('takes over an expired lease, marks a possible duplicate, and a stale worker then changes nothing', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'crashed', leaseMs: 100 } });
        await sleep(250);
        const taken = await claimOne(r.id, 60_000, 'rescuer');
        expect(taken).toMatchObject({ status: 'sending', attempt: 2, leaseOwner: 'rescuer', possibleDuplicate: true });
        expect(await store.outbox.settle(r.id, 1, { status: 'sent', server: 'stale', accepted: [], rejected: [], response: '250' })).toBeUndefined();
        expect((await store.outbox.get(ownerId, r.id))!).toMatchObject({ status: 'sending', attempt: 2 });
        expect(await store.outbox.settle(r.id, 2, { status: 'sent', server: 'p', accepted: ['ada@example.com'], rejected: [], response: '250' })).toMatchObject({
          status: 'sent',
          possibleDuplicate: true,
        });
        expect((await store.events.list(ownerId, { messageId: r.id })).map((e) => e.type)).toEqual(['queued', 'claimed', 'reclaimed', 'sent']);
      });

      it('gives up as unknown when the last attempt’s lease expires', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId, { maxAttempts: 1 }), { claim: { workerId: 'crashed', leaseMs: 100 } });
        await sleep(250);
        expect(await claimOne(r.id)).toBeUndefined();
        const after = await store.outbox.get(ownerId, r.id);
        expect(after).toMatchObject({ status: 'unknown', error: { code: 'LEASE_EXPIRED', retryable: false } });
      });

      it('takes a message over once at most: a second expired lease makes it unknown instead', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'crashed', leaseMs: 100 } });
        await sleep(250);
        expect(await claimOne(r.id, 100, 'rescuer')).toMatchObject({ attempt: 2, possibleDuplicate: true });
        await sleep(250);
        // The rescuer also never recorded an outcome: a third send could be a third copy.
        expect(await claimOne(r.id)).toBeUndefined();
        expect(await store.outbox.get(ownerId, r.id)).toMatchObject({ status: 'unknown', attempt: 2, possibleDuplicate: true, error: { code: 'LEASE_EXPIRED', retryable: false } });
        expect((await store.events.list(ownerId, { messageId: r.id })).map((e) => e.type)).toEqual(['queued', 'claimed', 'reclaimed', 'unknown']);
      });

      it('claims only the ids asked for', async () => {
        const ownerId = owner();
        const { record: a } = await store.outbox.enqueue(record(ownerId));
        const { record: b } = await store.outbox.enqueue(record(ownerId));
        const claimed = await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, ownerId, ids: [b.id, 'msg_missing'] });
        expect(claimed.map((r) => r.id)).toEqual([b.id]);
        expect(await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, ownerId, ids: [] })).toEqual([]);
        expect((await store.outbox.get(ownerId, a.id))!.status).toBe('queued');
      });

      it('takes "now" and delays from its own clock', async () => {
        const ownerId = owner();
        const { record: now } = await store.outbox.enqueue(record(ownerId, { sendAt: undefined }));
        expect(now.sendAt.getTime()).toBe(now.createdAt.getTime());
        expect(now.nextAttemptAt.getTime()).toBe(now.sendAt.getTime());
        expect(await claimOne(now.id)).toMatchObject({ id: now.id });
        const { record: later } = await store.outbox.enqueue(record(ownerId, { sendAt: undefined, delayMs: 300 }));
        expect(later.nextAttemptAt.getTime() - later.sendAt.getTime()).toBe(300);
        expect(await claimOne(later.id)).toBeUndefined();
        await sleep(400);
        expect(await claimOne(later.id)).toMatchObject({ id: later.id, attempt: 1 });
      });

      it('puts a retry back in the queue until its time, then fails or gives unknown for good', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'w', leaseMs: 60_000 } });
        const retried = await store.outbox.settle(r.id, 1, { status: 'retry', delayMs: 300, error: transient, server: 'primary' });
        expect(retried).toMatchObject({ status: 'queued', error: transient, leaseOwner: undefined });
        // The delay is counted on the store's clock from the settle.
        expect(retried!.nextAttemptAt.getTime() - retried!.updatedAt.getTime()).toBe(300);
        expect(await claimOne(r.id)).toBeUndefined();
        await sleep(400);
        const second = await claimOne(r.id);
        expect(second).toMatchObject({ attempt: 2, possibleDuplicate: false });
        const failed = await store.outbox.settle(r.id, 2, { status: 'failed', error: { code: 'SMTP_REJECTED', message: '550 no', responseCode: 550, response: '550 5.1.1 no', retryable: false } });
        expect(failed).toMatchObject({ status: 'failed', error: { code: 'SMTP_REJECTED', responseCode: 550, response: '550 5.1.1 no' } });
        expect(await claimOne(r.id)).toBeUndefined();

        const { record: u } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'w', leaseMs: 60_000 } });
        expect(await store.outbox.settle(u.id, 1, { status: 'unknown', error: { code: 'SMTP_TRANSIENT', message: 'reset after data', retryable: true } })).toMatchObject({ status: 'unknown' });
        expect(await claimOne(u.id)).toBeUndefined();
        expect((await store.events.list(ownerId, { messageId: r.id })).map((e) => e.type)).toEqual(['queued', 'claimed', 'retry', 'claimed', 'failed']);
      });

      it('reclaims a failed message only when its error was retryable, and only for its owner', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'w', leaseMs: 60_000 } });
        await store.outbox.settle(r.id, 1, { status: 'failed', error: transient });
        expect(await store.outbox.reclaim(owner(), r.id, { workerId: 'x', leaseMs: 60_000 })).toBeUndefined();
        expect(await store.outbox.reclaim(ownerId, r.id, { workerId: 'x', leaseMs: 60_000 })).toMatchObject({ status: 'sending', attempt: 2, leaseOwner: 'x' });
        await store.outbox.settle(r.id, 2, { status: 'failed', error: { ...transient, retryable: false } });
        expect(await store.outbox.reclaim(ownerId, r.id, { workerId: 'x', leaseMs: 60_000 })).toBeUndefined();
      });

      it('cancels a queued message, never a claimed one, and never claims a cancelled one', async () => {
        const ownerId = owner();
        const { record: q } = await store.outbox.enqueue(record(ownerId, { sendAt: new Date(Date.now() + 200) }));
        expect(await store.outbox.cancel(owner(), q.id)).toBeUndefined();
        expect(await store.outbox.cancel(ownerId, q.id)).toMatchObject({ cancelled: true, record: { status: 'cancelled' } });
        await sleep(300);
        expect(await claimOne(q.id)).toBeUndefined();
        const { record: s } = await store.outbox.enqueue(record(ownerId), { claim: { workerId: 'w', leaseMs: 60_000 } });
        expect(await store.outbox.cancel(ownerId, s.id)).toMatchObject({ cancelled: false, record: { status: 'sending' } });
        expect(await store.outbox.cancel(ownerId, 'msg_missing')).toBeUndefined();
      });

      it('never shows one owner another owner’s messages', async () => {
        const a = owner();
        const { record: r } = await store.outbox.enqueue(record(a, { idempotencyKey: 'shared-key' }));
        const b = owner();
        expect(await store.outbox.get(b, r.id)).toBeUndefined();
        expect(await store.outbox.findByIdempotencyKey(b, 'shared-key')).toBeUndefined();
        expect(await store.events.list(b, { messageId: r.id })).toEqual([]);
      });
    });

    describe('events', () => {
      it('appends and lists events, oldest first, filtered by message and type, per owner', async () => {
        const ownerId = owner();
        await store.events.append({ ownerId, messageId: 'm1', type: 'sent', attempt: 1, detail: { server: 'p' } });
        await store.events.append({ ownerId, messageId: 'm2', type: 'failed', attempt: 2, detail: {} });
        await store.events.append({ ownerId: owner(), messageId: 'm1', type: 'sent', attempt: 1, detail: {} });
        const all = await store.events.list(ownerId);
        expect(all.map((e) => e.messageId)).toEqual(['m1', 'm2']);
        expect(all[0]).toMatchObject({ ownerId, type: 'sent', attempt: 1, detail: { server: 'p' } });
        expect(all[0]!.at).toBeInstanceOf(Date);
        expect((await store.events.list(ownerId, { messageId: 'm2' })).map((e) => e.type)).toEqual(['failed']);
        expect((await store.events.list(ownerId, { type: 'sent' })).map((e) => e.messageId)).toEqual(['m1']);
      });
    });

    describe('suppressions', () => {
      it('adds, finds case-insensitively, replaces, lists and removes, per owner', async () => {
        const ownerId = owner();
        await store.suppressions.add({ ownerId, address: 'Ada@Example.com', reason: 'unsubscribe', detail: { via: 'one-click' } });
        expect(await store.suppressions.find(ownerId, ['ada@example.COM', 'grace@example.com'])).toEqual([
          expect.objectContaining({ ownerId, address: 'ada@example.com', reason: 'unsubscribe', detail: { via: 'one-click' } }),
        ]);
        await store.suppressions.add({ ownerId, address: 'ada@example.com', reason: 'bounce' });
        expect((await store.suppressions.list(ownerId)).map((s) => [s.address, s.reason])).toEqual([['ada@example.com', 'bounce']]);
        expect(await store.suppressions.find(owner(), ['ada@example.com'])).toEqual([]);
        expect(await store.suppressions.remove(ownerId, 'ADA@example.com')).toBe(true);
        expect(await store.suppressions.remove(ownerId, 'ada@example.com')).toBe(false);
        expect(await store.suppressions.find(ownerId, ['ada@example.com'])).toEqual([]);
      });
    });

    describe('audit', () => {
      it('appends entries and lists them newest first, by action, per owner', async () => {
        const ownerId = owner();
        await store.audit.append({ ownerId, agentId: 'a1', action: 'send', outcome: 'ok', messageId: 'm1', detail: { to: ['ada@example.com'] } });
        await store.audit.append({ ownerId, agentId: undefined, action: 'reload', outcome: 'error', detail: {} });
        await store.audit.append({ ownerId: owner(), agentId: 'a1', action: 'send', outcome: 'ok', detail: {} });
        const entries = await store.audit.list(ownerId);
        expect(entries.map((e) => e.action)).toEqual(['reload', 'send']);
        expect(entries[1]).toMatchObject({ agentId: 'a1', outcome: 'ok', messageId: 'm1', detail: { to: ['ada@example.com'] } });
        expect((await store.audit.list(ownerId, { action: 'send' })).map((e) => e.messageId)).toEqual(['m1']);
        expect(await store.audit.list(ownerId, { limit: 1 })).toHaveLength(1);
      });
    });

    describe('counters', () => {
      it('increments up to the limit and no further, per owner, key and window', async () => {
        const ownerId = owner();
        expect(await store.counters.increment(ownerId, 'sent', '2026-11-21', 2, 3)).toEqual({ allowed: true, value: 2 });
        expect(await store.counters.increment(ownerId, 'sent', '2026-11-21', 2, 3)).toEqual({ allowed: false, value: 2 });
        expect(await store.counters.increment(ownerId, 'sent', '2026-11-21', 1, 3)).toEqual({ allowed: true, value: 3 });
        expect(await store.counters.increment(ownerId, 'sent', '2026-11-22', 1, 3)).toEqual({ allowed: true, value: 1 });
        expect(await store.counters.get(ownerId, 'sent', '2026-11-21')).toBe(3);
        expect(await store.counters.get(owner(), 'sent', '2026-11-21')).toBe(0);
      });

      it('allows exactly the limit when 50 increments race', async () => {
        const ownerId = owner();
        const results = await Promise.all(Array.from({ length: 50 }, () => store.counters.increment(ownerId, 'race', 'w', 1, 20)));
        expect(results.filter((r) => r.allowed)).toHaveLength(20);
        expect(await store.counters.get(ownerId, 'race', 'w')).toBe(20);
      });
    });

    describe.skipIf(options.capabilities?.credentials === false)('credentials', () => {
      it('puts, replaces, gets, lists without ciphertext, and deletes, per owner', async () => {
        const ownerId = owner();
        await store.credentials.put({ ownerId, name: 'smtp', keyId: 'k1', ciphertext: 'AAAA' });
        await store.credentials.put({ ownerId, name: 'smtp', keyId: 'k2', ciphertext: 'BBBB' });
        expect(await store.credentials.get(ownerId, 'smtp')).toMatchObject({ ownerId, name: 'smtp', keyId: 'k2', ciphertext: 'BBBB' });
        const listed = await store.credentials.list(ownerId);
        expect(listed).toEqual([{ name: 'smtp', keyId: 'k2', updatedAt: expect.any(Date) }]);
        expect(await store.credentials.get(owner(), 'smtp')).toBeUndefined();
        expect(await store.credentials.delete(ownerId, 'smtp')).toBe(true);
        expect(await store.credentials.get(ownerId, 'smtp')).toBeUndefined();
      });
    });
  });
}
