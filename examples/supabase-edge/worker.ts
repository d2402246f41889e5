/**
 * The worker that sends what users queued from the edge handler: a long-running Node process with the service-role
 * key, which reaches every user's outbox and reads SMTP passwords from Supabase Vault. Never ship that key to a
 * browser or an edge function that acts for a user.
 *
 *   SUPABASE_URL=... SUPABASE_SERVICE_ROLE_KEY=... npx tsx worker.ts
 */
import { pathToFileURL } from 'node:url';
import { createMailService, type HostPolicy, type MailService, storedCredentials } from '@agent-smtp/core';
import { createSupabaseStore, supabaseVault } from '@agent-smtp/store-supabase';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

export interface WorkerEnv {
  SUPABASE_URL: string;
  SUPABASE_SERVICE_ROLE_KEY: string;
}

export function startServiceWorker(env: WorkerEnv, options: { hosts?: HostPolicy; pollMs?: number; schema?: string } = {}): MailService {
  const supabase = createClient(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket as never }, // supabase-js on Node 20 needs a WebSocket implementation
  });
  const store = createSupabaseStore({ client: supabase, schema: options.schema });
  const service = createMailService({ store, credentials: storedCredentials({ store, keyRing: supabaseVault({ client: supabase, schema: options.schema }), hosts: options.hosts }) });
  // Claims every user's due messages (SKIP LOCKED: run as many workers as you like), each sent through its user's SMTP account.
  service.startWorker({ concurrency: 10, pollMs: options.pollMs ?? 1000 });
  return service;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const service = startServiceWorker({ SUPABASE_URL: process.env.SUPABASE_URL!, SUPABASE_SERVICE_ROLE_KEY: process.env.SUPABASE_SERVICE_ROLE_KEY! });
  process.on('SIGTERM', () => void service.close().then(() => process.exit(0)));
  console.log('agent-smtp worker running');
}
