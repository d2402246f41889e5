import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createMailService, generateKeyRingKey, type MailService, storedCredentials } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { createPostgresStore, type PostgresStore } from '@agent-smtp/store-postgres';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';

// Two owners on one service and one Postgres, each with a stored SMTP account of their own (a sink each).
const url = process.env.DATABASE_URL;
const workerScript = fileURLToPath(new URL('./support/service-worker-process.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const keyRing = { current: 'k1', keys: { k1: generateKeyRingKey() } };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function twoOwners(store: PostgresStore) {
  const sinks = { alice: await startSmtpSink({ auth: { user: 'alice', pass: 'alice-Pass-1' } }), bob: await startSmtpSink({ auth: { user: 'bob', pass: 'bob-Pass-2' } }) };
  cleanups.push(async () => void (await Promise.all(Object.values(sinks).map((s) => s.close()))));
  const service = createMailService({ store, credentials: storedCredentials({ store, keyRing, hosts: { allowHosts: ['127.0.0.1'] } }), outbox: { retry: { baseMs: 200, maxMs: 400 } } });
  cleanups.push(() => service.close());
  for (const owner of ['alice', 'bob'] as const) {
    const sink: SmtpSink = sinks[owner];
    await service.saveSmtpConfig(owner, {
      name: 'main',
      host: sink.host,
      port: sink.port,
      security: 'none',
      username: owner,
      password: `${owner}-Pass-${owner === 'alice' ? 1 : 2}`,
      fromAddress: `${owner}@${owner}.example`,
    });
  }
  return { sinks, service };
}

async function isolationHolds(service: MailService, store: PostgresStore, sinks: Record<'alice' | 'bob', SmtpSink>) {
  const alice = service.forAgent({ ownerId: 'alice', agentId: 'a1' });
  const bob = service.forAgent({ ownerId: 'bob', agentId: 'b1' });
  const a = await alice.send({ to: 'ada@example.com', subject: 'Alice direct', text: 'x' });
  const b = await bob.send({ to: 'ada@example.com', subject: 'Bob direct', text: 'x' });
  expect(sinks.alice.messages.map((m) => [m.subject, m.user, m.envelope.from])).toEqual([['Alice direct', 'alice', 'alice@alice.example']]);
  expect(sinks.bob.messages.map((m) => [m.subject, m.user, m.envelope.from])).toEqual([['Bob direct', 'bob', 'bob@bob.example']]);
  expect(await alice.getStatus(b.id)).toBeUndefined();
  expect(await bob.getStatus(a.id)).toBeUndefined();
  // Alice's own events and Bob's own audit are there (so the checks below cannot pass on empty lists), and only theirs.
  const aliceEvents = await store.events.list('alice', { messageId: a.id });
  expect(aliceEvents.map((e) => e.type)).toContain('sent');
  expect((await store.events.list('alice', { messageId: b.id }))).toEqual([]);
  expect((await store.events.list('alice')).map((e) => e.messageId).every((id) => id === a.id)).toBe(true);
  const bobAudit = await store.audit.list('bob');
  expect(bobAudit.some((e) => e.messageId === b.id)).toBe(true);
  expect(bobAudit.every((e) => e.messageId === undefined || e.messageId === b.id)).toBe(true);
  expect((await service.listSmtpConfigs('alice')).map((c) => c.username)).toEqual(['alice']);
  expect(JSON.stringify(await service.listSmtpConfigs('bob'))).not.toContain('alice');
}

describe('two owners, one service, one Postgres', () => {
  it('on PGlite: each sends through its own server and sees only its own records, events, audit and configs', async () => {
    const db = await PGlite.create();
    cleanups.push(() => db.close());
    const store = createPostgresStore({ client: db, schema: 'tenants' });
    await store.migrate();
    const { sinks, service } = await twoOwners(store);
    await isolationHolds(service, store, sinks);
  });

  describe.skipIf(!url)(`with a worker in another process (${url ? 'DATABASE_URL' : 'skipped: DATABASE_URL is not set'})`, () => {
    it('the worker drains both owners’ queues, each message through its owner’s server', async () => {
      const pool = new pg.Pool({ connectionString: url, max: 6 });
      const schema = `mt_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
      cleanups.push(async () => {
        await pool.query(`drop schema if exists ${schema} cascade`);
        await pool.end();
      });
      const store = createPostgresStore({ client: pool, schema });
      await store.migrate();
      const { sinks, service } = await twoOwners(store);
      await isolationHolds(service, store, sinks);

      const queued = await Promise.all(
        Array.from({ length: 20 }, (_, i) => service.forAgent({ ownerId: i % 2 ? 'bob' : 'alice' }).enqueue({ to: 'ada@example.com', subject: `q${i}`, text: 'x' })),
      );
      const child: ChildProcess = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', workerScript], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH, DATABASE_URL: url, SCHEMA: schema, KEY_RING: JSON.stringify(keyRing) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanups.push(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await once(child, 'exit');
        }
      });
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
      expect(line).toBe('ready');
      await sinks.alice.waitForMessages(11, 15_000);
      await sinks.bob.waitForMessages(11, 15_000);
      child.kill('SIGTERM');
      await once(child, 'exit');
      // After the worker stopped (its sends settled), the sinks' copies are final.
      expect(sinks.alice.messages.map((m) => m.subject).filter((s) => s?.startsWith('q')).sort()).toEqual(queued.flatMap((_, i) => (i % 2 ? [] : [`q${i}`])).sort());
      expect(sinks.bob.messages.map((m) => m.subject).filter((s) => s?.startsWith('q')).sort()).toEqual(queued.flatMap((_, i) => (i % 2 ? [`q${i}`] : [])).sort());
      for (const [i, q] of queued.entries()) {
        expect((await service.forAgent({ ownerId: i % 2 ? 'bob' : 'alice' }).getStatus(q.id))?.status).toBe('sent');
      }
    });
  });
});
