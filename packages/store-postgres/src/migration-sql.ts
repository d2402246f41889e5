import { buildMigrateStatement, renderMigration } from './migrate.js';
import { migrations, type Migration } from './migrations/index.js';
import { quoteSchemaName } from './schema-name.js';

export interface MigrationSql {
  version: number;
  name: string;
  /** Plain SQL for this schema, e.g. for a migration tool or a Supabase `supabase/migrations` file. */
  sql: string;
}

/**
 * The migrations as plain SQL for one schema, oldest first, for those who apply migrations with their own tool
 * instead of `store.migrate()` (the Supabase store reuses them). They do not create the schema or record
 * versions in `<schema>.migrations`: that is `migrate()`'s bookkeeping.
 */
export function getMigrationSql(schema = 'agent_smtp'): MigrationSql[] {
  const quoted = quoteSchemaName(schema);
  return migrations.map((m) => ({ version: m.version, name: m.name, sql: renderMigration(m, quoted) }));
}

/**
 * The one statement `store.migrate()` runs, for those who run it elsewhere: every pending migration of this store,
 * then `extra` (another package's migrations on top of these tables, e.g. the Supabase store's row-level security),
 * in one transaction under the schema's advisory lock, each recorded in `<schema>.migrations` by version. Idempotent:
 * what is recorded is skipped, so it can run again, or on a schema `migrate()` already made. `extra` versions must
 * not collide with this store's (the Supabase store's start at 1001). `everyRun`: PL/pgSQL statements (`{{schema}}`
 * for the quoted schema) run after the migrations on every run, recorded nowhere: what must hold whatever migration
 * made the schema (the Supabase store's grants and row-level security on every table).
 */
export function getMigrateStatement(schema = 'agent_smtp', extra: readonly Migration[] = [], options: { everyRun?: string | undefined } = {}): string {
  return buildMigrateStatement(schema, quoteSchemaName(schema), [...migrations, ...extra], options.everyRun);
}
