import type { MailStore } from '@agent-smtp/core';
import { ConfigError } from '@agent-smtp/core';
import { SupabaseOutboxStore } from './supabase-outbox-store.js';
import {
  SupabaseAuditStore,
  SupabaseCounterStore,
  SupabaseCredentialStore,
  SupabaseEventStore,
  SupabasePolicyStore,
  SupabaseStatsStore,
  SupabaseSuppressionStore,
} from './supabase-record-stores.js';
import { SchemaRpc, type SupabaseRpcClient } from './supabase-rpc.js';

export interface SupabaseStoreOptions {
  /**
   * The app's supabase-js v2 client. Made with the service-role key it reaches every owner's rows (a worker);
   * made with a user's JWT (`global.headers.Authorization`) it reaches only that user's, whose `ownerId` is the
   * user's id (`auth.uid()`). The store never signs in or out and never closes the client.
   */
  client: SupabaseRpcClient;
  /** The schema `migrate()` (or the `supabase/migrations` file) made, exposed in the API settings. Default `agent_smtp`. */
  schema?: string;
}

export interface SupabaseStore extends MailStore {
  readonly schema: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** The schema option (default `agent_smtp`) and the client, checked: `ConfigError` / `TypeError` naming what to pass. */
export function checkOptions(options: { client: SupabaseRpcClient; schema?: string | undefined }, caller: string): string {
  const schema = options?.schema ?? 'agent_smtp';
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema)) {
    throw new ConfigError(
      `The Supabase schema name ${JSON.stringify(schema)} is not allowed: use 1 to 63 lower-case letters, digits and underscores, not starting with a digit (e.g. "agent_smtp").`,
      { setting: 'schema' },
    );
  }
  if (!options.client || typeof (options.client as Partial<SupabaseRpcClient>).schema !== 'function') {
    throw new TypeError(`${caller} needs a supabase-js v2 client (createClient from @supabase/supabase-js): one with schema(name).rpc(fn, args).`);
  }
  return schema;
}

/**
 * A `MailStore` on Supabase: every part calls the Postgres store's SQL functions through `client.schema(schema)
 * .rpc(fn, namedArgs)`, one function (one transaction) per state change, under the caller's row-level security.
 */
export function createSupabaseStore(options: SupabaseStoreOptions): SupabaseStore {
  const schema = checkOptions(options, 'createSupabaseStore');
  const rpc = new SchemaRpc(options.client, schema);
  return {
    schema,
    // Postgres behind PostgREST: any number of processes share it, and it keeps what it committed.
    capabilities: { eventCursor: true, batchEnqueue: true, findByMessageId: true, multiProcess: true, durable: true },
    outbox: new SupabaseOutboxStore(rpc),
    events: new SupabaseEventStore(rpc),
    suppressions: new SupabaseSuppressionStore(rpc),
    audit: new SupabaseAuditStore(rpc),
    counters: new SupabaseCounterStore(rpc),
    credentials: new SupabaseCredentialStore(rpc),
    policies: new SupabasePolicyStore(rpc),
    stats: new SupabaseStatsStore(rpc),
  };
}
