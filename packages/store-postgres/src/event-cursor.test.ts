import { randomUUID } from 'node:crypto';
import type { EventListOptions, MailEvent } from '@agent-smtp/core';
import { newOutboxRecord } from '@agent-smtp/testing/store-contract';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresClient } from './postgres-client.js';
import { createPostgresStore } from './postgres-store.js';
import { DATABASE_URL, pgliteStore, SERVER_SKIP_REASON, serverStore, type TestDatabase } from './test-databases.js';

// What the contract cannot stage: transactions that commit out of seq order (they need a second connection, so a
// server), and a batch that fails part way.

/**
 * Lists until `count` events are there or 15 s passed: besides the transaction a test holds open, any other write
 * transaction on the shared server holds owner-wide pages back until it ends.
 */
async function listEventually(store: TestDatabase['store'], ownerId: string, options: EventListOptions, count: number): Promise<MailEvent[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const events = await store.events.list(ownerId, options);
    if (events.length >= count || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(!DATABASE_URL)(`event cursor while transactions commit out of order (${DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON})`, () => {
  let db: TestDatabase;
  let slow: pg.Client;
  beforeAll(async () => {
    db = await serverStore(4);
    slow = new pg.Client({ connectionString: DATABASE_URL });
    await slow.connect();
  });
  afterAll(async () => {
    await slow?.end();
    await db?.close();
  });

  /**
   * Appends n = 0, then n = 1 in `slow`'s transaction, left open (taking the lower seq, as a slow settle would), then
   * n = 2 committed after it (a higher seq, visible right away to a plain select). Returns n = 0's event.
   */
  async function appendAroundOpenTransaction(ownerId: string) {
    const { store } = db;
    const first = await store.events.append({ ownerId, messageId: 'm0', type: 'queued', attempt: 0, detail: { n: 0 } });
    await slow.query('begin');
    await slow.query(`select * from "${store.schema}".events_append($1, 'm1', 'sent', 1, '{"n":1}'::jsonb)`, [ownerId]);
    await store.events.append({ ownerId, messageId: 'm2', type: 'sent', attempt: 1, detail: { n: 2 } });
    return first;
  }

  it('never moves a cursor past an event whose transaction is still open, so the event is read once it commits', async () => {
    const { store } = db;
    const ownerId = `owner-${randomUUID()}`;
    const first = await appendAroundOpenTransaction(ownerId);
    const committed = await db.client.query(`select count(*)::int as n from "${store.schema}".events where owner_id = $1`, [ownerId]);
    expect(committed.rows).toEqual([{ n: 2 }]);

    // The tail holds n = 2 back while n = 1's transaction is open: handing it out would move the cursor past n = 1.
    expect(await store.events.list(ownerId, { after: first.id })).toEqual([]);
    expect((await listEventually(store, ownerId, {}, 1)).map((e) => e.detail.n)).toEqual([0]);
    // One message's history is not held back.
    expect((await store.events.list(ownerId, { messageId: 'm2' })).map((e) => e.detail.n)).toEqual([2]);

    await slow.query('commit');
    const rest = await listEventually(store, ownerId, { after: first.id }, 2);
    expect(rest.map((e) => e.detail.n)).toEqual([1, 2]);
    expect(await store.events.list(ownerId, { after: rest.at(-1)!.id })).toEqual([]);
  });

  it('skips nothing when the open transaction rolls back', async () => {
    const { store } = db;
    const ownerId = `owner-${randomUUID()}`;
    const first = await appendAroundOpenTransaction(ownerId);
    expect(await store.events.list(ownerId, { after: first.id })).toEqual([]);
    await slow.query('rollback');
    expect((await listEventually(store, ownerId, { after: first.id }, 1)).map((e) => e.detail.n)).toEqual([2]);
  });
});

describe('enqueueMany on Postgres (PGlite)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await pgliteStore();
  });
  afterAll(async () => db?.close());

  it('stores none of a batch when one record fails', async () => {
    const { store, client } = db;
    const ownerId = `owner-${randomUUID()}`;
    const good = newOutboxRecord(ownerId, { idempotencyKey: 'k-good' });
    // Two records with one id: the second breaks the primary key after the first went in.
    const clash = newOutboxRecord(ownerId, { idempotencyKey: 'k-clash' });
    await expect(store.outbox.enqueueMany([good, clash, { ...clash, idempotencyKey: 'k-other' }])).rejects.toThrow(/outbox_pkey|duplicate key/);
    const rows = await client.query(`select count(*)::int as n from "${store.schema}".outbox where owner_id = $1`, [ownerId]);
    expect(rows.rows).toEqual([{ n: 0 }]);
    expect(await store.events.list(ownerId)).toEqual([]);
    // The same batch without the clash goes in whole.
    const results = await store.outbox.enqueueMany([good, clash]);
    expect(results.map((r) => [r.created, r.record.id])).toEqual([
      [true, good.id],
      [true, clash.id],
    ]);
  });

  it('answers a batch in one round trip', async () => {
    const ownerId = `owner-${randomUUID()}`;
    const statements: string[] = [];
    // The same database through a client that counts what reaches it.
    const counting: PostgresClient = {
      query: (text, params) => {
        statements.push(text);
        return db.client.query(text, params);
      },
    };
    const store = createPostgresStore({ client: counting, schema: db.store.schema });
    const results = await store.outbox.enqueueMany(Array.from({ length: 500 }, () => newOutboxRecord(ownerId)));
    expect(results).toHaveLength(500);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toContain('.enqueue_many(');
  });
});
