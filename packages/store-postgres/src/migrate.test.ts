import { AgentSmtpError } from '@agent-smtp/core';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMigrateStatement } from './migrate.js';
import { getMigrationSql } from './migration-sql.js';
import { newOutboxRecord } from '@agent-smtp/testing/store-contract';
import { migrations } from './migrations/index.js';
import type { PostgresClient } from './postgres-client.js';
import { createPostgresStore } from './postgres-store.js';
import { quoteSchemaName } from './schema-name.js';
import { DATABASE_URL, dropSchema, SERVER_SKIP_REASON, uniqueSchema } from './test-databases.js';

const TABLES = ['audit', 'counters', 'credentials', 'events', 'migrations', 'outbox', 'policies', 'smtp_configs', 'suppressions'];
const FUNCTIONS = [
  'audit_append',
  'audit_list',
  'cancel',
  'claim',
  'counter_get',
  'counter_increment',
  'enqueue',
  'enqueue_many',
  'events_append',
  'events_list',
  'extend_lease',
  'mail_stats',
  'outbox_decide',
  'outbox_find_by_idempotency_key',
  'outbox_find_by_message_id',
  'outbox_get',
  'outbox_list_pending',
  'policy_delete',
  'policy_get',
  'policy_list',
  'policy_save',
  'reclaim',
  'settle',
  'smtp_config_delete',
  'smtp_config_get',
  'smtp_config_list',
  'smtp_config_list_for_rotation',
  'smtp_config_replace_dkim_key',
  'smtp_config_replace_password',
  'smtp_config_save',
  'smtp_config_set_default',
  'suppressions_add',
  'suppressions_find',
  'suppressions_list',
  'suppressions_remove',
];

async function describeSchema(client: PostgresClient, schema: string) {
  const tables = await client.query(`select table_name from information_schema.tables where table_schema = $1 order by 1`, [schema]);
  const functions = await client.query(
    `select p.proname, p.prosecdef, p.proconfig from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname = $1 order by 1`,
    [schema],
  );
  const applied = await client.query(`select version, name from "${schema}".migrations order by version`);
  return {
    tables: (tables.rows as { table_name: string }[]).map((r) => r.table_name),
    functions: functions.rows as { proname: string; prosecdef: boolean; proconfig: string[] }[],
    applied: applied.rows,
  };
}

