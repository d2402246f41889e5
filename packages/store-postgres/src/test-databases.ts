import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { createPostgresStore, type PostgresStore } from './postgres-store.js';
import type { PostgresClient } from './postgres-client.js';

// Test helpers (not part of the package's entry point): fresh schemas on PGlite and on the server in DATABASE_URL.

export const DATABASE_URL = process.env.DATABASE_URL;
export const SERVER_SKIP_REASON = 'needs a PostgreSQL server: set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test';

/** A schema name no other test run uses. */
export const uniqueSchema = (prefix = 'agent_smtp_test'): string => `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 16)}`;

export async function dropSchema(client: PostgresClient, schema: string): Promise<void> {
  await client.query(`drop schema if exists "${schema}" cascade`);
}

export interface TestDatabase {
  client: PostgresClient;
  store: PostgresStore;
  close(): Promise<void>;
}

/** A migrated store in a fresh schema of a new in-process PGlite database. */
export async function pgliteStore(): Promise<TestDatabase> {
  const db = await PGlite.create();
  const store = createPostgresStore({ client: db, schema: uniqueSchema() });
  await store.migrate();
  return { client: db, store, close: () => db.close() };
}

export function serverPool(max = 10): pg.Pool {
  return new pg.Pool({ connectionString: DATABASE_URL, max });
}

/** A migrated store in a fresh schema on the server; `close()` drops the schema and ends the pool. */
export async function serverStore(max = 10): Promise<TestDatabase> {
  const pool = serverPool(max);
  const store = createPostgresStore({ client: pool, schema: uniqueSchema() });
  await store.migrate();
  return {
    client: pool,
    store,
    close: async () => {
      await dropSchema(pool, store.schema);
      await pool.end();
    },
  };
}

/**
 * Waits (up to 15 s) until every event `ownerId` has is below the oldest running transaction, where owner-wide event
 * lists show it (see migration 003): another write transaction anywhere on the server holds them back meanwhile.
 */
export async function eventsVisible(db: TestDatabase, ownerId: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { rows } = await db.client.query(
      `select coalesce(max(tx) < pg_snapshot_xmin(pg_current_snapshot()), true) as visible from "${db.store.schema}".events where owner_id = $1`,
      [ownerId],
    );
    if ((rows[0] as { visible: boolean }).visible) return;
    if (Date.now() > deadline) throw new Error(`The events of ${ownerId} stayed behind an open transaction for 15 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
