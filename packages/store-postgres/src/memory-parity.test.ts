import { randomUUID } from 'node:crypto';
import { MemoryStore, type MailStore, type NewOutboxRecord, type OutboxRecord } from '@agent-smtp/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newOutboxRecord } from '@agent-smtp/testing/store-contract';
import { DATABASE_URL, eventsVisible, pgliteStore, SERVER_SKIP_REASON, serverStore, type TestDatabase } from './test-databases.js';

// The same scripts on MemoryStore (the reference) and on Postgres must leave the same
// records, return the same results and write the same events (types, attempts and details, in order). Times
// that come from a clock are compared by presence only; those derived from `sendAt`, `at` or `now` exactly.

// An hour ago, on a whole minute: sendAt values in the past, except d's.
const base = Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000;
const minutes = (n: number): Date => new Date(base + n * 60_000);
/** Ten minutes after the test started: every lease taken so far has expired. */
const at10 = new Date(Date.now() + 10 * 60_000);

const newRecord = (ownerId: string, patch: Partial<NewOutboxRecord>): NewOutboxRecord =>
  newOutboxRecord(ownerId, { sendAt: minutes(0), ...patch });

/** Runs the script and returns everything observable, with ids and clock times replaced by stable stand-ins. */
/**
 * Called before an owner-wide event list: on Postgres it waits until the owner's events are past the tail horizon
 * (migration 003), since a write transaction another test file holds open on the server holds them back meanwhile.
 */
type Settle = (ownerId: string) => Promise<void>;
const settled: Settle = async () => {};

