import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BURST_WINDOW_MS } from '@agent-smtp/core';
import type { EventListOptions, MailEvent, MailEventType, MailStats, MailStore, MessageError, NewOutboxRecord, OutboxRecord, StoreCapabilities } from '@agent-smtp/core';
import type { CredentialStore, PolicyStore, SmtpConfigCursor, SmtpConfigWrite, StoredSmtpConfig } from '@agent-smtp/core';
import { newOutboxRecord, sampleStoredEmail } from './outbox-record-fixture.js';

export interface StoreContractOptions {
  /** Shown in the test names, e.g. `MemoryStore` or `Postgres (PGlite)`. */
  name: string;
  /** A fresh, empty (migrated) store. */
  create: () => MailStore | Promise<MailStore>;
  /** Called once after the suite with what `create` returned. */
  cleanup?: (store: MailStore) => void | Promise<void>;
}

/** The parts of `MailStore` a store may lack: their suites run only when the store has them. */
type OptionalPart = 'credentials' | 'policies';
/** The capabilities that name a feature with a suite of its own. */
type FeatureCapability = 'eventCursor' | 'batchEnqueue' | 'findByMessageId';

const transient: MessageError = { code: 'SMTP_UNAVAILABLE', message: 'No SMTP server accepted the message', retryable: true };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** How long a reader waits for appends other callers have made to become visible (a store may hold a page back). */
const VISIBLE_WITHIN_MS = 15_000;

