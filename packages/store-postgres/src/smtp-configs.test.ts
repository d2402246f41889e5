import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { generateKeyRingKey, rotateKeys, SmtpPool, storedCredentials, type SmtpServerConfig } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { DATABASE_URL, pgliteStore, SERVER_SKIP_REASON, serverStore, type TestDatabase } from './test-databases.js';

// Stored SMTP configs on a real Postgres: what the tables hold (never a password), a ciphertext moved between rows
// by SQL, and a key rotation after which every config still logs in to its SMTP sink.

const k1 = generateKeyRingKey();
const k2 = generateKeyRingKey();
/** The sinks listen on 127.0.0.1, which stored configs may reach only when allowed. */
const sinkHosts = { allowHosts: ['127.0.0.1'] };

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const resource of open.splice(0).reverse()) await resource.close();
});

/** Every row of every table in the store's schema, as JSON and as util.inspect shows them. */
async function dumpSchema(db: TestDatabase): Promise<string> {
  const { rows: tables } = await db.client.query(`select table_name from information_schema.tables where table_schema = $1 order by 1`, [db.store.schema]);
  const out: string[] = [];
  for (const { table_name: table } of tables as { table_name: string }[]) {
    const { rows } = await db.client.query(`select * from "${db.store.schema}"."${table}"`);
    out.push(table, JSON.stringify(rows), inspect(rows, { depth: Infinity }));
  }
  expect(out).toContain('smtp_configs');
  return out.join('\n');
}

async function sendThrough(servers: readonly SmtpServerConfig[], sink: SmtpSink, subject: string) {
  const pool = new SmtpPool({ servers, maxRetryWaitMs: 0 });
  try {
    const before = sink.messages.length;
    await pool.send({ envelope: { from: 'agent@example.com', to: ['ada@example.com'] }, messageId: `<${randomUUID()}@example.com>`, to: 'ada@example.com', subject, text: 'hi' });
    return (await sink.waitForMessages(before + 1))[before]!;
  } finally {
    await pool.close();
  }
}

function suite(name: string, create: () => Promise<TestDatabase>): void {
  describe(name, () => {
    it('keeps no plaintext password in any table, refuses a moved ciphertext, and every config works after rotateKeys', async () => {
      const db = await create();
      open.push(db);
      const owners = [`owner-${randomUUID()}`, `owner-${randomUUID()}`];
      const accounts: { ownerId: string; id: string; name: string; pass: string; sink: SmtpSink }[] = [];
      const credentials = storedCredentials({ store: db.store, keyRing: { current: 'k1', keys: { k1 } }, refreshMs: 0, hosts: sinkHosts });
      for (const ownerId of owners) {
        for (const name of ['work', 'personal']) {
          const pass = `Pw-${randomUUID()}-plain`;
          const user = `${name}-${ownerId}@example.com`;
          const sink = await startSmtpSink({ auth: { user, pass } });
          open.push(sink);
          // Connection-tested against the sink, so the saved password is the one it accepts.
          const saved = await credentials.saveSmtpConfig(ownerId, { name, host: sink.host, port: sink.port, security: 'none', username: user, password: pass });
          accounts.push({ ownerId, id: saved.id, name, pass, sink });
        }
      }

      const dump = await dumpSchema(db);
      for (const { pass } of accounts) expect(dump).not.toContain(pass);
      for (const summary of (await Promise.all(owners.map((o) => credentials.listSmtpConfigs(o)))).flat()) {
        expect(JSON.stringify(summary)).not.toMatch(/Pw-/);
      }

      // A ciphertext moved by SQL to another owner's row, and to another config of the same owner, does not open.
      const [a, b, c] = [accounts[0]!, accounts[1]!, accounts[2]!];
      const table = `"${db.store.schema}".smtp_configs`;
      const moved = [
        [c, a],
        [b, a],
      ] as const;
      const { rows: saved } = await db.client.query(`select owner_id, id, password_ciphertext from ${table}`);
      const original = new Map((saved as { id: string; password_ciphertext: string }[]).map((r) => [r.id, r.password_ciphertext]));
      for (const [victim, source] of moved) {
        await db.client.query(`update ${table} set password_ciphertext = $1 where owner_id = $2 and id = $3`, [original.get(source.id), victim.ownerId, victim.id]);
        const error = (await credentials.resolve({ ownerId: victim.ownerId, configId: victim.id }).then(
          () => new Error('resolved, but should not have'),
          (e: unknown) => e as Error,
        ));
        expect(error).toMatchObject({ code: 'CONFIG_ERROR', setting: 'keyRing.keys.k1' });
        expect(error.message).toContain(`The password of SMTP config "${victim.name}" (id ${victim.id}, owner ${victim.ownerId}) could not be decrypted with key "k1"`);
        expect(error.message).not.toContain(source.pass);
        await db.client.query(`update ${table} set password_ciphertext = $1 where owner_id = $2 and id = $3`, [original.get(victim.id), victim.ownerId, victim.id]);
      }

      expect(await rotateKeys({ store: db.store, keyRing: { current: 'k2', keys: { k1, k2 } } }, { batchSize: 3 })).toEqual({ rotated: 4, skipped: 0 });
      const { rows: keys } = await db.client.query(`select distinct key_id from ${table}`);
      expect(keys).toEqual([{ key_id: 'k2' }]);
      for (const { pass } of accounts) expect(await dumpSchema(db)).not.toContain(pass);

      // k1 retired: each config resolves under k2 alone and logs in to its own sink.
      const afterRotation = storedCredentials({ store: db.store, keyRing: { current: 'k2', keys: { k2 } }, hosts: sinkHosts });
      for (const account of accounts) {
        const servers = await afterRotation.resolve({ ownerId: account.ownerId, configId: account.id });
        const received = await sendThrough(servers, account.sink, `rotated ${account.name}`);
        expect(received).toMatchObject({ user: `${account.name}-${account.ownerId}@example.com`, subject: `rotated ${account.name}` });
        expect(account.sink.messages).toHaveLength(1);
      }
      // PGlite's start and migration take most of it; a loaded 2-core machine may need several times the usual 10 s.
    }, 60_000);
  });
}

suite('stored SMTP configs on Postgres (PGlite)', pgliteStore);

describe.skipIf(!DATABASE_URL)(`stored SMTP configs on a Postgres server (${DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON})`, () => {
  suite('pg Pool', () => serverStore());
});