describe('migrate() on PGlite', () => {
  // One database for the file (starting PGlite takes about a second); each test works in schemas of its own.
  let db: PGlite;
  beforeAll(async () => {
    db = await PGlite.create();
  });
  afterAll(async () => db.close());

  it('creates the schema, its tables and its functions, and a second run changes nothing', async () => {
    const mail = uniqueSchema();
    const store = createPostgresStore({ client: db, schema: mail });
    const first = await store.migrate();
    expect(first.map(({ version, name }) => ({ version, name }))).toEqual(migrations.map(({ version, name }) => ({ version, name })));
    expect(first[0]!.appliedAt).toBeInstanceOf(Date);
    const shape = await describeSchema(db, mail);
    expect(shape.tables).toEqual(TABLES);
    expect(shape.functions.map((f) => f.proname)).toEqual(FUNCTIONS);
    // security invoker (so RLS applies to the caller) with a pinned, empty search_path.
    for (const fn of shape.functions) {
      expect(fn.prosecdef).toBe(false);
      expect(fn.proconfig).toEqual(['search_path=""']);
    }

    const second = await store.migrate();
    expect(second).toEqual(first);
    expect(await describeSchema(db, mail)).toEqual(shape);
  });

  it('survives several migrate() calls at once', async () => {
    const schema = uniqueSchema();
    const stores = [1, 2, 3].map(() => createPostgresStore({ client: db, schema }));
    const results = await Promise.all(stores.map((s) => s.migrate()));
    for (const r of results) expect(r.map((m) => m.version)).toEqual(migrations.map((m) => m.version));
  });

  it('moves a database migrated by an earlier release forward, keeping its rows and their transitions', async () => {
    const schema = uniqueSchema();
    const q = quoteSchemaName(schema);
    // The schema as the first release left it, with a queued and a claimed message written by its functions.
    await db.query(buildMigrateStatement(schema, q, migrations.slice(0, 1)));
    const email = JSON.stringify({ from: { address: 'a@example.com', domain: 'example.com' }, to: [], cc: [], bcc: [], replyTo: [], subject: 'Old', attachments: [], headers: {}, references: [] });
    await db.query(`select * from ${q}.enqueue('msg_old_queued', 'owner', null, 'k1', 'f1', '<a@example.com>', $1::jsonb, now() - interval '1 minute', 3)`, [email]);
    await db.query(`select * from ${q}.enqueue('msg_old_sending', 'owner', null, null, null, '<b@example.com>', $1::jsonb, now(), 3, '{}', '{}', 'w-old', 60000)`, [email]);

    const store = createPostgresStore({ client: db, schema });
    expect((await store.migrate()).map((m) => m.version)).toEqual(migrations.map((m) => m.version));
    expect(await store.outbox.findByIdempotencyKey('owner', 'k1')).toMatchObject({ id: 'msg_old_queued', status: 'queued', fingerprint: 'f1' });
    const [claimed] = await store.outbox.claim({ workerId: 'w-new', limit: 10, leaseMs: 60_000, ownerId: 'owner' });
    expect(claimed).toMatchObject({ id: 'msg_old_queued', attempt: 1 });
    const error = { code: 'SMTP_TRANSIENT', message: '451', retryable: true };
    const retried = await store.outbox.settle('msg_old_queued', 1, { status: 'retry', delayMs: 60_000, error });
    expect(retried!.nextAttemptAt.getTime() - retried!.updatedAt.getTime()).toBe(60_000);
    expect(await store.outbox.settle('msg_old_sending', 1, { status: 'sent', server: 's', accepted: [], rejected: [], response: '250' })).toMatchObject({ status: 'sent' });
    expect((await store.events.list('owner', { messageId: 'msg_old_sending' })).map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
  });

  it('moves a database migrated by 001 and 002 forward to the read functions and the event cursor, keeping every row', async () => {
    const schema = uniqueSchema();
    const q = quoteSchemaName(schema);
    // The schema as 001 + 002 left it, with rows written the way that release wrote them: transitions through its
    // functions, the other parts by plain statements.
    await db.query(buildMigrateStatement(schema, q, migrations.slice(0, 2)));
    const email = JSON.stringify({ from: { address: 'a@example.com', domain: 'example.com' }, to: [], cc: [], bcc: [], replyTo: [], subject: 'Old', attachments: [], headers: {}, references: [] });
    await db.query(`select * from ${q}.enqueue('msg_a', 'owner', 'agent', 'k1', 'f1', '<a@example.com>', $1::jsonb, null, 3)`, [email]);
    await db.query(`select * from ${q}.enqueue('msg_b', 'owner', null, null, null, '<b@example.com>', $1::jsonb, null, 3, '{}', '{}', 'w-old', 60000)`, [email]);
    await db.query(`select * from ${q}.settle('msg_b', 1, 'sent', 's', '{}', '{}', '250', null, null)`);
    await db.query(`insert into ${q}.events (owner_id, message_id, type, attempt, detail) values ('owner', 'msg_b', 'opened', 1, '{}')`);
    await db.query(`insert into ${q}.audit (owner_id, agent_id, action, outcome, message_id, detail) values ('owner', 'agent', 'send', 'ok', 'msg_b', '{}')`);
    await db.query(`insert into ${q}.suppressions (owner_id, address, reason) values ('owner', 'gone@example.com', 'bounce')`);
    await db.query(`select * from ${q}.counter_increment('owner', 'sent', '2026-01-01', 2, 10)`);

    const store = createPostgresStore({ client: db, schema });
    expect((await store.migrate()).map((m) => m.version)).toEqual(migrations.map((m) => m.version));

    expect(await store.outbox.get('owner', 'msg_a')).toMatchObject({ status: 'queued', agentId: 'agent', idempotencyKey: 'k1', messageId: '<a@example.com>' });
    expect(await store.outbox.findByIdempotencyKey('owner', 'k1')).toMatchObject({ id: 'msg_a' });
    expect((await store.outbox.findByMessageId('owner', '<b@example.com>')).map((r) => [r.id, r.status])).toEqual([['msg_b', 'sent']]);
    expect(await store.audit.list('owner')).toMatchObject([{ action: 'send', messageId: 'msg_b' }]);
    expect(await store.suppressions.find('owner', ['gone@example.com'])).toMatchObject([{ reason: 'bounce' }]);
    expect(await store.counters.get('owner', 'sent', '2026-01-01')).toBe(2);

    // The old events keep their order, ahead of every new one, and a cursor works across the two.
    const replay = await store.outbox.enqueueMany([newOutboxRecord('owner', { idempotencyKey: 'k1' }), newOutboxRecord('owner', { id: 'msg_c' })]);
    expect(replay.map((r) => [r.created, r.record.id])).toEqual([
      [false, 'msg_a'],
      [true, 'msg_c'],
    ]);
    const old = ['msg_a:queued', 'msg_b:queued', 'msg_b:claimed', 'msg_b:sent', 'msg_b:opened'];
    const all = await store.events.list('owner');
    expect(all.map((e) => `${e.messageId}:${e.type}`)).toEqual([...old, 'msg_c:queued']);
    const paged: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.events.list('owner', { after, limit: 2 });
      if (page.length === 0) break;
      paged.push(...page.map((e) => e.id));
      after = page.at(-1)!.id;
    }
    expect(paged).toEqual(all.map((e) => e.id));
    expect((await db.query(`select count(*)::int as n from ${q}.events where tx = '0'`)).rows).toEqual([{ n: old.length }]);
  });

  it('applies only the migrations not yet recorded', async () => {
    const schema = uniqueSchema();
    const q = `"${schema}"`;
    const store = createPostgresStore({ client: db, schema });
    await store.migrate();
    await db.query(`insert into ${q}.outbox (id, owner_id, status, message_id, email, send_at, next_attempt_at, max_attempts)
                    values ('kept', 'o', 'queued', '<m>', '{}', now(), now(), 3)`);
    const next = { version: 999, name: '999_test', sql: 'create table {{schema}}.extra (x int); insert into {{schema}}.extra values (1);' };
    await db.query(buildMigrateStatement(schema, q, [...migrations, next]));
    await db.query(buildMigrateStatement(schema, q, [...migrations, next]));
    expect((await db.query(`select x from ${q}.extra`)).rows).toEqual([{ x: 1 }]);
    expect((await db.query(`select version from ${q}.migrations order by version`)).rows).toEqual([
      ...migrations.map((m) => ({ version: m.version })),
      { version: 999 },
    ]);
    expect((await db.query(`select id from ${q}.outbox`)).rows).toEqual([{ id: 'kept' }]);
  });

  it('rolls a failing migration back whole, recording nothing', async () => {
    const broken = { version: 1, name: '001_broken', sql: 'create table {{schema}}.half (x int); select no_such_function();' };
    const schema = uniqueSchema();
    await expect(db.query(buildMigrateStatement(schema, `"${schema}"`, [broken]))).rejects.toThrow(/no_such_function/);
    expect((await db.query(`select count(*)::int as n from pg_catalog.pg_namespace where nspname = $1`, [schema])).rows).toEqual([{ n: 0 }]);
  });

  it('quotes the schema name, so a reserved word works', async () => {
    const store = createPostgresStore({ client: db, schema: 'user' });
    await store.migrate();
    const { created } = await store.outbox.enqueue({
      id: 'm1',
      ownerId: 'o',
      agentId: undefined,
      idempotencyKey: undefined,
      fingerprint: undefined,
      messageId: '<m1@x>',
      email: { from: { name: undefined, address: 'a@x.org', domain: 'x.org' }, to: [], cc: [], bcc: [], replyTo: [], subject: 's', attachments: [], headers: {}, references: [] },
      sendAt: new Date(),
      maxAttempts: 1,
      tags: [],
      metadata: {},
    });
    expect(created).toBe(true);
  });

  it('keeps stores in different schemas of one database apart', async () => {
    const a = createPostgresStore({ client: db, schema: 'tenant_a' });
    const b = createPostgresStore({ client: db, schema: 'tenant_b' });
    await Promise.all([a.migrate(), b.migrate()]);
    await a.counters.increment('o', 'k', 'w', 5, 10);
    expect(await a.counters.get('o', 'k', 'w')).toBe(5);
    expect(await b.counters.get('o', 'k', 'w')).toBe(0);
  });

  it('gives the migrations as plain SQL for other tools', async () => {
    const sql = getMigrationSql('app_mail');
    expect(sql.map((m) => m.version)).toEqual(migrations.map((m) => m.version));
    expect(sql[0]!.sql).toContain('create table "app_mail".outbox');
    expect(sql.some((m) => m.sql.includes('{{schema}}'))).toBe(false);
    await db.exec('create schema app_mail');
    for (const m of sql) await db.exec(m.sql);
    const store = createPostgresStore({ client: db, schema: 'app_mail' });
    expect(await store.counters.increment('o', 'k', 'w', 1, 1)).toEqual({ allowed: true, value: 1 });
  });
});

