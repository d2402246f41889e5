import { renderMigration } from './migrate.js';
import { migrations } from './migrations/index.js';
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
