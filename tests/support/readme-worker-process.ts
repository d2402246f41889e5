/**
 * A worker set up exactly as the store-postgres README shows it (a plain `pg.Pool`, `createPostgresStore`,
 * `migrate()`, `createMailer({ store })`, `startWorker({ concurrency: 10 })`), and nothing more: in particular no
 * `pool.on('error')` of its own, so it shows what a user who follows the README gets when PostgreSQL drops a
 * connection. Sends to the dev sink at SMTP_PORT; DATABASE_URL carries the application_name the test terminates.
 * Prints "ready" once the worker runs; SIGTERM stops it gracefully and exits 0.
 */
import { createMailer } from '@agent-smtp/core';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL });
const store = createPostgresStore({ client: pool, schema: env.SCHEMA! });
await store.migrate();
const mailer = createMailer({
  store,
  servers: [{ name: 'sink', host: '127.0.0.1', port: Number(env.SMTP_PORT), starttls: 'disabled' }],
  env: {},
});
const worker = mailer.startWorker({ concurrency: 10 });
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
  void (async () => {
    await worker.stop();
    await mailer.close();
    await pool.end();
    process.exit(0);
  })();
});
