import { randomUUID } from 'node:crypto';
import type { Logger } from '@agent-smtp/core';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { didNotRun, rerunWhenSessionEnded } from './postgres-client.js';
import { createPostgresStore } from './postgres-store.js';
import { DATABASE_URL, dropSchema, SERVER_SKIP_REASON, uniqueSchema } from './test-databases.js';

/** A logger that keeps what it was told, and lets a test wait for the first warning. */
function recordingLogger(): Logger & { entries: { level: string; obj: object; msg?: string }[]; firstWarning: Promise<object> } {
  const entries: { level: string; obj: object; msg?: string }[] = [];
  let warned!: (obj: object) => void;
  const firstWarning = new Promise<object>((resolve) => (warned = resolve));
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, obj, msg });
      if (level === 'warn') warned(obj);
    };
  return { entries, firstWarning, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const codeError = (message: string, code?: string): Error => Object.assign(new Error(message), code ? { code } : {});

/** A client whose every query fails with the next of `failures`, then answers. */
function failingClient(failures: Error[]): { query(): Promise<{ rows: unknown[] }>; calls: number } {
  const client = {
    calls: 0,
    async query(): Promise<{ rows: unknown[] }> {
      const failure = failures[client.calls++];
      if (failure) throw failure;
      return { rows: [{ ok: true }] };
    },
  };
  return client;
}

describe('running a statement again after PostgreSQL ended its session', () => {
  // What reaches the caller untouched: anything that does not prove the statement was rolled back.
  const surfaced: [string, Error][] = [
    ['a socket closed mid-statement (the commit may have happened)', codeError('Connection terminated unexpectedly')],
    ['a reset connection', codeError('read ECONNRESET', 'ECONNRESET')],
    ['a broken pipe', codeError('write EPIPE', 'EPIPE')],
    ['a unique violation', codeError('duplicate key value violates unique constraint', '23505')],
    ['a NUL in text', codeError('unsupported Unicode escape sequence', '22P05')],
    ['a statement timeout', codeError('canceling statement due to statement timeout', '57014')],
    ['a serialization failure', codeError('could not serialize access', '40001')],
    ['a thrown string', 'boom' as unknown as Error],
  ];
  it.each(surfaced)('%s reaches the caller at once, not run again', async (_, error) => {
    const client = failingClient([error]);
    await expect(rerunWhenSessionEnded(client, recordingLogger()).query('select 1')).rejects.toBe(error);
    expect(client.calls).toBe(1);
    expect(didNotRun(error)).toBe(false);
  });

  const rerun: [string, Error][] = [
    ['pg_terminate_backend or a fast shutdown (57P01)', codeError('terminating connection due to administrator command', '57P01')],
    ['a crashed server (57P02)', codeError('terminating connection because of crash of another server process', '57P02')],
    ['a server starting up (57P03)', codeError('the database system is starting up', '57P03')],
    ['a connection pg already knew was broken', codeError('Client has encountered a connection error and is not queryable')],
    ['a refused connection', codeError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
  ];
  it.each(rerun)('%s: the statement runs again and its answer is returned', async (_, error) => {
    const client = failingClient([error, error]);
    const logger = recordingLogger();
    expect(await rerunWhenSessionEnded(client, logger).query('select 1')).toEqual({ rows: [{ ok: true }] });
    expect(client.calls).toBe(3);
    expect(logger.entries.map((e) => e.level)).toEqual(['debug', 'debug']);
  });

  it('gives up after three re-runs and throws the last error', async () => {
    const errors = Array.from({ length: 5 }, (_, i) => codeError(`terminated ${i}`, '57P01'));
    const client = failingClient(errors);
    await expect(rerunWhenSessionEnded(client, recordingLogger()).query('select 1')).rejects.toBe(errors[3]);
    expect(client.calls).toBe(4);
  });
});

describe('listening for connection errors', () => {
  it('adds one error listener to a pg Pool, however many stores share it', () => {
    const pool = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    for (let i = 0; i < 20; i++) createPostgresStore({ client: pool, schema: `s${i}` });
    expect(pool.listenerCount('error')).toBe(1);
  });
});

describe.skipIf(!DATABASE_URL)(`dropped connections on a real server (${DATABASE_URL ? 'DATABASE_URL' : SERVER_SKIP_REASON})`, () => {
  // A name per test, so that pg_terminate_backend reaches this test's backends and nobody else's.
  const appName = (): string => `agent_smtp_drop_${randomUUID().slice(0, 8)}`;
  const terminate = async (admin: pg.Pool, filter: string, params: unknown[]): Promise<number> => {
    const { rows } = await admin.query(`select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity where ${filter}`, params);
    return rows[0].n as number;
  };

  it('a pooled connection terminated while idle is logged, does not kill the process, and the store keeps working', async () => {
    const name = appName();
    const pool = new pg.Pool({ connectionString: DATABASE_URL, application_name: name, max: 3 });
    const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const logger = recordingLogger();
    const store = createPostgresStore({ client: pool, schema: uniqueSchema(), logger });
    try {
      await store.migrate();
      // Three connections opened at once, then back idle in the pool.
      await Promise.all([1, 2, 3].map(() => store.outbox.get('owner', 'none')));
      expect(pool.idleCount).toBeGreaterThan(0);
      expect(await terminate(admin, 'application_name = $1', [name])).toBeGreaterThan(0);
      // Without the store's listener, pg.Pool's 'error' event here is thrown as an uncaught exception.
      const warning = await logger.firstWarning;
      expect(warning).toMatchObject({ err: { code: '57P01' } });
      expect(await store.outbox.get('owner', 'none')).toBeUndefined();
    } finally {
      await dropSchema(pool, store.schema);
      await pool.end();
      await admin.end();
    }
  });

  it('a statement whose backend is terminated mid-run runs again on a new connection and takes effect once', async () => {
    const name = appName();
    const schema = uniqueSchema();
    const pool = new pg.Pool({ connectionString: DATABASE_URL, application_name: name, max: 2 });
    const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const logger = recordingLogger();
    try {
      await admin.query(`create schema ${schema}; create table ${schema}.runs (pid integer not null)`);
      pool.on('error', () => {}); // only the re-run is under test here, not the store's listener
      const client = rerunWhenSessionEnded(pool, logger);
      // Inserts, then sleeps in the same statement (per inserted row): terminated during the sleep, the insert
      // is rolled back, so exactly one row, the re-run's, may remain.
      const statement = client.query(
        `with inserted as (insert into ${schema}.runs values (pg_backend_pid()) returning pid) select pid, pg_sleep(1.5)::text as slept from inserted`,
      );
      let victim: number | undefined;
      for (let i = 0; i < 200 && victim === undefined; i++) {
        const { rows } = await admin.query(`select pid from pg_stat_activity where application_name = $1 and state = 'active' and query like 'with inserted as%'`, [name]);
        victim = rows[0]?.pid as number | undefined;
        if (victim === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(victim).toBeTypeOf('number');
      expect(await terminate(admin, 'pid = $1', [victim])).toBe(1);
      const rows = (await statement).rows as { pid: number }[];
      const { rows: stored } = await admin.query(`select pid from ${schema}.runs`);
      expect(rows).toHaveLength(1);
      expect(stored).toEqual([{ pid: rows[0]!.pid }]);
      expect(rows[0]!.pid).not.toBe(victim);
      expect(logger.entries).toMatchObject([{ level: 'debug', obj: { err: { code: '57P01' }, rerun: 1 } }]);
    } finally {
      await admin.query(`drop schema if exists ${schema} cascade`);
      await pool.end();
      await admin.end();
    }
  });
});
