import { randomUUID } from 'node:crypto';
import { createMailer, type OutgoingEmail } from '@agent-smtp/core';
import { createPostgresStore, type PostgresClient } from '@agent-smtp/store-postgres';
import { startSmtpSink } from '@agent-smtp/testing';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { expect, it } from 'vitest';

// mailer.enqueueMany on the Postgres store (the server in DATABASE_URL, else PGlite): one round trip per batch for the
// messages, keys honoured across runs, every message delivered once.
const url = process.env.DATABASE_URL;

it(`enqueueMany on Postgres (${url ? 'server' : 'PGlite'}): one enqueue_many call per batch, reruns replay, a worker delivers each message once`, { timeout: 60_000 }, async () => {
  const schema = `agent_smtp_em_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const pool = url ? new pg.Pool({ connectionString: url, max: 4 }) : undefined;
  const lite = url ? undefined : await PGlite.create();
  const client: PostgresClient = pool ?? lite!;
  const calls: string[] = [];
  const counting: PostgresClient = {
    query: ((text: string, params?: unknown[]) => {
      calls.push(text);
      return client.query(text, params);
    }) as PostgresClient['query'],
  };
  const store = createPostgresStore({ client: counting, schema });
  await store.migrate();
  const sink = await startSmtpSink();
  const mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'news@example.com' }, store, env: {} });
  try {
    const job = function* (): Generator<OutgoingEmail> {
      for (let n = 0; n < 1_100; n++) yield { to: `reader${n}@example.com`, subject: 'Issue {n}', text: 'Hello {n}', variables: { n: String(n) }, idempotencyKey: `issue-7-${n}` };
    };
    calls.length = 0;
    expect(await mailer.enqueueMany(job(), { batchSize: 500 })).toEqual({ queued: 1_100, pendingApproval: 0, replayed: 0, refused: 0 });
    expect(calls.filter((sql) => sql.includes('enqueue_many')).length).toBe(3);
    // A rerun of the same job (say, after a crash) queues nothing new.
    expect(await mailer.enqueueMany(job(), { batchSize: 500 })).toEqual({ queued: 0, pendingApproval: 0, replayed: 1_100, refused: 0 });

    mailer.startWorker({ concurrency: 20, pollMs: 20 });
    await sink.waitForMessages(1_100, 45_000);
    await mailer.close();
    const recipients = sink.messages.map((m) => m.envelope.to[0]);
    expect(new Set(recipients).size).toBe(1_100);
    expect(recipients.length).toBe(1_100);
  } finally {
    await mailer.close();
    await sink.close();
    if (pool) {
      await pool.query(`drop schema if exists "${schema}" cascade`);
      await pool.end();
    }
    await lite?.close();
  }
});