async function transcript(store: MailStore, eventsVisible: Settle = settled): Promise<unknown[]> {
  const ownerId = `owner-${randomUUID()}`;
  const names = new Map<string, string>();
  const out: unknown[] = [];
  /** Times a store took from its own clock (a retry's due time), by the name they are shown under. */
  const stamps = new Map<number, string>();
  const show = (r: OutboxRecord | undefined): unknown =>
    r && {
      ...r,
      id: names.get(r.id),
      ownerId: r.ownerId === ownerId ? 'owner' : r.ownerId,
      messageId: typeof r.messageId,
      email: JSON.parse(JSON.stringify(r.email)),
      error: r.error && JSON.parse(JSON.stringify(r.error)),
      createdAt: r.createdAt instanceof Date,
      updatedAt: r.updatedAt instanceof Date,
      nextAttemptAt: stamps.get(r.nextAttemptAt.getTime()) ?? r.nextAttemptAt,
      // Expiry is the store's now plus the ttl; a decision's time is the `now` passed.
      approval: r.approval && { ...r.approval, expiresAt: r.approval.expiresAt instanceof Date },
    };
  const add = (name: string, patch: Partial<NewOutboxRecord> = {}): NewOutboxRecord => {
    const input = newRecord(ownerId, patch);
    names.set(input.id, name);
    return input;
  };
  const log = (step: string, value: unknown): void => {
    out.push([step, value]);
  };

  const a = add('a', { idempotencyKey: 'key-a', fingerprint: 'fa', sendAt: minutes(1) });
  log('enqueue a', show((await store.outbox.enqueue(a)).record));
  const a2 = add('a2', { idempotencyKey: 'key-a', fingerprint: 'other', sendAt: minutes(9) });
  const again = await store.outbox.enqueue(a2);
  log('enqueue a again', [again.created, show(again.record)]);
  const b = add('b', { sendAt: minutes(2) });
  const bResult = await store.outbox.enqueue(b, { claim: { workerId: 'direct', leaseMs: 60_000 } });
  log('enqueue b claimed', [bResult.created, { ...(show(bResult.record) as object), leaseExpiresAt: bResult.record.leaseExpiresAt instanceof Date }]);
  const c = add('c', { sendAt: minutes(3), maxAttempts: 1 });
  await store.outbox.enqueue(c, { claim: { workerId: 'doomed', leaseMs: 1 } });
  const d = add('d', { sendAt: minutes(200) });
  await store.outbox.enqueue(d);

  // Ten minutes after everything: a is due, b's and c's leases have expired; c had no attempts left.
  const firstClaim = await store.outbox.claim({ workerId: 'w1', limit: 10, leaseMs: 30_000, now: at10 });
  log('claim 1', firstClaim.filter((r) => r.ownerId === ownerId).map(show));
  log('c after claim', show(await store.outbox.get(ownerId, c.id)));

  log('stale settle b', await store.outbox.settle(b.id, 1, { status: 'sent', server: 'stale', accepted: [], rejected: [], response: '250' }));
  log('settle b sent', show(await store.outbox.settle(b.id, 2, { status: 'sent', server: 'p', accepted: ['ada@example.com'], rejected: ['x@example.com'], response: '250 ok' })));
  const transient = { code: 'SMTP_TRANSIENT', message: '451 later', responseCode: 451, retryable: true };
  // A retry's due time is the store's now plus the delay: compare the delay, not two clocks' readings.
  const retried = (await store.outbox.settle(a.id, 1, { status: 'retry', delayMs: 5 * 60_000, error: transient, server: 'p' }))!;
  stamps.set(retried.nextAttemptAt.getTime(), `settle time + ${retried.nextAttemptAt.getTime() - retried.updatedAt.getTime()} ms`);
  log('settle a retry', show(retried));

  const secondClaim = await store.outbox.claim({ workerId: 'w2', limit: 10, leaseMs: 30_000, now: at10 });
  log('claim 2', secondClaim.filter((r) => r.ownerId === ownerId).map(show));
  log('settle a failed', show(await store.outbox.settle(a.id, 2, { status: 'failed', error: transient })));
  const reclaimed = await store.outbox.reclaim(ownerId, a.id, { workerId: 'w3', leaseMs: 1_000 });
  log('reclaim a', reclaimed && { ...(show(reclaimed) as object), leaseExpiresAt: reclaimed.leaseExpiresAt instanceof Date });
  log('settle a unknown', show(await store.outbox.settle(a.id, 3, { status: 'unknown', error: { code: 'SMTP_TRANSIENT', message: 'reset', retryable: true } })));
  log('reclaim a again', await store.outbox.reclaim(ownerId, a.id, { workerId: 'w3', leaseMs: 1_000 }));

  const cancelled = await store.outbox.cancel(ownerId, d.id);
  log('cancel d', cancelled && [cancelled.cancelled, show(cancelled.record)]);
  const cancelledAgain = await store.outbox.cancel(ownerId, d.id);
  log('cancel d again', cancelledAgain && [cancelledAgain.cancelled, show(cancelledAgain.record)]);
  log('cancel b', (await store.outbox.cancel(ownerId, b.id))?.cancelled);
  log('cancel other owner', await store.outbox.cancel('someone-else', d.id));

  // Approval: approved (then claimed), rejected, approved too late, cancelled, listed, expired by listing.
  const approval = (ttlMs = 3_600_000) => ({ reason: 'recipient outside approval.outside', ttlMs });
  const e = add('e', { approval: approval() });
  log('enqueue e pending', show((await store.outbox.enqueue(e)).record));
  log('claim e pending', await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 1_000, ownerId, ids: [e.id], now: at10 }));
  const decided = await store.outbox.decide(ownerId, e.id, { approve: true, by: 'ada', now: at10 });
  log('approve e', decided && [decided.outcome, show(decided.record)]);
  const decidedAgain = await store.outbox.decide(ownerId, e.id, { approve: false, by: 'bob', now: at10 });
  log('reject e again', decidedAgain && [decidedAgain.outcome, show(decidedAgain.record)]);
  log('claim e approved', (await store.outbox.claim({ workerId: 'w', limit: 10, leaseMs: 1_000, ownerId, ids: [e.id], now: at10 })).map(show));
  const f = add('f', { approval: approval() });
  await store.outbox.enqueue(f);
  const rejected = await store.outbox.decide(ownerId, f.id, { approve: false, by: 'bob', now: at10 });
  log('reject f', rejected && [rejected.outcome, show(rejected.record)]);
  const g = add('g', { approval: approval(60_000) });
  await store.outbox.enqueue(g);
  const late = await store.outbox.decide(ownerId, g.id, { approve: true, by: 'ada', now: at10 });
  log('approve g late', late && [late.outcome, show(late.record)]);
  log('decide as another owner', await store.outbox.decide('someone-else', f.id, { approve: true, by: 'mallory' }));
  const h = add('h', { approval: approval() });
  await store.outbox.enqueue(h);
  const hCancelled = await store.outbox.cancel(ownerId, h.id);
  log('cancel h pending', hCancelled && [hCancelled.cancelled, show(hCancelled.record)]);
  const i = add('i', { approval: approval(), agentId: 'agent-2' });
  const j = add('j', { approval: approval(60_000) });
  log('enqueue many i j', (await store.outbox.enqueueMany([i, j])).map((result) => [result.created, show(result.record)]));
  // Sorted: i and j may share a creation time, and then their random ids decide the order.
  log('list pending', (await store.outbox.listPending(ownerId)).map((r) => names.get(r.id)).sort());
  log('list pending agent-2', (await store.outbox.listPending(ownerId, { agentId: 'agent-2' })).map((r) => names.get(r.id)));
  log('list pending at10', (await store.outbox.listPending(ownerId, { now: at10 })).map((r) => names.get(r.id)));
  log('j after listing', show(await store.outbox.get(ownerId, j.id)));
  log('list pending after i', await store.outbox.listPending(ownerId, { after: i.id, now: at10 }));

  log('limit 0', await store.outbox.claim({ workerId: 'w', limit: 0, leaseMs: 1, now: at10 }));

  log('get a', show(await store.outbox.get(ownerId, a.id)));
  log('get a as another owner', await store.outbox.get('someone-else', a.id));
  log('find key-a', show(await store.outbox.findByIdempotencyKey(ownerId, 'key-a')));
  log('find key-a as another owner', await store.outbox.findByIdempotencyKey('someone-else', 'key-a'));
  log('find missing key', await store.outbox.findByIdempotencyKey(ownerId, 'nope'));

  await eventsVisible(ownerId);
  const events = await store.events.list(ownerId);
  log(
    'events',
    events.map((e) => [
      names.get(e.messageId),
      e.type,
      e.attempt,
      typeof e.detail.at === 'string'
        ? { ...e.detail, at: stamps.get(Date.parse(e.detail.at)) ?? e.detail.at }
        : typeof e.detail.expiresAt === 'string'
          ? { ...e.detail, expiresAt: 'store now + ttl' }
          : e.detail,
    ]),
  );

  // Stats over what the script left (b sent to one recipient), with an open and clicks by a person and a machine.
  await store.events.append({ ownerId, messageId: b.id, type: 'opened', attempt: 2, detail: { machine: false } });
  await store.events.append({ ownerId, messageId: b.id, type: 'clicked', attempt: 2, detail: { machine: false, link: 0, url: 'https://example.com/' } });
  await store.events.append({ ownerId, messageId: b.id, type: 'clicked', attempt: 2, detail: { machine: true, reason: 'prefetch', link: 0, url: 'https://example.com/' } });
  await store.events.append({ ownerId, messageId: a.id, type: 'clicked', attempt: 3, detail: { machine: 'no', link: 1.5, url: 'https://example.com/x' } });
  log('stats', await store.stats.summary(ownerId));
  log('stats tag', await store.stats.summary(ownerId, { tag: 't1' }));
  log('stats b', await store.stats.summary(ownerId, { messageId: b.id }));
  log('stats before the script', await store.stats.summary(ownerId, { to: minutes(-60) }));
  return out;
}

