import type { AuditStore, CounterStore, CredentialStore, EventStore, Logger, MailStore, OutboxStore, PolicyStore, StatsStore, SuppressionStore } from '@agent-smtp/core';
import { safeLogger } from '@agent-smtp/core';
import { runMigrations } from './migrate.js';
import { listenForConnectionErrors, rerunWhenSessionEnded, type PostgresClient } from './postgres-client.js';
import { PostgresOutboxStore } from './postgres-outbox-store.js';
import {
  PostgresAuditStore,
  PostgresCounterStore,
  PostgresCredentialStore,
  PostgresEventStore,
  PostgresPolicyStore,
  PostgresStatsStore,
  PostgresSuppressionStore,
} from './postgres-record-stores.js';
import { toDate, toNumber } from './row-mappers.js';
import { quoteSchemaName } from './schema-name.js';

export interface PostgresStoreOptions {
  /** A `pg` Pool or Client, a PGlite instance, or anything with `query(text, params)`. The caller owns it (and ends it). */
  client: PostgresClient;
  /** The schema that holds the tables and functions: lower-case letters, digits and `_`. Default `agent_smtp`. */
  schema?: string;
  /**
   * Where the store reports connections PostgreSQL dropped (a warning per lost idle connection of a `pg` Pool) and
   * statements it ran again because of one (debug). A pino logger fits. Default: logs nothing.
   */
  logger?: Logger;
}

export interface AppliedMigration {
  version: number;
  name: string;
  appliedAt: Date;
}

/** A `MailStore` in PostgreSQL. Call `migrate()` once at start-up (it is cheap when there is nothing to do). */
export interface PostgresStore extends MailStore {
  readonly schema: string;
  /**
   * Creates the schema or brings it up to date, in one transaction. Idempotent, and safe when several processes
   * run it at once (they take turns on an advisory lock). Returns every migration now applied, oldest first.
   */
  migrate(): Promise<AppliedMigration[]>;
}

/**
 * Creates a store over any client with `query(text, params)`. It never ends the client: `close` is absent on
 * purpose, since the pool usually serves the rest of the application too.
 *
 * Connections PostgreSQL drops do not take the process down: on a client with `'error'` events (a `pg` Pool or
 * Client) the store listens for them, and a statement the server ended together with its session runs again on
 * another connection (see `rerunWhenSessionEnded`).
 */
export function createPostgresStore(options: PostgresStoreOptions): PostgresStore {
  const schema = options.schema ?? 'agent_smtp';
  const quoted = quoteSchemaName(schema);
  if (!options.client || typeof options.client.query !== 'function') {
    throw new TypeError('createPostgresStore needs a client with a query(text, params) method: a pg Pool or Client, or a PGlite instance.');
  }
  const logger = safeLogger(options.logger);
  listenForConnectionErrors(options.client, logger);
  const client = rerunWhenSessionEnded(options.client, logger);
  const outbox: OutboxStore = new PostgresOutboxStore(client, quoted);
  const events: EventStore = new PostgresEventStore(client, quoted);
  const suppressions: SuppressionStore = new PostgresSuppressionStore(client, quoted);
  const audit: AuditStore = new PostgresAuditStore(client, quoted);
  const counters: CounterStore = new PostgresCounterStore(client, quoted);
  const credentials: CredentialStore = new PostgresCredentialStore(client, quoted);
  const policies: PolicyStore = new PostgresPolicyStore(client, quoted);
  const stats: StatsStore = new PostgresStatsStore(client, quoted);
  return {
    schema,
    // A server shared by any number of processes, keeping what it committed. (A PGlite instance is one process, and
    // durable only with a data directory: the declaration describes a server, the store's intended peer.)
    capabilities: { eventCursor: true, batchEnqueue: true, findByMessageId: true, multiProcess: true, durable: true },
    outbox,
    events,
    suppressions,
    audit,
    counters,
    credentials,
    policies,
    stats,
    async migrate() {
      await runMigrations(client, schema, quoted);
      const { rows } = await client.query(`select version, name, applied_at from ${quoted}.migrations order by version`);
      return (rows as Record<string, unknown>[]).map((row) => ({
        version: toNumber(row.version),
        name: row.name as string,
        appliedAt: toDate(row.applied_at),
      }));
    },
  };
}
