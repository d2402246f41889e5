/**
 * A worker process for the multi-process outbox tests: `WORKERS` workers sharing one mailer, one pg Pool and
 * one Postgres store, sending to the dev sink at SMTP_PORT. Prints "ready" once started; SIGTERM stops it
 * gracefully (claimed messages finish). Tests kill it with SIGKILL to simulate a crash.
 */
import { createMailer } from '@agent-smtp/core';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 8 });
const store = createPostgresStore({ client: pool, schema: env.SCHEMA! });
const mailer = createMailer({
  servers: [{ name: 'sink', host: '127.0.0.1', port: Number(env.SMTP_PORT), starttls: 'disabled', poolSize: 4, maxRetries: 0 }],
  store,
  env: {},
  pool: { maxRetryWaitMs: 0 },
  outbox: { retry: { baseMs: 200, maxMs: 400 } },
});
const workers = Array.from({ length: Number(env.WORKERS ?? 2) }, (_, i) =>
  mailer.startWorker({
    workerId: `${env.NAME ?? 'proc'}-w${i}`,
    concurrency: Number(env.CONCURRENCY ?? 8),
    pollMs: Number(env.POLL_MS ?? 50),
    leaseMs: Number(env.LEASE_MS ?? 30_000),
  }),
);
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
  void (async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await mailer.close();
    await pool.end();
    process.exit(0);
  })();
});