/** The other parts: events appended by hand, suppressions, audit, counters, credentials. */
async function recordsTranscript(store: MailStore, eventsVisible: Settle = settled): Promise<unknown[]> {
  const ownerId = `owner-${randomUUID()}`;
  const other = `owner-${randomUUID()}`;
  const out: unknown[] = [];
  const log = (step: string, value: unknown): void => {
    out.push([step, value]);
  };
  const noClock = <T extends object>(value: T): unknown => {
    const { id: _id, at, createdAt, updatedAt, ownerId: who, ...rest } = value as Record<string, unknown>;
    return { ...rest, owner: who === ownerId ? 'owner' : who, clocks: [at, createdAt, updatedAt].filter((d) => d instanceof Date).length };
  };

  const fixedAt = new Date('2026-03-01T12:00:00.000Z');
  log('append', noClock(await store.events.append({ ownerId, messageId: 'm1', type: 'sent', attempt: 1, detail: { server: 'p', n: [1, 2] } })));
  log('append with at', await store.events.append({ ownerId, messageId: 'm2', type: 'failed', attempt: 2, detail: {}, at: fixedAt }).then((e) => e.at.toISOString()));
  await store.events.append({ ownerId, messageId: 'm1', type: 'retry', attempt: 1, detail: {} });
  await store.events.append({ ownerId: other, messageId: 'm1', type: 'sent', attempt: 1, detail: {} });
  const pick = (list: { messageId: string; type: string }[]) => list.map((e) => `${e.messageId}:${e.type}`);
  await eventsVisible(ownerId);
  log('events', pick(await store.events.list(ownerId)));
  log('events m1', pick(await store.events.list(ownerId, { messageId: 'm1' })));
  log('events sent', pick(await store.events.list(ownerId, { type: 'sent' })));
  log('events m1 retry', pick(await store.events.list(ownerId, { messageId: 'm1', type: 'retry' })));
  log('events limit 2', pick(await store.events.list(ownerId, { limit: 2 })));
  log('events limit 0', pick(await store.events.list(ownerId, { limit: 0 })));

  log('suppress', noClock(await store.suppressions.add({ ownerId, address: 'Ada@Example.COM', reason: 'unsubscribe', detail: { via: 'link' } })));
  log('suppress 2', noClock(await store.suppressions.add({ ownerId, address: 'grace@example.com', reason: 'manual' })));
  log('suppress again', noClock(await store.suppressions.add({ ownerId, address: 'ada@example.com', reason: 'bounce' })));
  log('find', (await store.suppressions.find(ownerId, ['GRACE@example.com', 'nobody@x.org', 'ada@example.com', 'Ada@example.com'])).map(noClock));
  log('find none', await store.suppressions.find(ownerId, []));
  log('find other owner', await store.suppressions.find(other, ['ada@example.com']));
  log('list', (await store.suppressions.list(ownerId)).map(noClock));
  log('list limit', (await store.suppressions.list(ownerId, { limit: 1 })).map((x) => x.address));
  log('remove', await store.suppressions.remove(ownerId, 'ADA@example.com'));
  log('remove again', await store.suppressions.remove(ownerId, 'ada@example.com'));
  log('remove other owner', await store.suppressions.remove(other, 'grace@example.com'));

  log('audit', noClock(await store.audit.append({ ownerId, agentId: 'a1', action: 'send', outcome: 'ok', messageId: 'm1', detail: { to: ['x@y.z'] } })));
  log('audit 2', noClock(await store.audit.append({ ownerId, agentId: undefined, action: 'reload', outcome: 'error', detail: {} })));
  await store.audit.append({ ownerId, agentId: 'a1', action: 'send', outcome: 'error', detail: { code: 'X' } });
  await store.audit.append({ ownerId: other, agentId: 'a1', action: 'send', outcome: 'ok', detail: {} });
  log('audit list', (await store.audit.list(ownerId)).map(noClock));
  log('audit send', (await store.audit.list(ownerId, { action: 'send' })).map((e) => e.outcome));
  log('audit limit', (await store.audit.list(ownerId, { limit: 2 })).map((e) => e.action));
  log('audit empty action', (await store.audit.list(ownerId, { action: '' })).length);
  log(
    'audit fields',
    noClock(await store.audit.append({ ownerId, agentId: 'a2', action: 'approve', outcome: 'error', tool: 'approve_email', actor: 'ada', recipientCount: 2, durationMs: 7.25, errorCode: 'X', detail: {} })),
  );
  const auditPage = await store.audit.list(ownerId, { limit: 2 });
  log('audit before', (await store.audit.list(ownerId, { before: auditPage.at(-1)!.id })).map((e) => e.action));
  log('audit before other owner', await store.audit.list(other, { before: auditPage[0]!.id }));
  log('audit agent', (await store.audit.list(ownerId, { agentId: 'a1' })).map((e) => e.outcome));
  log('audit agent and action', (await store.audit.list(ownerId, { agentId: 'a1', action: 'send', before: auditPage[0]!.id, limit: 1 })).map((e) => e.detail));
  log('audit to', (await store.audit.list(ownerId, { to: new Date(0) })).length);
  log('audit from', (await store.audit.list(ownerId, { from: new Date(0) })).length);

  log('inc', await store.counters.increment(ownerId, 'sent', 'd1', 2, 3));
  log('inc over', await store.counters.increment(ownerId, 'sent', 'd1', 2, 3));
  log('inc to limit', await store.counters.increment(ownerId, 'sent', 'd1', 1, 3));
  log('inc new over', await store.counters.increment(ownerId, 'sent', 'd2', 5, 3));
  log('inc zero', await store.counters.increment(ownerId, 'sent', 'd3', 0, 0));
  log('get', [await store.counters.get(ownerId, 'sent', 'd1'), await store.counters.get(ownerId, 'sent', 'd2'), await store.counters.get(other, 'sent', 'd1')]);
  log('big', await store.counters.increment(ownerId, 'bytes', 'd1', 3_000_000_000, 5_000_000_000));
  log('refund', await store.counters.increment(ownerId, 'sent', 'd1', -1, 3));
  log('refund past 0', await store.counters.increment(ownerId, 'sent', 'd1', -10, 3));
  log('refund none', await store.counters.increment(ownerId, 'sent', 'd9', -1, 3));
  log('get after refunds', [await store.counters.get(ownerId, 'sent', 'd1'), await store.counters.get(ownerId, 'sent', 'd9')]);

  const policies = store.policies!;
  log('policy default', noClock(await policies.save({ ownerId, agentId: undefined, policy: { sending: { maxRecipients: 5 }, allow: ['a', 'b'], x: null } })));
  log('policy agent', noClock(await policies.save({ ownerId, agentId: 'agent-b', policy: { sending: { enabled: false } } })));
  await policies.save({ ownerId, agentId: 'agent-a', policy: {} });
  log('policy replace', noClock(await policies.save({ ownerId, agentId: 'agent-b', policy: { sending: { enabled: true } } })));
  log('policy list', (await policies.list(ownerId)).map(noClock));
  log('policy get', [await policies.get(ownerId, 'agent-c'), await policies.get(other, undefined)]);
  log('policy empty agent', await policies.save({ ownerId, agentId: '', policy: {} }).catch((e: { code: string; field: string }) => [e.code, e.field]));
  log('policy delete', [await policies.delete(ownerId, undefined), await policies.delete(ownerId, undefined), await policies.delete(other, 'agent-a')]);
  log('policy list after', (await policies.list(ownerId)).map((p) => p.agentId));

  const credentials = store.credentials!;
  const smtp = { host: 'smtp.example.com', port: 587, security: 'starttls', username: 'ada@example.com', fromAddress: 'ada@example.com', fromName: 'Ada' } as const;
  const config = (id: string, patch: object = {}) => ({ ownerId, id, name: id, ...smtp, passwordCiphertext: 'AAA', keyId: 'k1', isDefault: false, active: true, ...patch });
  log('cfg save', noClock(await credentials.save(config('cfg-a'))));
  log('cfg save b', noClock(await credentials.save(config('cfg-b', { isDefault: true, username: undefined, passwordCiphertext: undefined, keyId: undefined }))));
  log('cfg keep password', noClock(await credentials.save(config('cfg-a', { name: 'A', passwordCiphertext: undefined, keyId: undefined, keepPassword: true }))));
  log('cfg name taken', await credentials.save(config('cfg-c', { name: 'A' })).catch((e: { code: string; field: string }) => [e.code, e.field]));
  log('cfg get other', await credentials.get(other, 'cfg-a'));
  log('cfg list', (await credentials.list(ownerId)).map(noClock));
  log('cfg set default', [noClock((await credentials.setDefault(ownerId, 'cfg-a'))!), await credentials.setDefault(other, 'cfg-b')]);
  log('cfg rotation', (await credentials.listForRotation({ keyId: 'k2', ownerId, limit: 10 })).map((c) => c.id));
  log('cfg replace', [await credentials.replacePassword(ownerId, 'cfg-a', 'AAA', { keyId: 'k2', passwordCiphertext: 'BBB' }), await credentials.replacePassword(ownerId, 'cfg-a', 'AAA', { keyId: 'k3', passwordCiphertext: 'CCC' })]);
  log('cfg delete', [await credentials.delete(ownerId, 'cfg-a'), await credentials.delete(ownerId, 'cfg-a'), await credentials.delete(other, 'cfg-b')]);
  log('cfg list after', (await credentials.list(ownerId)).map((c) => [c.id, c.isDefault]));
  return out;
}

