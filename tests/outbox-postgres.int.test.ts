import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// These need a real PostgreSQL server shared by several processes; PGlite is in-process only.
// .ci/run sets DATABASE_URL when a server answers at 127.0.0.1:5432.
const url = process.env.DATABASE_URL;
const workerScript = fileURLToPath(new URL('./support/outbox-worker-process.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

describe.skipIf(!url)('outbox on a real PostgreSQL server, several processes (skipped: DATABASE_URL is not set)', () => {
  let pool: pg.Pool;
  let schema: string;
  let sink: SmtpSink;
  let mailer: Mailer;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    pool = new pg.Pool({ connectionString: url, max: 20 });
    schema = `t_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const store = createPostgresStore({ client: pool, schema });
    await store.migrate();
    sink = await startSmtpSink({ parse: false });
    mailer = createMailer({ servers: [sink.serverConfig()], store, env: {}, defaults: { from: 'agent@example.com' } });
  });

  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
    await mailer.close();
    await sink.close();
    await pool.query(`drop schema if exists ${schema} cascade`);
    await pool.end();
  });

  async function startWorkers(name: string, env: Record<string, string> = {}): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', workerScript], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, DATABASE_URL: url, SCHEMA: schema, SMTP_PORT: String(sink.port), NAME: name, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    expect(line).toBe('ready');
    return child;
  }

  async function enqueue(count: number, prefix: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(100, count - i) }, (_, j) => mailer.enqueue({ to: 'ada@example.com', subject: `${prefix}-${i + j}`, text: 'x' })),
      );
      ids.push(...batch.map((b) => b.id));
    }
    return ids;
  }

  const messageIds = (): string[] => sink.messages.map((m) => /^Message-ID: (.+)$/im.exec(m.raw.toString('latin1'))![1]!.trim());
  const statusCounts = async (): Promise<Record<string, number>> => {
    const { rows } = await pool.query(`select status, count(*)::int as n from ${schema}.outbox group by status`);
    return Object.fromEntries(rows.map((r: { status: string; n: number }) => [r.status, r.n]));
  };
  async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('4 workers in 2 processes drain 5,000 messages: each arrives exactly once, no row claimed twice', async () => {
    const ids = await enqueue(5_000, 'bulk');
    const a = await startWorkers('a');
    const b = await startWorkers('b');
    await until(async () => (await statusCounts()).sent === 5_000, 120_000, '5,000 sent');
    expect(sink.messages).toHaveLength(5_000);
    expect(new Set(messageIds()).size).toBe(5_000);
    const { rows } = await pool.query(
      `select count(*) filter (where attempt <> 1)::int as retried, count(*) filter (where possible_duplicate)::int as dupes
              from ${schema}.outbox`,
    );
    expect(rows[0]).toMatchObject({ retried: 0, dupes: 0 });
    const claims = await pool.query(`select message_id, count(*)::int as n from ${schema}.events where type in ('claimed','reclaimed') group by message_id having count(*) <> 1`);
    expect(claims.rows).toEqual([]);
    const byWorker = await pool.query(`select detail->>'worker' as worker, count(*)::int as n from ${schema}.events where type = 'claimed' group by 1`);
    expect(byWorker.rows.length).toBe(4);
    expect(ids).toHaveLength(5_000);
    for (const child of [a, b]) child.kill('SIGTERM');
    await Promise.all([a, b].map((c) => once(c, 'exit')));
    expect([a.exitCode, b.exitCode]).toEqual([0, 0]);
  }, 180_000);

  it('a worker killed after claiming and before sending: its messages are sent once, after the lease expires', async () => {
    await enqueue(20, 'crash-before');
    let victim: ChildProcess | undefined;
    sink.behavior.mailFrom = () => {
      if (victim && victim.exitCode === null && victim.signalCode === null) victim.kill('SIGKILL');
      return { code: 421, message: '4.3.2 going away' };
    };
    victim = await startWorkers('victim', { WORKERS: '1', CONCURRENCY: '1', LEASE_MS: '1000' });
    await once(victim, 'exit');
    expect(victim.signalCode).toBe('SIGKILL');
    expect(sink.messages).toHaveLength(0);
    sink.behavior = {};
    await startWorkers('rescuer');
    await until(async () => (await statusCounts()).sent === 20, 30_000, '20 sent');
    expect(sink.messages).toHaveLength(20);
    expect(new Set(messageIds()).size).toBe(20);
  }, 60_000);

  it('a worker killed after the server accepted and before the status write: at most one more copy, marked', async () => {
    await enqueue(10, 'crash-after');
    let victim: ChildProcess | undefined;
    sink.behavior.data = () => {
      // The message is recorded before this hook's reply; kill the sender before it can hear the 250.
      if (victim && victim.exitCode === null && victim.signalCode === null) victim.kill('SIGKILL');
      return undefined;
    };
    victim = await startWorkers('victim', { WORKERS: '1', CONCURRENCY: '1', LEASE_MS: '1000' });
    await once(victim, 'exit');
    expect(sink.messages).toHaveLength(1);
    const first = messageIds()[0]!;
    sink.behavior = {};
    await startWorkers('rescuer');
    await until(async () => (await statusCounts()).sent === 10, 30_000, '10 sent');
    const seen = messageIds();
    expect(seen).toHaveLength(11);
    expect(new Set(seen).size).toBe(10);
    expect(seen.filter((id) => id === first)).toHaveLength(2);
    const { rows } = await pool.query(`select message_id, possible_duplicate, attempt from ${schema}.outbox where possible_duplicate`);
    expect(rows).toEqual([{ message_id: first, possible_duplicate: true, attempt: 2 }]);
  }, 60_000);

  it('100 concurrent enqueues with one key: one row, one message at the sink', async () => {
    // Four mailers on four pools, as four processes would be: nothing in-process serialises them, only the store.
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: url, max: 10 }));
    const mailers = pools.map((client) =>
      createMailer({ servers: [sink.serverConfig()], store: createPostgresStore({ client, schema }), env: {}, defaults: { from: 'agent@example.com' } }),
    );
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => mailers[i % 4]!.enqueue({ to: 'ada@example.com', subject: 'Once', text: 'x', idempotencyKey: 'one-key' })),
    ).finally(async () => {
      await Promise.all(mailers.map((m) => m.close()));
      await Promise.all(pools.map((p) => p.end()));
    });
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    const { rows } = await pool.query(`select count(*)::int as n from ${schema}.outbox`);
    expect(rows[0].n).toBe(1);
    await startWorkers('single');
    await until(async () => (await statusCounts()).sent === 1, 20_000, 'sent');
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.messages).toHaveLength(1);
  }, 30_000);
});
