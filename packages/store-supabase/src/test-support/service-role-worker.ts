/**
 * A worker process as an app would run it: createMailService over the Supabase store with a service-role
 * supabase-js client (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, SCHEMA) and the SDK's key ring (KEY_RING, JSON; or
 * `vault`: passwords read from Supabase Vault),
 * draining every user's outbox through each user's own stored SMTP config. Prints "ready"; SIGTERM stops it.
 */
import { createMailService, storedCredentials } from '@agent-smtp/core';
import { createSupabaseStore } from '../supabase-store.js';
import { supabaseVault } from '../supabase-vault.js';
import { supabaseClient } from './test-project.js';

const env = process.env;
const client = supabaseClient(env.SUPABASE_URL!, env.SUPABASE_SERVICE_ROLE_KEY!);
const store = createSupabaseStore({ client, schema: env.SCHEMA! });
const keyRing = env.KEY_RING === 'vault' ? supabaseVault({ client, schema: env.SCHEMA! }) : JSON.parse(env.KEY_RING!);
const service = createMailService({
  store,
  // The test's sinks listen on 127.0.0.1, which stored configs may reach only when allowed.
  credentials: storedCredentials({ store, keyRing, hosts: { allowHosts: ['127.0.0.1'] } }),
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
