/**
 * A service worker process for the multi-tenant test: one `createMailService` over the Postgres store in SCHEMA with
 * stored credentials under KEY_RING (JSON), draining every owner's outbox. Prints "ready"; SIGTERM stops it.
 */
import { createMailService, storedCredentials } from '@agent-smtp/core';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 });
const store = createPostgresStore({ client: pool, schema: env.SCHEMA! });
const service = createMailService({
  store,
  // The test's sinks listen on 127.0.0.1, which stored configs may reach only when allowed.
  credentials: storedCredentials({ store, keyRing: JSON.parse(env.KEY_RING!), hosts: { allowHosts: ['127.0.0.1'] } }),
  pool: { maxRetryWaitMs: 0 },
  outbox: { retry: { baseMs: 200, maxMs: 400 } },
});
service.startWorker({ workerId: 'service-worker', pollMs: 50 });
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
  void (async () => {
    await service.close();
    await pool.end();
    process.exit(0);
  })();
});