describe('MemoryStore parity', () => {
  let memory: unknown[];
  let memoryRecords: unknown[];
  beforeAll(async () => {
    memory = await transcript(new MemoryStore());
    memoryRecords = await recordsTranscript(new MemoryStore());
  });

  describe('on PGlite', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await pgliteStore();
    });
    afterAll(async () => db?.close());

    it('leaves the same records, results and events as MemoryStore', async () => {
      expect(await transcript(db.store, (ownerId) => eventsVisible(db, ownerId))).toEqual(memory);
    });

    it('answers like MemoryStore for events, suppressions, audit, counters and credentials', async () => {
      expect(await recordsTranscript(db.store, (ownerId) => eventsVisible(db, ownerId))).toEqual(memoryRecords);
    });
  });

  describe.skipIf(!DATABASE_URL)(`on a server (${DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON})`, () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await serverStore();
    });
    afterAll(async () => db?.close());

    it('leaves the same records, results and events as MemoryStore', async () => {
      expect(await transcript(db.store, (ownerId) => eventsVisible(db, ownerId))).toEqual(memory);
    });

    it('answers like MemoryStore for events, suppressions, audit, counters and credentials', async () => {
      expect(await recordsTranscript(db.store, (ownerId) => eventsVisible(db, ownerId))).toEqual(memoryRecords);
    });
  });

  it('has a script that exercises every transition', () => {
    const step = (name: string): unknown => (memory as [string, unknown][]).find(([logged]) => logged === name);
    const events = (step('events') as [string, [string, string][]])[1].map((e) => e[1]);
    expect(new Set(events)).toEqual(
      new Set(['queued', 'claimed', 'reclaimed', 'sent', 'retry', 'failed', 'unknown', 'cancelled', 'pending_approval', 'approved', 'rejected', 'expired']),
    );
    // The stats compared are not empty: b's send, its recipient, and a click per link (a's has no integer link).
    expect(step('stats')).toEqual([
      'stats',
      expect.objectContaining({ sent: 1, delivered: 1, clicked: expect.objectContaining({ links: [{ link: 0, url: 'https://example.com/', human: 1, machine: 1 }] }) }),
    ]);
  });
});
