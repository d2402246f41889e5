import { randomUUID } from 'node:crypto';
import type { OutboxRecord, Settlement } from '@agent-smtp/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newOutboxRecord } from '@agent-smtp/testing/store-contract';
import type { PostgresClient } from './postgres-client.js';
import { createPostgresStore, type PostgresStore } from './postgres-store.js';
import { DATABASE_URL, pgliteStore, SERVER_SKIP_REASON, serverPool, serverStore, type TestDatabase } from './test-databases.js';

const newRecord = newOutboxRecord;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sent: Settlement = { status: 'sent', server: 'p', accepted: ['ada@example.com'], rejected: [], response: '250 ok' };

async function outboxRow(client: PostgresClient, store: PostgresStore, id: string): Promise<unknown> {
  return (await client.query(`select * from "${store.schema}".outbox where id = $1`, [id])).rows[0];
}

async function eventTypes(client: PostgresClient, store: PostgresStore, id: string): Promise<string[]> {
  const { rows } = await client.query(`select type from "${store.schema}".events where message_id = $1 order by seq`, [id]);
  return (rows as { type: string }[]).map((r) => r.type);
}

/** Checks for PGlite and for a server. */
function onEveryDatabase(name: string, open: () => Promise<TestDatabase>): void {
  describe(`fencing and idempotency on ${name}`, () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => db?.close());

    it('a stale settle after a takeover changes 0 rows and writes no event', async () => {
      const { store, client } = db;
      const ownerId = `owner-${randomUUID()}`;
      const { record } = await store.outbox.enqueue(newRecord(ownerId), { claim: { workerId: 'slow', leaseMs: 60_000 } });
      // Two minutes later the lease has expired and another worker takes the message over.
      const taken = (await store.outbox.claim({ workerId: 'rescuer', limit: 100, leaseMs: 60_000, now: new Date(Date.now() + 120_000) })).find(
        (r) => r.id === record.id,
      );
      expect(taken).toMatchObject({ attempt: 2, leaseOwner: 'rescuer', possibleDuplicate: true });
      const before = await outboxRow(client, store, record.id);
      const error = { code: 'SMTP_TRANSIENT', message: 'late', retryable: true };
      expect(await store.outbox.settle(record.id, 1, sent)).toBeUndefined();
      expect(await store.outbox.settle(record.id, 1, { status: 'retry', delayMs: 0, error })).toBeUndefined();
      expect(await store.outbox.settle(record.id, 1, { status: 'failed', error })).toBeUndefined();
      expect(await store.outbox.settle(record.id, 1, { status: 'unknown', error })).toBeUndefined();
      expect(await outboxRow(client, store, record.id)).toEqual(before);
      expect(await eventTypes(client, store, record.id)).toEqual(['queued', 'claimed', 'reclaimed']);
      // The current attempt still settles.
      expect(await store.outbox.settle(record.id, 2, sent)).toMatchObject({ status: 'sent', attempt: 2 });
      expect(await eventTypes(client, store, record.id)).toEqual(['queued', 'claimed', 'reclaimed', 'sent']);
    });

    it('an unknown settlement is final: no claim ever returns the message', async () => {
      const { store } = db;
      const ownerId = `owner-${randomUUID()}`;
      const { record } = await store.outbox.enqueue(newRecord(ownerId), { claim: { workerId: 'w', leaseMs: 60_000 } });
      await store.outbox.settle(record.id, 1, { status: 'unknown', error: { code: 'SMTP_TRANSIENT', message: 'reset after data', retryable: true } });
      const later = await store.outbox.claim({ workerId: 'x', limit: 1_000, leaseMs: 1_000, now: new Date(Date.now() + 86_400_000) });
      expect(later.map((r) => r.id)).not.toContain(record.id);
      expect(await store.outbox.get(ownerId, record.id)).toMatchObject({ status: 'unknown', attempt: 1 });
    });

    it('100 concurrent enqueues with one key make one row and one queued event', async () => {
      const { store, client } = db;
      const ownerId = `owner-${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 100 }, () => store.outbox.enqueue(newRecord(ownerId, { idempotencyKey: 'k', fingerprint: 'f' }))));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.record.id)).size).toBe(1);
      const { rows } = await client.query(
        `select (select count(*)::int from "${store.schema}".outbox where owner_id = $1) as rows,
                (select count(*)::int from "${store.schema}".events where owner_id = $1) as events`,
        [ownerId],
      );
      expect(rows[0]).toEqual({ rows: 1, events: 1 });
    });
  });
}

onEveryDatabase('PGlite', pgliteStore);

const server = DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON;

describe.skipIf(!DATABASE_URL)(`on a server (${server})`, () => {
  onEveryDatabase('a server', () => serverStore());

  describe('several workers over two pools', () => {
    // Two pools stand for two processes: their connections share nothing but the database.
    let db: TestDatabase;
    let other: ReturnType<typeof serverPool>;
    let stores: PostgresStore[];
    beforeAll(async () => {
      db = await serverStore(6);
      other = serverPool(6);
      stores = [db.store, createPostgresStore({ client: other, schema: db.store.schema })];
    });
    afterAll(async () => {
      await other?.end();
      await db?.close();
    });

    it('4 claimers on 2 pools claim 2,000 queued rows, none of them twice', async () => {
      const ownerId = `owner-${randomUUID()}`;
      const ids: string[] = [];
      for (let i = 0; i < 2_000; i += 100) {
        const batch = Array.from({ length: 100 }, () => newRecord(ownerId));
        ids.push(...batch.map((r) => r.id));
        await Promise.all(batch.map((r, j) => stores[j % 2]!.outbox.enqueue(r)));
      }

      const claims: { worker: string; record: OutboxRecord }[] = [];
      const held = new Set<string>();
      let overlaps = 0;
      const worker = async (n: number): Promise<void> => {
        const workerId = `worker-${n}`;
        const store = stores[n % 2]!;
        for (;;) {
          const batch = await store.outbox.claim({ workerId, limit: 10, leaseMs: 60_000 });
          if (batch.length === 0) return;
          for (const record of batch) {
            if (held.has(record.id)) overlaps++;
            held.add(record.id);
            claims.push({ worker: workerId, record });
          }
          await sleep(Math.random() * 3); // hold the rows for a moment, as a send would
          for (const record of batch) {
            held.delete(record.id);
            expect(await store.outbox.settle(record.id, record.attempt, sent)).toMatchObject({ status: 'sent' });
          }
        }
      };
      await Promise.all([0, 1, 2, 3].map(worker));

      expect(overlaps).toBe(0);
      expect(claims).toHaveLength(2_000);
      expect(new Set(claims.map((c) => c.record.id))).toEqual(new Set(ids));
      for (const { worker: w, record } of claims) expect(record).toMatchObject({ attempt: 1, leaseOwner: w, status: 'sending', possibleDuplicate: false });
      const perWorker = new Map<string, number>();
      for (const c of claims) perWorker.set(c.worker, (perWorker.get(c.worker) ?? 0) + 1);
      expect(perWorker.size).toBe(4); // every claimer got work: they really ran side by side

      const { rows } = await db.client.query(
        `select type, count(*)::int as n, count(distinct message_id)::int as messages from "${db.store.schema}".events
         where owner_id = $1 group by type order by type`,
        [ownerId],
      );
      expect(rows).toEqual([
        { type: 'claimed', n: 2_000, messages: 2_000 },
        { type: 'queued', n: 2_000, messages: 2_000 },
        { type: 'sent', n: 2_000, messages: 2_000 },
      ]);
    });

    it('with leases shorter than the sends, takeovers never give one row two live leases', async () => {
      const ownerId = `owner-${randomUUID()}`;
      const ids = new Set<string>();
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const r = newRecord(ownerId, { maxAttempts: 1_000 });
          ids.add(r.id);
          await stores[i % 2]!.outbox.enqueue(r);
        }),
      );
      const claims: OutboxRecord[] = [];
      const settled: OutboxRecord[] = [];
      let stale = 0;
      // A message taken over once and overrun again ends `unknown` (bounded takeovers): done is sent or unknown.
      const unsent = async (): Promise<number> =>
        ((await db.client.query(`select count(*)::int as n from "${db.store.schema}".outbox where owner_id = $1 and status not in ('sent', 'unknown')`, [ownerId]))
          .rows[0] as { n: number }).n;
      const worker = async (n: number): Promise<void> => {
        const store = stores[n % 2]!;
        for (;;) {
          const batch = (await store.outbox.claim({ workerId: `w${n}`, limit: 5, leaseMs: 40 })).filter((r) => ids.has(r.id));
          if (batch.length === 0) {
            if ((await unsent()) === 0) return;
            await sleep(10);
            continue;
          }
          claims.push(...batch);
          await Promise.all(
            batch.map(async (record) => {
              await sleep(Math.random() * 80); // half the time longer than the lease
              const result = await store.outbox.settle(record.id, record.attempt, sent);
              if (result) settled.push(result);
              else stale++;
            }),
          );
        }
      };
      await Promise.all([0, 1, 2, 3].map(worker));

      expect(stale).toBeGreaterThan(0); // the test did provoke takeovers
      const { rows: finals } = await db.client.query(`select id, status, attempt from "${db.store.schema}".outbox where owner_id = $1`, [ownerId]);
      const unknown = (finals as { id: string; status: string; attempt: number }[]).filter((r) => r.status === 'unknown');
      // At most one settle per message won; a message without one was overrun twice and is unknown, never sent a third time.
      expect(new Set(settled.map((r) => r.id)).size).toBe(settled.length);
      expect(settled.length + unknown.length).toBe(200);
      for (const r of finals as { attempt: number }[]) expect(r.attempt).toBeLessThanOrEqual(2);
      const byId = new Map<string, OutboxRecord[]>();
      for (const c of claims) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
      for (const [, list] of byId) {
        list.sort((a, b) => a.attempt - b.attempt);
        // Attempt numbers are handed out once each, 1, 2, 3, ...
        expect(list.map((c) => c.attempt)).toEqual(list.map((_, i) => i + 1));
        list.forEach((c, i) => expect(c.possibleDuplicate).toBe(i > 0));
      }
      // Each takeover happened only after the previous lease had expired.
      const { rows } = await db.client.query(
        `select message_id, type, attempt, at from "${db.store.schema}".events
         where owner_id = $1 and type in ('claimed', 'reclaimed') order by message_id, attempt`,
        [ownerId],
      );
      const events = rows as { message_id: string; type: string; attempt: number; at: Date }[];
      expect(events).toHaveLength(claims.length);
      for (const e of events) {
        if (e.attempt === 1) continue;
        const previous = byId.get(e.message_id)!.find((c) => c.attempt === e.attempt - 1)!;
        expect(e.type).toBe('reclaimed');
        expect(e.at.getTime()).toBeGreaterThanOrEqual(previous.leaseExpiresAt!.getTime());
      }
    });

    it('a stale settle racing a takeover: exactly one of them wins, every time', async () => {
      const ownerId = `owner-${randomUUID()}`;
      const records = await Promise.all(
        Array.from({ length: 100 }, async () => (await db.store.outbox.enqueue(newRecord(ownerId), { claim: { workerId: 'old', leaseMs: 60_000 } })).record),
      );
      const future = new Date(Date.now() + 120_000);
      const outcome = await Promise.all(
        records.map(async (r) => {
          const [settledRecord, taken] = await Promise.all([
            stores[0]!.outbox.settle(r.id, 1, sent),
            stores[1]!.outbox.claim({ workerId: 'new', limit: 1, leaseMs: 60_000, now: future }),
          ]);
          return { settled: settledRecord !== undefined, tookThis: taken.some((t) => t.id === r.id) };
        }),
      );
      // A claim may take another message of the batch; what matters is that no message was both settled and taken.
      for (const o of outcome) expect(o.settled && o.tookThis).toBe(false);
      const { rows } = await db.client.query(
        `select o.status, o.attempt, (select count(*)::int from "${db.store.schema}".events e where e.message_id = o.id and e.type = 'sent') as sent_events
         from "${db.store.schema}".outbox o where o.owner_id = $1`,
        [ownerId],
      );
      for (const row of rows as { status: string; attempt: number; sent_events: number }[]) {
        if (row.status === 'sent') expect(row).toEqual({ status: 'sent', attempt: 1, sent_events: 1 });
        else expect(row).toEqual({ status: 'sending', attempt: 2, sent_events: 0 });
      }
    });

    it('100 concurrent enqueues with one key over two pools make one row, and every caller gets it', async () => {
      const ownerId = `owner-${randomUUID()}`;
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => stores[i % 2]!.outbox.enqueue(newRecord(ownerId, { idempotencyKey: 'one-key', fingerprint: 'f' }))),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const id = results.find((r) => r.created)!.record.id;
      for (const r of results) expect(r.record).toEqual(results.find((x) => x.created)!.record);
      const { rows } = await db.client.query(
        `select (select count(*)::int from "${db.store.schema}".outbox where owner_id = $1) as rows,
                (select count(*)::int from "${db.store.schema}".events where owner_id = $1) as events`,
        [ownerId],
      );
      expect(rows[0]).toEqual({ rows: 1, events: 1 });
      expect((await db.store.outbox.findByIdempotencyKey(ownerId, 'one-key'))!.id).toBe(id);
    });

    it('a daily limit holds across pools: 100 racing increments, limit 37', async () => {
      const ownerId = `owner-${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => stores[i % 2]!.counters.increment(ownerId, 'sent', '2026-11-21', 1, 37)));
      expect(results.filter((r) => r.allowed)).toHaveLength(37);
      expect(results.filter((r) => r.allowed).map((r) => r.value).sort((a, b) => a - b)).toEqual(Array.from({ length: 37 }, (_, i) => i + 1));
      expect(await stores[1]!.counters.get(ownerId, 'sent', '2026-11-21')).toBe(37);
    });
  });
});