/**
 * The behaviour every `MailStore` must have, as one vitest suite: call it from a store package's tests. Each
 * test uses its own owner ids, so the tests share one store and never see each other's rows, which is itself
 * part of the contract: no query of one owner returns another owner's rows.
 *
 * What applies is read from the store itself, once `create` has made it: a part's suite runs when the store has the
 * part, a feature's when `store.capabilities` declares it; the others are reported as skipped, with the reason.
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
    /**
     * Lists events until at least `count` are there (or the time is up), then returns the last answer: a store may
     * hold owner-wide pages back while another transaction is open (Postgres: anywhere on the server), so what was
     * just appended shows up eventually rather than at once. The caller asserts on what comes back.
     */
    const listEventually = async (ownerId: string, options: EventListOptions, count: number): Promise<MailEvent[]> => {
      const deadline = Date.now() + VISIBLE_WITHIN_MS;
      for (;;) {
        const events = await store.events.list(ownerId, options);
        if (events.length >= count || Date.now() > deadline) return events;
        await sleep(10);
      }
    };
    /** A suite for an optional part: skipped, saying so, when the store does not have the part. */
    const describePart = (part: OptionalPart, suite: () => void): void => {
      describe(part, () => {
        beforeEach((context) => context.skip(store[part] === undefined, `${options.name} has no ${part} part`));
        suite();
      });
    };
    /** A suite for a feature the store declares in `capabilities`: skipped, saying so, when it does not. */
    const describeCapability = (capability: FeatureCapability, name: string, suite: () => void): void => {
      describe(name, () => {
        beforeEach((context) => context.skip(store.capabilities?.[capability] !== true, `${options.name} does not declare capabilities.${capability}`));
        suite();
      });
    };
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

    describe('approval', () => {
      const HOUR = 3_600_000;
      const pendingRecord = (ownerId: string, patch: Partial<NewOutboxRecord> = {}, ttlMs = HOUR): NewOutboxRecord =>
        record(ownerId, { approval: { reason: 'recipient outside approval.outside: eve@example.net', ttlMs }, ...patch });
      /** Claims only these ids of this owner, so other tests' due rows are never touched. */
      const claimIds = (ownerId: string, ids: string[], now?: Date): Promise<OutboxRecord[]> =>
        store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, ownerId, ids, now });
      const types = async (ownerId: string, id: string): Promise<string[]> => (await store.events.list(ownerId, { messageId: id })).map((e) => e.type);

      it('stores a message that needs approval as pending_approval, with reason and expiry, and never claims it', async () => {
        const ownerId = owner();
        const { created, record: r } = await store.outbox.enqueue(pendingRecord(ownerId));
        expect(created).toBe(true);
        expect(r).toMatchObject({ status: 'pending_approval', attempt: 0, approval: { reason: 'recipient outside approval.outside: eve@example.net', decidedBy: undefined, decidedAt: undefined } });
        // Measured from the store's now.
        expect(r.approval!.expiresAt.getTime() - r.createdAt.getTime()).toBeGreaterThanOrEqual(HOUR - 1);
        expect(r.approval!.expiresAt.getTime() - r.createdAt.getTime()).toBeLessThanOrEqual(HOUR + 1);
        expect(await store.outbox.get(ownerId, r.id)).toEqual(r);
        expect(await claimIds(ownerId, [r.id], new Date(Date.now() + 2 * HOUR))).toEqual([]);
        expect(await claimOne(r.id)).toBeUndefined();
        const events = await store.events.list(ownerId, { messageId: r.id });
        expect(events.map((e) => e.type)).toEqual(['pending_approval']);
        expect(events[0]!.detail).toMatchObject({ reason: r.approval!.reason, expiresAt: r.approval!.expiresAt.toISOString() });
        // Without approval, the key is there and undefined.
        const { record: plain } = await store.outbox.enqueue(record(ownerId));
        expect(plain).toHaveProperty('approval', undefined);
      });

      it('refuses approval together with a direct-send claim, storing nothing', async () => {
        const ownerId = owner();
        const input = pendingRecord(ownerId);
        await expect(store.outbox.enqueue(input, { claim: { workerId: 'w', leaseMs: 60_000 } })).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'approval' });
        expect(await store.outbox.get(ownerId, input.id)).toBeUndefined();
        expect(await store.outbox.listPending(ownerId)).toEqual([]);
      });

      it('approves a pending message: queued, due at sendAt or now, whichever is later, then claimed', async () => {
        const ownerId = owner();
        const { record: past } = await store.outbox.enqueue(pendingRecord(ownerId));
        const later = new Date(Date.now() + HOUR / 2);
        const { record: future } = await store.outbox.enqueue(pendingRecord(ownerId, { sendAt: later }));
        const now = new Date(Date.now() + 1_000);

        const approved = await store.outbox.decide(ownerId, past.id, { approve: true, by: 'ada@ops', now });
        expect(approved).toMatchObject({ outcome: 'approved', record: { status: 'queued', approval: { reason: past.approval!.reason, decidedBy: 'ada@ops' } } });
        expect(approved!.record.approval!.decidedAt!.getTime()).toBe(now.getTime());
        expect(approved!.record.approval!.expiresAt.getTime()).toBe(past.approval!.expiresAt.getTime());
        expect(approved!.record.nextAttemptAt.getTime()).toBe(now.getTime());
        expect(await store.outbox.get(ownerId, past.id)).toEqual(approved!.record);
        expect((await claimIds(ownerId, [past.id], now)).map((r) => r.id)).toEqual([past.id]);

        const { record: f } = (await store.outbox.decide(ownerId, future.id, { approve: true, by: 'ada@ops', now }))!;
        expect(f.nextAttemptAt.getTime()).toBe(later.getTime());
        expect(await claimIds(ownerId, [future.id], now)).toEqual([]);
        expect(await store.outbox.listPending(ownerId)).toEqual([]);

        const events = await store.events.list(ownerId, { messageId: past.id });
        expect(events.map((e) => e.type)).toEqual(['pending_approval', 'approved', 'claimed']);
        expect(events[1]!.detail).toEqual({ by: 'ada@ops' });
        // Decided already: nothing changes.
        expect(await store.outbox.decide(ownerId, past.id, { approve: false, by: 'bob' })).toMatchObject({ outcome: 'not_pending', record: { status: 'sending' } });
      });

      it('rejects for good: never claimed, never decided again, not cancellable', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(pendingRecord(ownerId));
        const rejected = await store.outbox.decide(ownerId, r.id, { approve: false, by: 'ada@ops' });
        expect(rejected).toMatchObject({ outcome: 'rejected', record: { status: 'rejected', approval: { decidedBy: 'ada@ops' } } });
        expect(rejected!.record.approval!.decidedAt).toBeInstanceOf(Date);
        expect(await store.outbox.decide(ownerId, r.id, { approve: true, by: 'bob' })).toMatchObject({ outcome: 'not_pending', record: { status: 'rejected', approval: { decidedBy: 'ada@ops' } } });
        expect(await store.outbox.cancel(ownerId, r.id)).toMatchObject({ cancelled: false, record: { status: 'rejected' } });
        expect(await claimIds(ownerId, [r.id], new Date(Date.now() + 2 * HOUR))).toEqual([]);
        expect(await types(ownerId, r.id)).toEqual(['pending_approval', 'rejected']);
        expect((await store.events.list(ownerId, { messageId: r.id, type: 'rejected' }))[0]!.detail).toEqual({ by: 'ada@ops' });
      });

      it('makes a message approved after its expiry expired, never claimable; just before, approved', async () => {
        const ownerId = owner();
        const { record: late } = await store.outbox.enqueue(pendingRecord(ownerId, {}, 60_000));
        const { record: onTime } = await store.outbox.enqueue(pendingRecord(ownerId, {}, 60_000));
        const after = new Date(late.approval!.expiresAt.getTime() + 1);
        expect(await store.outbox.decide(ownerId, late.id, { approve: true, by: 'ada@ops', now: after })).toMatchObject({
          outcome: 'expired',
          record: { status: 'expired', approval: { decidedBy: 'ada@ops' } },
        });
        expect(await claimIds(ownerId, [late.id], new Date(after.getTime() + HOUR))).toEqual([]);
        expect(await store.outbox.decide(ownerId, late.id, { approve: true, by: 'ada@ops', now: after })).toMatchObject({ outcome: 'not_pending', record: { status: 'expired' } });
        expect(await types(ownerId, late.id)).toEqual(['pending_approval', 'expired']);

        const before = new Date(onTime.approval!.expiresAt.getTime() - 1);
        expect(await store.outbox.decide(ownerId, onTime.id, { approve: true, by: 'ada@ops', now: before })).toMatchObject({ outcome: 'approved', record: { status: 'queued' } });
        expect((await claimIds(ownerId, [onTime.id], before)).map((r) => r.id)).toEqual([onTime.id]);
      });

      it('lets exactly one of ten deciders at once win', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(pendingRecord(ownerId));
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.outbox.decide(ownerId, r.id, { approve: i % 2 === 0, by: `human-${i}` })));
        const winners = results.filter((d) => d!.outcome !== 'not_pending');
        expect(winners).toHaveLength(1);
        const winner = winners[0]!;
        const after = await store.outbox.get(ownerId, r.id);
        expect(after).toMatchObject({ status: winner.outcome === 'approved' ? 'queued' : 'rejected', approval: { decidedBy: winner.record.approval!.decidedBy } });
        for (const loser of results.filter((d) => d!.outcome === 'not_pending')) expect(loser!.record.approval!.decidedBy).toBe(winner.record.approval!.decidedBy);
        expect(await types(ownerId, r.id)).toEqual(['pending_approval', winner.outcome]);
      });

      it('gives nothing for another owner’s message or an unknown id', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(pendingRecord(ownerId));
        expect(await store.outbox.decide(owner(), r.id, { approve: true, by: 'mallory' })).toBeUndefined();
        expect(await store.outbox.decide(ownerId, 'msg_missing', { approve: true, by: 'ada' })).toBeUndefined();
        expect(await store.outbox.get(ownerId, r.id)).toMatchObject({ status: 'pending_approval' });
      });

      it('cancels a pending message: no longer listed, decided or claimed', async () => {
        const ownerId = owner();
        const { record: r } = await store.outbox.enqueue(pendingRecord(ownerId));
        expect(await store.outbox.cancel(ownerId, r.id)).toMatchObject({ cancelled: true, record: { status: 'cancelled', approval: { reason: r.approval!.reason } } });
        expect(await store.outbox.listPending(ownerId)).toEqual([]);
        expect(await store.outbox.decide(ownerId, r.id, { approve: true, by: 'ada' })).toMatchObject({ outcome: 'not_pending', record: { status: 'cancelled' } });
        expect(await claimIds(ownerId, [r.id])).toEqual([]);
        expect(await types(ownerId, r.id)).toEqual(['pending_approval', 'cancelled']);
      });

      it('lists pending messages oldest first, page by page, by agent, per owner, expiring the overdue', async () => {
        const ownerId = owner();
        const other = owner();
        const stored: OutboxRecord[] = [];
        for (const [agentId, ttlMs] of [['agent-1', HOUR], ['agent-2', HOUR], ['agent-1', 60_000], ['agent-1', HOUR], ['agent-2', HOUR]] as const) {
          stored.push((await store.outbox.enqueue(pendingRecord(ownerId, { agentId }, ttlMs))).record);
        }
        await store.outbox.enqueue(record(ownerId));
        const { record: foreign } = await store.outbox.enqueue(pendingRecord(other));

        const all = await store.outbox.listPending(ownerId);
        expect(new Set(all.map((r) => r.id))).toEqual(new Set(stored.map((r) => r.id)));
        expect(all.map((r) => r.createdAt.getTime())).toEqual(all.map((r) => r.createdAt.getTime()).sort((a, b) => a - b));
        expect(all.find((r) => r.id === stored[0]!.id)).toEqual(stored[0]);

        // Two minutes on: the one with a minute to live has expired, and is marked so.
        const now = new Date(Date.now() + 120_000);
        const expiredId = stored[2]!.id;
        const live = all.filter((r) => r.id !== expiredId).map((r) => r.id);
        expect((await store.outbox.listPending(ownerId, { now })).map((r) => r.id)).toEqual(live);
        expect(await store.outbox.get(ownerId, expiredId)).toMatchObject({ status: 'expired', approval: { decidedBy: undefined } });
        expect(await types(ownerId, expiredId)).toEqual(['pending_approval', 'expired']);
        expect(await store.outbox.decide(ownerId, expiredId, { approve: true, by: 'ada', now })).toMatchObject({ outcome: 'not_pending' });

        const pages: string[][] = [];
        let after: string | undefined;
        for (let page = 0; page < 10; page++) {
          const batch = await store.outbox.listPending(ownerId, { after, limit: 2, now });
          if (batch.length === 0) break;
          pages.push(batch.map((r) => r.id));
          after = batch.at(-1)!.id;
        }
        expect(pages.map((p) => p.length)).toEqual([2, 2]);
        expect(pages.flat()).toEqual(live);
        // A cursor whose message is no longer pending still marks a place.
        expect((await store.outbox.listPending(ownerId, { after: expiredId, now })).map((r) => r.id)).toEqual(
          live.filter((id) => all.findIndex((r) => r.id === id) > all.findIndex((r) => r.id === expiredId)),
        );

        const agent1 = live.filter((id) => stored.find((r) => r.id === id)!.agentId === 'agent-1');
        expect(agent1).toHaveLength(2);
        expect((await store.outbox.listPending(ownerId, { agentId: 'agent-1', now })).map((r) => r.id)).toEqual(agent1);
        expect((await store.outbox.listPending(ownerId, { agentId: 'agent-1', after: agent1[0], now })).map((r) => r.id)).toEqual([agent1[1]]);

        expect((await store.outbox.listPending(other)).map((r) => r.id)).toEqual([foreign.id]);
        expect(await store.outbox.listPending(ownerId, { after: foreign.id })).toEqual([]);
        expect(await store.outbox.listPending(ownerId, { after: 'msg_missing' })).toEqual([]);
        expect(await store.outbox.listPending(owner())).toEqual([]);
      });

      it('enqueues approval records in a batch like enqueue', async () => {
        const ownerId = owner();
        const batch = [pendingRecord(ownerId), record(ownerId), pendingRecord(ownerId, { idempotencyKey: 'k', fingerprint: 'f' }), pendingRecord(ownerId, { idempotencyKey: 'k', fingerprint: 'f' })];
        const results = await store.outbox.enqueueMany(batch);
        expect(results.map((r) => [r.created, r.record.status])).toEqual([
          [true, 'pending_approval'],
          [true, 'queued'],
          [true, 'pending_approval'],
          [false, 'pending_approval'],
        ]);
        expect(results[0]!.record.approval).toMatchObject({ reason: batch[0]!.approval!.reason, decidedBy: undefined });
        expect(results[0]!.record.approval!.expiresAt.getTime() - results[0]!.record.createdAt.getTime()).toBeGreaterThanOrEqual(HOUR - 1);
        expect(await store.outbox.get(ownerId, batch[0]!.id)).toEqual(results[0]!.record);
        expect(await types(ownerId, batch[0]!.id)).toEqual(['pending_approval']);
        expect(await types(ownerId, batch[1]!.id)).toEqual(['queued']);
        expect(new Set((await store.outbox.listPending(ownerId)).map((r) => r.id))).toEqual(new Set([batch[0]!.id, batch[2]!.id]));
        expect(await claimIds(ownerId, batch.map((r) => r.id))).toMatchObject([{ id: batch[1]!.id }]);
      });
    });

    describe('events', () => {
      it('appends and lists events, oldest first, filtered by message and type, per owner', async () => {
        const ownerId = owner();
        await store.events.append({ ownerId, messageId: 'm1', type: 'sent', attempt: 1, detail: { server: 'p' } });
        await store.events.append({ ownerId, messageId: 'm2', type: 'failed', attempt: 2, detail: {} });
        await store.events.append({ ownerId: owner(), messageId: 'm1', type: 'sent', attempt: 1, detail: {} });
        const all = await listEventually(ownerId, {}, 2);
        expect(all.map((e) => e.messageId)).toEqual(['m1', 'm2']);
        expect(all[0]).toMatchObject({ ownerId, type: 'sent', attempt: 1, detail: { server: 'p' } });
        expect(all[0]!.at).toBeInstanceOf(Date);
        expect((await store.events.list(ownerId, { messageId: 'm2' })).map((e) => e.type)).toEqual(['failed']);
        expect((await listEventually(ownerId, { type: 'sent' }, 1)).map((e) => e.messageId)).toEqual(['m1']);
      });
    });

    describe('stats', () => {
      // One scripted owner: sends settled with accepted lists (one after a retry), opens and clicks by people and by
      // machines, a bounce, an unsubscribe, a complaint, old events outside the recent range, and another owner's
      // events on the same message ids and tag, which never count.
      const ownerId = owner();
      const other = owner();
      const HOUR = 3_600_000;
      let now: number;
      let ids: Record<'a' | 'b' | 'c' | 'd' | 'f', string>;
      const human = { machine: false };
      const proxy = { machine: true, reason: 'apple_privacy_proxy' };
      const bot = { machine: true, reason: 'bot_user_agent' };
      const [urlA, urlB, urlC] = ['https://example.com/a', 'https://example.com/b', 'https://example.com/c'];
      const zero = { unique: 0, total: 0 };
      const none: MailStats = {
        sent: 0,
        delivered: 0,
        opened: { human: zero, machine: zero },
        clicked: { human: zero, machine: zero, links: [] },
        bounced: 0,
        unsubscribed: 0,
        complained: 0,
        rates: { open: 0, click: 0, bounce: 0, unsubscribe: 0 },
      };

      /** Enqueued and claimed at once, then settled `sent` with these recipients accepted. */
      const sendOne = async (owner: string, tags: string[], accepted: string[]): Promise<string> => {
        const input = record(owner, { tags });
        await store.outbox.enqueue(input, { claim: { workerId: 'w-stats', leaseMs: 60_000 } });
        expect(await store.outbox.settle(input.id, 1, { status: 'sent', server: 's', accepted, rejected: ['x@example.net'], response: '250' })).toMatchObject({ status: 'sent' });
        return input.id;
      };
      const track = (messageId: string, type: MailEventType, detail: Record<string, unknown>, at?: Date, who = ownerId) =>
        store.events.append({ ownerId: who, messageId, type, attempt: 1, detail, ...(at ? { at } : {}) });

      beforeAll(async () => {
        now = Date.now();
        const old = new Date(now - 48 * HOUR);
        const a = await sendOne(ownerId, ['spring', 'news'], ['a1@example.com', 'a2@example.com']);
        const b = await sendOne(ownerId, ['spring'], ['b1@example.com']);
        const c = await sendOne(ownerId, ['news'], ['c1@example.com', 'c2@example.com', 'c3@example.com']);
        // Never sent: its tag matches, nothing of it counts.
        const d = record(ownerId, { tags: ['spring'], sendAt: new Date(now + HOUR) });
        await store.outbox.enqueue(d);
        // Sent on its second attempt: one send, its accepted recipients once.
        const f = record(ownerId, { tags: ['news'] });
        await store.outbox.enqueue(f, { claim: { workerId: 'w-stats', leaseMs: 60_000 } });
        await store.outbox.settle(f.id, 1, { status: 'retry', delayMs: 1_000, error: transient });
        const [again] = await store.outbox.claim({ workerId: 'w-stats', limit: 1, leaseMs: 60_000, ownerId, ids: [f.id], now: new Date(now + HOUR) });
        expect(again).toMatchObject({ id: f.id, attempt: 2 });
        await store.outbox.settle(f.id, 2, { status: 'sent', server: 's', accepted: ['f1@example.com'], rejected: [], response: '250' });
        ids = { a, b, c, d: d.id, f: f.id };

        await track(a, 'opened', human);
        await track(a, 'opened', human);
        await track(a, 'opened', proxy);
        await track(b, 'opened', proxy);
        await track(c, 'opened', human);
        // Not classified: never counted as a person.
        await track(c, 'opened', {});
        // Clicks on other links of the same message ten minutes apart: people, no scanner's burst.
        const earlier = new Date(now - 10 * 60_000);
        await track(a, 'clicked', { ...human, link: 0, url: urlA });
        await track(a, 'clicked', { ...human, link: 0, url: urlA });
        await track(a, 'clicked', { ...bot, link: 1, url: urlB }, earlier);
        await track(c, 'clicked', { ...human, link: 1, url: urlB });
        // Same index, another URL: a link of its own.
        await track(c, 'clicked', { ...bot, link: 0, url: urlC }, earlier);
        // No link named: counted in the totals, not per link.
        await track(b, 'clicked', human);
        await track(b, 'bounced', { code: '5.1.1' });
        await track(c, 'unsubscribed', { ...human, address: 'c1@example.com' });
        await track(a, 'complained', {});
        // Two days ago.
        await track(a, 'opened', human, old);
        await track(c, 'bounced', {}, old);
        await track(b, 'clicked', { ...human, link: 0, url: urlA }, old);

        // Another owner: the same message ids, its own send with the same tag.
        const g = await sendOne(other, ['spring'], ['g1@example.com']);
        for (const type of ['sent', 'opened', 'clicked', 'bounced', 'unsubscribed', 'complained'] as const) {
          await track(a, type, { ...human, link: 0, url: urlA }, undefined, other);
        }
        await track(g, 'opened', human, undefined, other);
      });

      it('counts the whole owner: sends, recipients, people and machines apart, per link, rates of sent', async () => {
        expect(await store.stats.summary(ownerId)).toEqual({
          sent: 4,
          delivered: 7,
          opened: { human: { unique: 2, total: 4 }, machine: { unique: 3, total: 3 } },
          clicked: {
            human: { unique: 3, total: 5 },
            machine: { unique: 2, total: 2 },
            links: [
              { link: 0, url: urlA, human: 3, machine: 0 },
              { link: 1, url: urlB, human: 1, machine: 1 },
              { link: 0, url: urlC, human: 0, machine: 1 },
            ],
          },
          bounced: 2,
          unsubscribed: 1,
          complained: 1,
          rates: { open: 0.5, click: 0.75, bounce: 0.5, unsubscribe: 0.25 },
        });
        expect(await store.stats.summary(ownerId, {})).toEqual(await store.stats.summary(ownerId));
      });

      it('counts per tag through the records’ tags, of this owner only', async () => {
        expect(await store.stats.summary(ownerId, { tag: 'spring' })).toEqual({
          sent: 2,
          delivered: 3,
          opened: { human: { unique: 1, total: 3 }, machine: { unique: 2, total: 2 } },
          clicked: {
            human: { unique: 2, total: 4 },
            machine: { unique: 1, total: 1 },
            links: [
              { link: 0, url: urlA, human: 3, machine: 0 },
              { link: 1, url: urlB, human: 0, machine: 1 },
            ],
          },
          bounced: 1,
          unsubscribed: 0,
          complained: 1,
          rates: { open: 0.5, click: 1, bounce: 0.5, unsubscribe: 0 },
        });
        expect(await store.stats.summary(ownerId, { tag: 'news' })).toEqual({
          sent: 3,
          delivered: 6,
          opened: { human: { unique: 2, total: 4 }, machine: { unique: 2, total: 2 } },
          clicked: {
            human: { unique: 2, total: 3 },
            machine: { unique: 2, total: 2 },
            links: [
              { link: 0, url: urlA, human: 2, machine: 0 },
              { link: 1, url: urlB, human: 1, machine: 1 },
              { link: 0, url: urlC, human: 0, machine: 1 },
            ],
          },
          bounced: 1,
          unsubscribed: 1,
          complained: 1,
          rates: { open: 2 / 3, click: 2 / 3, bounce: 1 / 3, unsubscribe: 1 / 3 },
        });
        expect(await store.stats.summary(ownerId, { tag: 'nowhere' })).toEqual(none);
      });

      it('counts one message’s events, with the tag and the range narrowing further', async () => {
        const a = {
          sent: 1,
          delivered: 2,
          opened: { human: { unique: 1, total: 3 }, machine: { unique: 1, total: 1 } },
          clicked: {
            human: { unique: 1, total: 2 },
            machine: { unique: 1, total: 1 },
            links: [
              { link: 0, url: urlA, human: 2, machine: 0 },
              { link: 1, url: urlB, human: 0, machine: 1 },
            ],
          },
          bounced: 0,
          unsubscribed: 0,
          complained: 1,
          rates: { open: 1, click: 1, bounce: 0, unsubscribe: 0 },
        };
        expect(await store.stats.summary(ownerId, { messageId: ids.a })).toEqual(a);
        expect(await store.stats.summary(ownerId, { messageId: ids.a, tag: 'news' })).toEqual(a);
        expect(await store.stats.summary(ownerId, { messageId: ids.a, tag: 'other' })).toEqual(none);
        expect(await store.stats.summary(ownerId, { messageId: ids.f })).toEqual({ ...none, sent: 1, delivered: 1 });
        expect(await store.stats.summary(ownerId, { messageId: ids.d })).toEqual(none);
        expect(await store.stats.summary(ownerId, { messageId: ids.a, from: new Date(now - 49 * HOUR), to: new Date(now - 47 * HOUR) })).toEqual({
          ...none,
          opened: { human: { unique: 1, total: 1 }, machine: zero },
        });
        expect(await store.stats.summary(ownerId, { messageId: 'msg_missing' })).toEqual(none);
      });

      it('counts events by their own time: from inclusive, to exclusive', async () => {
        expect(await store.stats.summary(ownerId, { from: new Date(now - HOUR), to: new Date(now + HOUR) })).toEqual({
          sent: 4,
          delivered: 7,
          opened: { human: { unique: 2, total: 3 }, machine: { unique: 3, total: 3 } },
          clicked: {
            human: { unique: 3, total: 4 },
            machine: { unique: 2, total: 2 },
            links: [
              { link: 0, url: urlA, human: 2, machine: 0 },
              { link: 1, url: urlB, human: 1, machine: 1 },
              { link: 0, url: urlC, human: 0, machine: 1 },
            ],
          },
          bounced: 1,
          unsubscribed: 1,
          complained: 1,
          rates: { open: 0.5, click: 0.75, bounce: 0.25, unsubscribe: 0.25 },
        });
        const old = {
          ...none,
          opened: { human: { unique: 1, total: 1 }, machine: zero },
          clicked: { human: { unique: 1, total: 1 }, machine: zero, links: [{ link: 0, url: urlA, human: 1, machine: 0 }] },
          bounced: 1,
        };
        expect(await store.stats.summary(ownerId, { from: new Date(now - 49 * HOUR), to: new Date(now - 47 * HOUR) })).toEqual(old);
        expect(await store.stats.summary(ownerId, { to: new Date(now - 47 * HOUR) })).toEqual(old);
        // An old event's exact time: in a range that starts there, not in one that ends there.
        const [oldOpen] = (await store.events.list(ownerId, { messageId: ids.a, type: 'opened' })).filter((e) => e.at.getTime() < now - HOUR);
        const at = oldOpen!.at;
        expect((await store.stats.summary(ownerId, { messageId: ids.a, from: at, to: new Date(at.getTime() + 1) })).opened.human.total).toBe(1);
        expect((await store.stats.summary(ownerId, { messageId: ids.a, from: new Date(at.getTime() - 1), to: at })).opened.human.total).toBe(0);
        expect(await store.stats.summary(ownerId, { from: new Date(now + HOUR) })).toEqual(none);
      });

      it('never counts another owner’s events or records, and has nothing for an owner without mail', async () => {
        expect(await store.stats.summary(other, { tag: 'spring' })).toEqual({
          ...none,
          sent: 1,
          delivered: 1,
          opened: { human: { unique: 1, total: 1 }, machine: zero },
          rates: { ...none.rates, open: 1 },
        });
        // The other owner's events on our message id count for it, but no record of ours lends them recipients.
        expect(await store.stats.summary(other, { messageId: ids.a })).toEqual({
          sent: 1,
          delivered: 0,
          opened: { human: { unique: 1, total: 1 }, machine: zero },
          clicked: { human: { unique: 1, total: 1 }, machine: zero, links: [{ link: 0, url: urlA, human: 1, machine: 0 }] },
          bounced: 1,
          unsubscribed: 1,
          complained: 1,
          rates: { open: 1, click: 1, bounce: 1, unsubscribe: 1 },
        });
        expect(await store.stats.summary(owner())).toEqual(none);
      });

      it('counts every click of a burst on different links as a machine’s, in either order; a double click stays a person’s', async () => {
        const burstOwner = owner();
        const one = ['r@example.com'];
        const [scanned, person, double, row, edge] = [
          await sendOne(burstOwner, [], one),
          await sendOne(burstOwner, [], one),
          await sendOne(burstOwner, [], one),
          await sendOne(burstOwner, [], one),
          await sendOne(burstOwner, [], one),
        ];
        const t0 = now - 30 * 60_000;
        const click = (messageId: string, link: number | undefined, ms: number, who = burstOwner) =>
          track(messageId, 'clicked', link === undefined ? human : { ...human, link, url: [urlA, urlB][link] }, new Date(t0 + ms), who);
        // A scanner fetching two links at once: both were labelled people's on arrival.
        await click(scanned, 0, 0);
        await click(scanned, 1, 0);
        // A person reading on: ten seconds between the links.
        await click(person, 0, 0);
        await click(person, 1, 10_000);
        // Another owner's click on the same message id at the same instant is no partner of ours.
        await click(person, 1, 0, owner());
        // The same link twice within a second, and a click naming no link: no burst.
        await click(double, 0, 0);
        await click(double, 0, 900);
        await click(double, undefined, 100);
        // Several clicks on one link in a row: each looks past its own link's neighbours. The last is a full window
        // after the click on link 0, so not in the burst.
        await click(row, 0, 0);
        await click(row, 1, 500);
        await click(row, 1, 600);
        await click(row, 1, BURST_WINDOW_MS);
        // Just inside the window, the earlier click counted too.
        await click(edge, 0, 0);
        await click(edge, 1, BURST_WINDOW_MS - 1);

        expect(await store.stats.summary(burstOwner)).toEqual({
          ...none,
          sent: 5,
          delivered: 5,
          clicked: {
            human: { unique: 3, total: 6 },
            machine: { unique: 3, total: 7 },
            links: [
              { link: 0, url: urlA, human: 3, machine: 3 },
              { link: 1, url: urlB, human: 2, machine: 4 },
            ],
          },
          rates: { ...none.rates, click: 3 / 5 },
        });
        expect((await store.stats.summary(burstOwner, { messageId: scanned })).clicked).toEqual({
          human: zero,
          machine: { unique: 1, total: 2 },
          links: [
            { link: 0, url: urlA, human: 0, machine: 1 },
            { link: 1, url: urlB, human: 0, machine: 1 },
          ],
        });
        // A burst is found among all the message's clicks, also those outside the range asked for.
        expect((await store.stats.summary(burstOwner, { messageId: row, from: new Date(t0 + 550) })).clicked).toEqual({
          human: { unique: 1, total: 1 },
          machine: { unique: 1, total: 1 },
          links: [{ link: 1, url: urlB, human: 1, machine: 1 }],
        });
        expect((await store.stats.summary(burstOwner, { messageId: row, to: new Date(t0 + 1) })).clicked).toEqual({
          human: zero,
          machine: { unique: 1, total: 1 },
          links: [{ link: 0, url: urlA, human: 0, machine: 1 }],
        });
        expect((await store.stats.summary(burstOwner, { messageId: person })).clicked.human).toEqual({ unique: 1, total: 2 });
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

      it('keeps the tool, actor, recipient count, duration and error code', async () => {
        const ownerId = owner();
        const full = await store.audit.append({
          ownerId,
          agentId: 'a1',
          action: 'send',
          outcome: 'error',
          messageId: 'm1',
          tool: 'send_email',
          actor: 'ada@ops',
          recipientCount: 3,
          durationMs: 12.5,
          errorCode: 'POLICY_DAILY_LIMIT',
          detail: { status: 'refused' },
        });
        const bare = await store.audit.append({ ownerId, agentId: undefined, action: 'reload', outcome: 'ok', detail: {} });
        expect(full).toMatchObject({ tool: 'send_email', actor: 'ada@ops', recipientCount: 3, durationMs: 12.5, errorCode: 'POLICY_DAILY_LIMIT', detail: { status: 'refused' } });
        expect([bare.tool, bare.actor, bare.recipientCount, bare.durationMs, bare.errorCode]).toEqual([undefined, undefined, undefined, undefined, undefined]);
        expect(await store.audit.list(ownerId)).toEqual([bare, full]);
      });

      it('filters by agent, action and time, together', async () => {
        const ownerId = owner();
        const appended = [];
        for (const [agentId, action] of [['a1', 'send'], ['a2', 'send'], ['a1', 'cancel'], [undefined, 'policy_save'], ['a1', 'send'], ['a2', 'approve']] as const) {
          appended.push(await store.audit.append({ ownerId, agentId, action, outcome: 'ok', detail: {} }));
        }
        await store.audit.append({ ownerId: owner(), agentId: 'a1', action: 'send', outcome: 'ok', detail: {} });
        const newestFirst = [...appended].reverse();
        const ids = (entries: { id: string }[]): string[] => entries.map((e) => e.id);
        expect(ids(await store.audit.list(ownerId, { agentId: 'a1' }))).toEqual(ids(newestFirst.filter((e) => e.agentId === 'a1')));
        expect(ids(await store.audit.list(ownerId, { action: 'send' }))).toEqual(ids(newestFirst.filter((e) => e.action === 'send')));
        expect(ids(await store.audit.list(ownerId, { agentId: 'a1', action: 'send' }))).toEqual(ids([appended[4]!, appended[0]!]));
        // From is inclusive, to exclusive; entries in one millisecond fall on the same side.
        const from = appended[1]!.at;
        const to = appended[4]!.at;
        const inWindow = newestFirst.filter((e) => e.at >= from && e.at < to);
        expect(inWindow.length).toBeLessThan(appended.length);
        expect(ids(await store.audit.list(ownerId, { from, to }))).toEqual(ids(inWindow));
        expect(ids(await store.audit.list(ownerId, { from, to, agentId: 'a1' }))).toEqual(ids(inWindow.filter((e) => e.agentId === 'a1')));
        expect(ids(await store.audit.list(ownerId, { from }))).toEqual(ids(newestFirst.filter((e) => e.at >= from)));
        expect(await store.audit.list(ownerId, { agentId: 'a3' })).toEqual([]);
      });

      it('pages back with before, newest first, each entry exactly once, and only through the owner’s entries', async () => {
        const ownerId = owner();
        const other = owner();
        const appended = [];
        for (let n = 0; n < 25; n++) {
          appended.push(await store.audit.append({ ownerId, agentId: `a${n % 2}`, action: n % 3 ? 'send' : 'cancel', outcome: 'ok', detail: { n } }));
          if (n % 5 === 0) await store.audit.append({ ownerId: other, agentId: 'a0', action: 'send', outcome: 'ok', detail: { n } });
        }
        const seen: unknown[] = [];
        let before: string | undefined;
        let pages = 0;
        for (; pages < 10; pages++) {
          const page = await store.audit.list(ownerId, { before, limit: 10 });
          if (page.length === 0) break;
          seen.push(...page.map((e) => e.detail.n));
          before = page.at(-1)!.id;
        }
        expect(pages).toBe(3);
        expect(seen).toEqual(Array.from({ length: 25 }, (_, n) => 24 - n));
        // The cursor composes with the filters.
        const sends = await store.audit.list(ownerId, { before: appended[20]!.id, action: 'send', agentId: 'a1' });
        expect(sends.map((e) => e.detail.n)).toEqual([19, 17, 13, 11, 7, 5, 1]);
        const foreign = (await store.audit.list(other))[0]!;
        expect(await store.audit.list(ownerId, { before: foreign.id })).toEqual([]);
        expect(await store.audit.list(other, { before: appended[10]!.id })).toEqual([]);
        expect(await store.audit.list(ownerId, { before: randomUUID() })).toEqual([]);
        expect(await store.audit.list(ownerId, { before: 'not-an-entry-id' })).toEqual([]);
        expect(await store.audit.list(ownerId, { limit: 0 })).toEqual([]);
        expect(await store.audit.list(ownerId, { limit: 5_000 })).toHaveLength(25);
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

      it('gives quota back with a negative increment, never below 0', async () => {
        const ownerId = owner();
        expect(await store.counters.increment(ownerId, 'sent', 'd', 3, 3)).toEqual({ allowed: true, value: 3 });
        expect(await store.counters.increment(ownerId, 'sent', 'd', 1, 3)).toEqual({ allowed: false, value: 3 });
        expect(await store.counters.increment(ownerId, 'sent', 'd', -2, 3)).toEqual({ allowed: true, value: 1 });
        expect(await store.counters.increment(ownerId, 'sent', 'd', 2, 3)).toEqual({ allowed: true, value: 3 });
        expect(await store.counters.increment(ownerId, 'sent', 'd', -5, 3)).toEqual({ allowed: true, value: 0 });
        expect(await store.counters.get(ownerId, 'sent', 'd')).toBe(0);
        // Given back past a limit lowered meanwhile, and on a counter that never counted.
        expect(await store.counters.increment(ownerId, 'sent', 'd', 3, 3)).toEqual({ allowed: true, value: 3 });
        expect(await store.counters.increment(ownerId, 'sent', 'd', -1, 1)).toEqual({ allowed: true, value: 2 });
        expect(await store.counters.increment(ownerId, 'other', 'd', -1, 5)).toEqual({ allowed: true, value: 0 });
        expect(await store.counters.get(ownerId, 'other', 'd')).toBe(0);
      });

      it('never goes below 0 when refunds and increments race', async () => {
        const ownerId = owner();
        await store.counters.increment(ownerId, 'race', 'w', 5, 10);
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.counters.increment(ownerId, 'race', 'w', i % 2 ? -1 : 1, 10)));
        expect(results.every((r) => r.allowed && r.value >= 0)).toBe(true);
        expect(await store.counters.get(ownerId, 'race', 'w')).toBe(5);
      });

      it('allows exactly the limit when 50 increments race', async () => {
        const ownerId = owner();
        const results = await Promise.all(Array.from({ length: 50 }, () => store.counters.increment(ownerId, 'race', 'w', 1, 20)));
        expect(results.filter((r) => r.allowed)).toHaveLength(20);
        expect(await store.counters.get(ownerId, 'race', 'w')).toBe(20);
      });
    });

    describe('capabilities', () => {
      it('declares what it can do, and has every method a declared capability names', () => {
        const declared: StoreCapabilities = store.capabilities;
        expect(declared).toMatchObject({ eventCursor: true, batchEnqueue: true, findByMessageId: true });
        expect(typeof declared.multiProcess).toBe('boolean');
        expect(typeof declared.durable).toBe('boolean');
        expect(typeof store.outbox.enqueueMany).toBe('function');
        expect(typeof store.outbox.findByMessageId).toBe('function');
      });
    });

    describeCapability('eventCursor', 'event cursor', () => {
      /** Reads an owner's events page by page from the start until `count` arrived (or the time is up). */
      async function tail(ownerId: string, count: number, limit: number): Promise<{ events: MailEvent[]; pages: number }> {
        const events: MailEvent[] = [];
        let after: string | undefined;
        let pages = 0;
        const deadline = Date.now() + VISIBLE_WITHIN_MS;
        while (events.length < count && Date.now() < deadline) {
          const page = await store.events.list(ownerId, { after, limit });
          pages++;
          expect(page.length).toBeLessThanOrEqual(limit);
          events.push(...page);
          if (page.length) after = page.at(-1)!.id;
          // An empty page means the rest is not visible yet: let the writers run rather than spin.
          else await new Promise((r) => setImmediate(r));
        }
        return { events, pages };
      }
      const numbers = (events: MailEvent[]): unknown[] => events.map((e) => e.detail.n);

      it('pages through 250 events with after + limit, each exactly once, in append order', async () => {
        const ownerId = owner();
        const noise = owner();
        for (let n = 0; n < 250; n++) {
          await store.events.append({ ownerId, messageId: `m${n % 7}`, type: 'sent', attempt: 1, detail: { n } });
          // Another owner's events in between: a page skips them without counting them.
          if (n % 10 === 0) await store.events.append({ ownerId: noise, messageId: 'x', type: 'sent', attempt: 1, detail: { n } });
        }
        const { events, pages } = await tail(ownerId, 250, 16);
        expect(numbers(events)).toEqual(Array.from({ length: 250 }, (_, n) => n));
        expect(pages).toBe(16);
        expect(events.every((e) => e.ownerId === ownerId)).toBe(true);
        expect(await store.events.list(ownerId, { after: events.at(-1)!.id, limit: 16 })).toEqual([]);
        // The cursor composes with the filters.
        const fromM3 = await store.events.list(ownerId, { messageId: 'm3', after: events[100]!.id });
        expect(numbers(fromM3)).toEqual(Array.from({ length: 250 }, (_, n) => n).filter((n) => n > 100 && n % 7 === 3));
      });

      it('gives a reader tailing while others append every event exactly once, in the order the store lists them', async () => {
        const ownerId = owner();
        const writers = (async () => {
          // Ten rounds of 25 concurrent appends: on a pooled store they commit in any order.
          for (let round = 0; round < 10; round++) {
            await Promise.all(
              Array.from({ length: 25 }, (_, i) => store.events.append({ ownerId, messageId: `m${i}`, type: 'queued', attempt: 0, detail: { n: round * 25 + i } })),
            );
          }
        })();
        const [{ events }] = await Promise.all([tail(ownerId, 250, 9), writers]);
        expect(events).toHaveLength(250);
        expect(new Set(events.map((e) => e.id)).size).toBe(250);
        expect(new Set(numbers(events)).size).toBe(250);
        // The order is the store's one order: a full listing afterwards shows the same sequence.
        expect((await store.events.list(ownerId, { limit: 1_000 })).map((e) => e.id)).toEqual(events.map((e) => e.id));
      });

      it('gives nothing for a cursor that is not one of the owner’s events', async () => {
        const a = owner();
        const b = owner();
        const first = await store.events.append({ ownerId: a, messageId: 'm', type: 'queued', attempt: 0, detail: {} });
        await store.events.append({ ownerId: a, messageId: 'm', type: 'sent', attempt: 1, detail: {} });
        await store.events.append({ ownerId: b, messageId: 'm', type: 'sent', attempt: 1, detail: {} });
        expect((await listEventually(a, { after: first.id }, 1)).map((e) => e.type)).toEqual(['sent']);
        // B holding A's event id learns nothing: not A's events, and not where B's own stand relative to it.
        expect(await store.events.list(b, { after: first.id })).toEqual([]);
        expect(await store.events.list(a, { after: randomUUID() })).toEqual([]);
        expect(await store.events.list(a, { after: 'not-an-event-id' })).toEqual([]);
      });

      it('keeps tracking and bounce events as any other, filterable by type', async () => {
        const ownerId = owner();
        const types = ['opened', 'clicked', 'unsubscribed', 'bounced', 'delayed', 'complained', 'replied', 'attempt_failed'] as const;
        for (const type of types) await store.events.append({ ownerId, messageId: 'm', type, attempt: 1, detail: { type } });
        expect((await listEventually(ownerId, {}, types.length)).map((e) => e.type)).toEqual([...types]);
        expect((await listEventually(ownerId, { type: 'bounced' }, 1)).map((e) => e.detail)).toEqual([{ type: 'bounced' }]);
      });
    });

    describeCapability('batchEnqueue', 'batch enqueue', () => {
      it('enqueues a batch in one call, new and existing keys mixed, with a result per record in input order', async () => {
        const ownerId = owner();
        const other = owner();
        const { record: existing } = await store.outbox.enqueue(record(ownerId, { idempotencyKey: 'k-old', fingerprint: 'old' }));
        const batch: NewOutboxRecord[] = [
          record(ownerId),
          record(ownerId, { idempotencyKey: 'k-old', fingerprint: 'new', email: sampleStoredEmail({ subject: 'Other' }) }),
          record(ownerId, { idempotencyKey: 'k-new', fingerprint: 'f' }),
          // The same key twice in one batch: the second is a replay of the first.
          record(ownerId, { idempotencyKey: 'k-new', fingerprint: 'f' }),
          record(other, { idempotencyKey: 'k-old' }),
          record(ownerId, { sendAt: undefined, delayMs: 300 }),
        ];
        const results = await store.outbox.enqueueMany(batch);
        expect(results.map((r) => r.created)).toEqual([true, false, true, false, true, true]);
        expect(results.map((r) => r.record.id)).toEqual([batch[0]!.id, existing.id, batch[2]!.id, batch[2]!.id, batch[4]!.id, batch[5]!.id]);
        expect(results[1]!.record).toEqual(existing);
        for (const i of [0, 2, 4, 5]) {
          const input = batch[i]!;
          const { record: stored } = results[i]!;
          expect(stored).toMatchObject({ ownerId: input.ownerId, status: 'queued', attempt: 0, messageId: input.messageId, idempotencyKey: input.idempotencyKey, tags: ['t1'] });
          expect(stored.email).toEqual(JSON.parse(JSON.stringify(input.email)));
          expect(await store.outbox.get(input.ownerId, input.id)).toEqual(stored);
          expect((await store.events.list(input.ownerId, { messageId: input.id })).map((e) => e.type)).toEqual(['queued']);
        }
        expect(results[0]!.record.sendAt.getTime()).toBe(batch[0]!.sendAt!.getTime());
        // "Now" and the delay from the store's clock, as for enqueue.
        expect(results[5]!.record.nextAttemptAt.getTime() - results[5]!.record.sendAt.getTime()).toBe(300);
        expect(await store.outbox.get(ownerId, batch[3]!.id)).toBeUndefined();
        expect(await store.outbox.enqueueMany([])).toEqual([]);
      });

      it('keeps one row per key when batches (in opposite orders) and single enqueues race', async () => {
        const ownerId = owner();
        const keys = Array.from({ length: 20 }, (_, i) => `race-${i}`);
        const batches = Array.from({ length: 8 }, (_, b) => (b % 2 ? [...keys].reverse() : keys).map((k) => record(ownerId, { idempotencyKey: k, fingerprint: 'f' })));
        const [batchResults, singles] = await Promise.all([
          Promise.all(batches.map((batch) => store.outbox.enqueueMany(batch))),
          Promise.all(keys.map((k) => store.outbox.enqueue(record(ownerId, { idempotencyKey: k, fingerprint: 'f' })))),
        ]);
        for (const [b, results] of batchResults.entries()) expect(results.map((r) => r.record.idempotencyKey)).toEqual(batches[b]!.map((r) => r.idempotencyKey));
        const all = [...batchResults.flat(), ...singles];
        for (const k of keys) {
          const forKey = all.filter((r) => r.record.idempotencyKey === k);
          expect(forKey).toHaveLength(9);
          expect(forKey.filter((r) => r.created)).toHaveLength(1);
          const stored = await store.outbox.findByIdempotencyKey(ownerId, k);
          expect(new Set(forKey.map((r) => r.record.id))).toEqual(new Set([stored!.id]));
        }
        // One 'queued' event per row, none for a replay.
        expect(await listEventually(ownerId, { type: 'queued', limit: 1_000 }, keys.length)).toHaveLength(keys.length);
      });
    });

    describeCapability('findByMessageId', 'find by Message-ID', () => {
      it('finds every record of the owner with a Message-ID header, oldest first, and no other owner’s', async () => {
        const ownerId = owner();
        const messageId = `<${randomUUID()}@example.com>`;
        const { record: original } = await store.outbox.enqueue(record(ownerId, { messageId }));
        await store.outbox.enqueue(record(ownerId));
        // A follow-up for deferred recipients reuses its message's Message-ID.
        const { record: followUp } = await store.outbox.enqueue(record(ownerId, { messageId, email: sampleStoredEmail({ envelopeTo: ['ada@example.com'] }) }));
        const { record: foreign } = await store.outbox.enqueue(record(owner(), { messageId }));

        const found = await store.outbox.findByMessageId(ownerId, messageId);
        expect(found.map((r) => r.id)).toEqual([original.id, followUp.id]);
        expect(found[0]).toEqual(original);
        expect((await store.outbox.findByMessageId(ownerId, messageId, { limit: 1 })).map((r) => r.id)).toEqual([original.id]);
        expect((await store.outbox.findByMessageId(foreign.ownerId, messageId)).map((r) => r.id)).toEqual([foreign.id]);
        expect(await store.outbox.findByMessageId(owner(), messageId)).toEqual([]);
        // Exactly as stored: the header with its angle brackets.
        expect(await store.outbox.findByMessageId(ownerId, messageId.slice(1, -1))).toEqual([]);
      });

      it('finds a record enqueued in a batch, and shows its current state', async () => {
        const ownerId = owner();
        const [result] = await store.outbox.enqueueMany([record(ownerId)]);
        const r = result!.record;
        const claimed = await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, ownerId, ids: [r.id] });
        expect(claimed.map((c) => c.id)).toEqual([r.id]);
        await store.outbox.settle(r.id, 1, { status: 'sent', server: 's', accepted: ['ada@example.com'], rejected: [], response: '250' });
        expect(await store.outbox.findByMessageId(ownerId, r.messageId)).toEqual([await store.outbox.get(ownerId, r.id)]);
        expect((await store.outbox.findByMessageId(ownerId, r.messageId))[0]).toMatchObject({ status: 'sent', accepted: ['ada@example.com'] });
      });
    });

    describePart('policies', () => {
      const policies = (): PolicyStore => store.policies!;
      const policy = { sending: { maxRecipients: 5 }, allow: ['example.com', '*.example.org'], approval: { outside: ['ünïcode.example'], ttlHours: 24 }, note: null };

      it('saves, gets exactly the scope asked for, replaces, lists the default first, and deletes, per owner', async () => {
        const ownerId = owner();
        const fallback = await policies().save({ ownerId, agentId: undefined, policy });
        expect(fallback).toEqual({ ownerId, agentId: undefined, policy, updatedAt: expect.any(Date) });
        const b = await policies().save({ ownerId, agentId: 'agent-b', policy: { sending: { enabled: false } } });
        const a = await policies().save({ ownerId, agentId: 'agent-a', policy: { sending: { maxRecipients: 1 } } });
        expect(await policies().get(ownerId, undefined)).toEqual(fallback);
        expect(await policies().get(ownerId, 'agent-b')).toEqual(b);
        // No fallback: an agent without a policy of its own has none here.
        expect(await policies().get(ownerId, 'agent-c')).toBeUndefined();
        expect((await policies().list(ownerId)).map((p) => p.agentId)).toEqual([undefined, 'agent-a', 'agent-b']);

        const replaced = await policies().save({ ownerId, agentId: 'agent-a', policy: { sending: { maxRecipients: 2 } } });
        expect(replaced.policy).toEqual({ sending: { maxRecipients: 2 } });
        expect(replaced.updatedAt.getTime()).toBeGreaterThanOrEqual(a.updatedAt.getTime());
        expect(await policies().get(ownerId, 'agent-a')).toEqual(replaced);
        expect(await policies().list(ownerId)).toHaveLength(3);

        expect(await policies().delete(ownerId, undefined)).toBe(true);
        expect(await policies().delete(ownerId, undefined)).toBe(false);
        expect(await policies().get(ownerId, undefined)).toBeUndefined();
        expect((await policies().list(ownerId)).map((p) => p.agentId)).toEqual(['agent-a', 'agent-b']);
      });

      it('never shows or changes one owner’s policies for another', async () => {
        const ownerId = owner();
        const other = owner();
        await policies().save({ ownerId, agentId: undefined, policy });
        await policies().save({ ownerId, agentId: 'agent-1', policy });
        const theirs = await policies().save({ ownerId: other, agentId: 'agent-1', policy: { sending: { enabled: false } } });
        expect(await policies().get(other, undefined)).toBeUndefined();
        expect(await policies().list(other)).toEqual([theirs]);
        expect(await policies().delete(other, undefined)).toBe(false);
        expect(await policies().get(ownerId, 'agent-1')).toMatchObject({ ownerId, policy });
        expect(await policies().list(owner())).toEqual([]);
      });

      it('refuses an empty agent id rather than mistake it for the owner’s default', async () => {
        const ownerId = owner();
        await policies().save({ ownerId, agentId: undefined, policy });
        await expect(policies().save({ ownerId, agentId: '', policy: {} })).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'agentId' });
        expect(await policies().get(ownerId, '')).toBeUndefined();
        expect(await policies().delete(ownerId, '')).toBe(false);
        expect(await policies().get(ownerId, undefined)).toMatchObject({ policy });
      });
    });

    describePart('credentials', () => {
      const credentials = (): CredentialStore => store.credentials!;
      const smtpConfig = (ownerId: string, overrides: Partial<SmtpConfigWrite> = {}): SmtpConfigWrite => ({
        ownerId,
        id: `smtp_${randomUUID()}`,
        name: `Work ${randomUUID().slice(0, 8)}`,
        host: 'smtp.example.com',
        port: 587,
        security: 'starttls',
        username: 'ada@example.com',
        passwordCiphertext: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
        keyId: 'k1',
        fromAddress: 'ada@example.com',
        fromName: 'Ada "The Countess", Lovelace',
        isDefault: false,
        active: true,
        ...overrides,
      });
      const defaults = async (ownerId: string): Promise<string[]> => (await credentials().list(ownerId)).filter((c) => c.isDefault).map((c) => c.id);

      it('saves a config and gives every field back, per owner, oldest first', async () => {
        const ownerId = owner();
        const input = smtpConfig(ownerId, { name: 'Work ünïcode ✉' });
        const saved = await credentials().save(input);
        const { keepPassword: _, ...fields } = input;
        expect(saved).toEqual({ ...fields, isDefault: true, createdAt: expect.any(Date), updatedAt: expect.any(Date) });
        expect(await credentials().get(ownerId, input.id)).toEqual(saved);
        const bare = await credentials().save(
          smtpConfig(ownerId, { security: 'none', port: 25, username: undefined, passwordCiphertext: undefined, keyId: undefined, fromAddress: undefined, fromName: undefined, active: false }),
        );
        expect(bare).toMatchObject({ username: undefined, passwordCiphertext: undefined, keyId: undefined, fromAddress: undefined, fromName: undefined, active: false, isDefault: false });
        expect((await credentials().list(ownerId)).map((c) => c.id)).toEqual([input.id, bare.id]);
        expect(await credentials().get(owner(), input.id)).toBeUndefined();
        expect(await credentials().list(owner())).toEqual([]);
      });

      it('replaces a config by id, keeping createdAt, and keeps the password when asked to', async () => {
        const ownerId = owner();
        const first = await credentials().save(smtpConfig(ownerId));
        const edited = await credentials().save(smtpConfig(ownerId, { id: first.id, name: 'Renamed', host: 'mail.example.org', port: 465, security: 'tls', passwordCiphertext: 'bmV3', keyId: 'k2' }));
        expect(edited).toMatchObject({ id: first.id, name: 'Renamed', host: 'mail.example.org', port: 465, security: 'tls', passwordCiphertext: 'bmV3', keyId: 'k2' });
        expect(edited.createdAt.getTime()).toBe(first.createdAt.getTime());
        expect(edited.updatedAt.getTime()).toBeGreaterThanOrEqual(first.updatedAt.getTime());
        const kept = await credentials().save(smtpConfig(ownerId, { id: first.id, name: 'Renamed', passwordCiphertext: undefined, keyId: undefined, keepPassword: true }));
        expect(kept).toMatchObject({ passwordCiphertext: 'bmV3', keyId: 'k2' });
        const cleared = await credentials().save(smtpConfig(ownerId, { id: first.id, name: 'Renamed', username: undefined, passwordCiphertext: undefined, keyId: undefined }));
        expect(cleared).toMatchObject({ username: undefined, passwordCiphertext: undefined, keyId: undefined });
        expect(await credentials().list(ownerId)).toHaveLength(1);
      });

      it('keeps names unique per owner, refusing a taken one with a ValidationError on name', async () => {
        const ownerId = owner();
        const a = await credentials().save(smtpConfig(ownerId, { name: 'Work' }));
        const b = await credentials().save(smtpConfig(ownerId, { name: 'Personal' }));
        await expect(credentials().save(smtpConfig(ownerId, { name: 'Work' }))).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'name' });
        await expect(credentials().save(smtpConfig(ownerId, { id: b.id, name: 'Work' }))).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'name' });
        expect((await credentials().list(ownerId)).map((c) => [c.id, c.name])).toEqual([
          [a.id, 'Work'],
          [b.id, 'Personal'],
        ]);
        expect(await credentials().save(smtpConfig(owner(), { name: 'Work' }))).toMatchObject({ name: 'Work' });
      });

      it('has at most one default per owner: the first active config, then whichever is made default', async () => {
        const ownerId = owner();
        const inactive = await credentials().save(smtpConfig(ownerId, { active: false }));
        expect(inactive.isDefault).toBe(false);
        const a = await credentials().save(smtpConfig(ownerId));
        const b = await credentials().save(smtpConfig(ownerId));
        expect(await defaults(ownerId)).toEqual([a.id]);
        expect(await credentials().save(smtpConfig(ownerId, { id: b.id, name: b.name, isDefault: true }))).toMatchObject({ isDefault: true });
        expect(await defaults(ownerId)).toEqual([b.id]);
        expect(await credentials().setDefault(ownerId, a.id)).toMatchObject({ id: a.id, isDefault: true });
        expect(await defaults(ownerId)).toEqual([a.id]);
        // Another owner's id, or none: nothing changes.
        expect(await credentials().setDefault(owner(), b.id)).toBeUndefined();
        expect(await credentials().setDefault(ownerId, 'smtp_missing')).toBeUndefined();
        expect(await defaults(ownerId)).toEqual([a.id]);
        // Deleting the default promotes the oldest active config; the inactive one is skipped.
        expect(await credentials().delete(ownerId, a.id)).toBe(true);
        expect(await credentials().delete(ownerId, a.id)).toBe(false);
        expect(await defaults(ownerId)).toEqual([b.id]);
        expect(await credentials().delete(owner(), b.id)).toBe(false);
        expect(await credentials().get(ownerId, b.id)).toMatchObject({ isDefault: true });
      });

      it('makes exactly one default when 10 first configs of one owner are saved at once', async () => {
        const ownerId = owner();
        await Promise.all(Array.from({ length: 10 }, () => credentials().save(smtpConfig(ownerId))));
        expect(await credentials().list(ownerId)).toHaveLength(10);
        expect(await defaults(ownerId)).toHaveLength(1);
      });

      it('lists configs under other keys in (owner, id) order across owners, page by page', async () => {
        const owners = [owner(), owner()].sort();
        const configs: StoredSmtpConfig[] = [];
        for (const ownerId of owners) {
          for (const keyId of ['old', 'old', 'current']) configs.push(await credentials().save(smtpConfig(ownerId, { keyId })));
          configs.push(await credentials().save(smtpConfig(ownerId, { username: undefined, passwordCiphertext: undefined, keyId: undefined })));
        }
        const byOwnerThenId = (x: StoredSmtpConfig, y: StoredSmtpConfig): number =>
          x.ownerId < y.ownerId ? -1 : x.ownerId > y.ownerId ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
        const expected = configs.filter((c) => c.keyId === 'old').sort(byOwnerThenId).map((c) => c.id);
        // Other tests' rows are in the store too: page through all, keep ours.
        const seen: StoredSmtpConfig[] = [];
        let after: SmtpConfigCursor | undefined;
        for (let page = 0; page < 1_000; page++) {
          const batch = await credentials().listForRotation({ keyId: 'current', after, limit: 3 });
          seen.push(...batch);
          if (batch.length < 3) break;
          after = { ownerId: batch[2]!.ownerId, id: batch[2]!.id };
        }
        expect(seen.filter((c) => owners.includes(c.ownerId)).map((c) => c.id)).toEqual(expected);
        expect(seen.every((c) => c.keyId !== 'current' && c.passwordCiphertext !== undefined)).toBe(true);
        expect([...seen].sort(byOwnerThenId).map((c) => c.id)).toEqual(seen.map((c) => c.id));
        const one = await credentials().listForRotation({ keyId: 'current', ownerId: owners[1], limit: 10 });
        expect(one.map((c) => c.id)).toEqual(expected.slice(2));
      });

      it('replaces a password only while it is still the one expected, leaving updatedAt alone', async () => {
        const ownerId = owner();
        const saved = await credentials().save(smtpConfig(ownerId, { passwordCiphertext: 'b2xk', keyId: 'k1' }));
        expect(await credentials().replacePassword(ownerId, saved.id, 'b3RoZXI=', { keyId: 'k2', passwordCiphertext: 'bmV3' })).toBe(false);
        expect(await credentials().replacePassword(owner(), saved.id, 'b2xk', { keyId: 'k2', passwordCiphertext: 'bmV3' })).toBe(false);
        expect(await credentials().replacePassword(ownerId, saved.id, 'b2xk', { keyId: 'k2', passwordCiphertext: 'bmV3' })).toBe(true);
        const after = await credentials().get(ownerId, saved.id);
        expect(after).toMatchObject({ keyId: 'k2', passwordCiphertext: 'bmV3' });
        expect(after!.updatedAt.getTime()).toBe(saved.updatedAt.getTime());
      });

      it('keeps DKIM domain, selector and encrypted key: round trip, keep, clear, rotation listing and replace', async () => {
        const ownerId = owner();
        const dkim = { dkimDomain: 'example.com', dkimSelector: 's1', dkimKeyCiphertext: 'ZGtpbQ==', dkimKeyId: 'k1' };
        const saved = await credentials().save(smtpConfig(ownerId, dkim));
        expect(saved).toMatchObject(dkim);
        expect(await credentials().get(ownerId, saved.id)).toEqual(saved);
        expect((await credentials().list(ownerId))[0]).toEqual(saved);
        // An edit that keeps the key may change domain and selector; the password's keep is separate.
        const kept = await credentials().save(
          smtpConfig(ownerId, { id: saved.id, name: saved.name, dkimDomain: 'example.org', dkimSelector: 's2', keepDkimKey: true, passwordCiphertext: 'bmV3', keyId: 'k2' }),
        );
        expect(kept).toMatchObject({ dkimDomain: 'example.org', dkimSelector: 's2', dkimKeyCiphertext: 'ZGtpbQ==', dkimKeyId: 'k1', passwordCiphertext: 'bmV3', keyId: 'k2' });
        // Listed for rotation by its DKIM key alone (the password is under the current key already).
        const listed = await credentials().listForRotation({ keyId: 'k2', ownerId, limit: 10 });
        expect(listed.map((c) => c.id)).toEqual([saved.id]);
        expect(await credentials().replaceDkimKey(ownerId, saved.id, 'b3RoZXI=', { dkimKeyId: 'k2', dkimKeyCiphertext: 'bmV3ZGtpbQ==' })).toBe(false);
        expect(await credentials().replaceDkimKey(owner(), saved.id, 'ZGtpbQ==', { dkimKeyId: 'k2', dkimKeyCiphertext: 'bmV3ZGtpbQ==' })).toBe(false);
        expect(await credentials().replaceDkimKey(ownerId, saved.id, 'ZGtpbQ==', { dkimKeyId: 'k2', dkimKeyCiphertext: 'bmV3ZGtpbQ==' })).toBe(true);
        const rotated = await credentials().get(ownerId, saved.id);
        expect(rotated).toMatchObject({ dkimKeyId: 'k2', dkimKeyCiphertext: 'bmV3ZGtpbQ==', passwordCiphertext: 'bmV3' });
        expect(rotated!.updatedAt.getTime()).toBe(kept.updatedAt.getTime());
        expect(await credentials().listForRotation({ keyId: 'k2', ownerId, limit: 10 })).toEqual([]);
        // No domain: no DKIM at all, the key dropped with it.
        const cleared = await credentials().save(smtpConfig(ownerId, { id: saved.id, name: saved.name, passwordCiphertext: 'bmV3', keyId: 'k2' }));
        expect([cleared.dkimDomain, cleared.dkimSelector, cleared.dkimKeyCiphertext, cleared.dkimKeyId]).toEqual([undefined, undefined, undefined, undefined]);
      });
    });
  });
}
