import type { MailStore } from '@agent-smtp/core';
import { runStoreContract } from '@agent-smtp/testing/store-contract';
import { describe } from 'vitest';
import { DATABASE_URL, pgliteStore, SERVER_SKIP_REASON, serverStore, type TestDatabase } from './test-databases.js';

// The shared MailStore contract, on PGlite always and on a real server when DATABASE_URL is set; each run in a
// fresh schema that is dropped afterwards.
const open = new Map<MailStore, TestDatabase>();
const contract = (name: string, create: () => Promise<TestDatabase>): void =>
  runStoreContract({
    name,
    create: async () => {
      const db = await create();
      open.set(db.store, db);
      return db.store;
    },
    cleanup: async (store) => {
      await open.get(store)?.close();
      open.delete(store);
    },
  });

contract('Postgres (PGlite)', pgliteStore);

describe.skipIf(!DATABASE_URL)(`Postgres server (${DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON})`, () => {
  contract('Postgres (pg Pool)', () => serverStore());
});
