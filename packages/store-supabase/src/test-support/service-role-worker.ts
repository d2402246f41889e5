/**
 * A worker process as an app would run it: createMailService over the Supabase store with a service-role
 * supabase-js client (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, SCHEMA) and the SDK's key ring (KEY_RING, JSON),
 * draining every user's outbox through each user's own stored SMTP config. Prints "ready"; SIGTERM stops it.
 */
import { createMailService, storedCredentials } from '@agent-smtp/core';
import { createSupabaseStore } from '../supabase-store.js';
import { supabaseClient } from './test-project.js';

const env = process.env;
const store = createSupabaseStore({ client: supabaseClient(env.SUPABASE_URL!, env.SUPABASE_SERVICE_ROLE_KEY!), schema: env.SCHEMA! });
const service = createMailService({
  store,
  // The test's sinks listen on 127.0.0.1, which stored configs may reach only when allowed.
  credentials: storedCredentials({ store, keyRing: JSON.parse(env.KEY_RING!), hosts: { allowHosts: ['127.0.0.1'] } }),
  pool: { maxRetryWaitMs: 0 },
  outbox: { retry: { baseMs: 200, maxMs: 400 } },
});
service.startWorker({ workerId: 'service-role-worker', pollMs: 50 });
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
  void (async () => {
    await service.close();
    process.exit(0);
  })();
});