describe('schema names', () => {
  const calls: string[] = [];
  const client: PostgresClient = {
    async query(text) {
      calls.push(text);
      return { rows: [] };
    },
  };

  it.each(['agent_smtp', '_private', 'mail2', 'a'.repeat(63)])('accepts %s', (schema) => {
    expect(createPostgresStore({ client, schema }).schema).toBe(schema);
    expect(quoteSchemaName(schema)).toBe(`"${schema}"`);
  });

  it.each(['', 'Agent', '2mail', 'a-b', 'a b', 'a"b', 'x"; drop schema public cascade; --', 'a'.repeat(64), 'café', 'public.x'])(
    'refuses %j before sending anything',
    (schema) => {
      let caught: unknown;
      try {
        createPostgresStore({ client, schema });
      } catch (error) {
        caught = error;
      }
      expect(AgentSmtpError.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({ code: 'CONFIG_ERROR', setting: 'schema' });
      expect((caught as Error).message).toContain(JSON.stringify(schema));
      expect(calls).toEqual([]);
    },
  );

  it('defaults to agent_smtp', () => {
    expect(createPostgresStore({ client }).schema).toBe('agent_smtp');
  });

  it('refuses a client without query()', () => {
    expect(() => createPostgresStore({ client: {} as PostgresClient })).toThrow(/query\(text, params\)/);
  });

  it('accepts a pg Pool, a pg Client and PGlite as the client type', () => {
    // Compile-time check (tsc): each fits PostgresClient without a cast.
    const fits = (c: PostgresClient): PostgresClient => c;
    const pool = new pg.Pool();
    const single = new pg.Client();
    expect([fits(pool), fits(single)]).toHaveLength(2);
    void pool.end();
    type Lite = PGlite;
    const lite: (db: Lite) => PostgresClient = fits;
    expect(lite).toBe(fits);
  });
});

describe.skipIf(!DATABASE_URL)(`migrate() on a server (${DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON})`, () => {
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  const schemas: string[] = [];
  afterAll(async () => {
    for (const s of schemas) await dropSchema(admin, s);
    await admin.end();
  });

  it('lets four processes migrate one fresh schema at the same moment, five times over', async () => {
    for (let round = 0; round < 5; round++) {
      const schema = uniqueSchema();
      schemas.push(schema);
      // Separate connections, as separate processes would have.
      const clients = [1, 2, 3, 4].map(() => new pg.Client({ connectionString: DATABASE_URL }));
      await Promise.all(clients.map((c) => c.connect()));
      try {
        const results = await Promise.all(clients.map((client) => createPostgresStore({ client, schema }).migrate()));
        for (const r of results) expect(r.map((m) => m.version)).toEqual(migrations.map((m) => m.version));
        const shape = await describeSchema(admin, schema);
        expect(shape.tables).toEqual(TABLES);
        expect(shape.functions.map((f) => f.proname)).toEqual(FUNCTIONS);
        expect(shape.applied).toHaveLength(migrations.length);
      } finally {
        await Promise.all(clients.map((c) => c.end()));
      }
    }
  });

  it('migrates twice over a pool without change', async () => {
    const schema = uniqueSchema();
    schemas.push(schema);
    const store = createPostgresStore({ client: admin, schema });
    const first = await store.migrate();
    expect(await store.migrate()).toEqual(first);
  });

  it('works over a single pg Client too', async () => {
    const schema = uniqueSchema();
    schemas.push(schema);
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const store = createPostgresStore({ client, schema });
      await store.migrate();
      expect(await store.counters.increment('o', 'k', '2026-01-01', 3, 5)).toEqual({ allowed: true, value: 3 });
      expect(await store.counters.get('o', 'k', '2026-01-01')).toBe(3);
    } finally {
      await client.end();
    }
  });
});
