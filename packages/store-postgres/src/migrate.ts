import { migrations as allMigrations, type Migration } from './migrations/index.js';
import type { PostgresClient } from './postgres-client.js';

// Dollar-quote tags that wrap the migration SQL inside one DO block; no migration may contain them.
const OUTER = '$agent_smtp_migrate$';
const INNER = '$agent_smtp_migration$';

/** A migration's SQL for one schema (`quotedSchema` as returned by `quoteSchemaName`). */
export function renderMigration(migration: Migration, quotedSchema: string): string {
  return migration.sql.replaceAll('{{schema}}', quotedSchema);
}

/**
 * One statement that applies every pending migration in one transaction. A DO block, because PGlite's `query()`
 * takes a single statement and a `pg` Pool may run consecutive calls on different connections: BEGIN and COMMIT
 * sent as separate calls would not bind anything. The transaction-scoped advisory lock makes a second process
 * running it at the same time wait, then find every version recorded and do nothing.
 */
export function buildMigrateStatement(schema: string, quotedSchema: string, migrations: readonly Migration[] = allMigrations, everyRun?: string): string {
  const steps = migrations.map((migration) => {
    const sql = renderMigration(migration, quotedSchema);
    if (sql.includes(OUTER) || sql.includes(INNER)) throw new Error(`Migration ${migration.name} contains a reserved dollar-quote tag.`);
    if (!Number.isInteger(migration.version) || !/^[a-z0-9_]+$/.test(migration.name)) throw new Error(`Migration ${migration.name} has an invalid version or name.`);
    return `
  IF NOT EXISTS (SELECT 1 FROM ${quotedSchema}.migrations WHERE version = ${migration.version}) THEN
    EXECUTE ${INNER}${sql}${INNER};
    INSERT INTO ${quotedSchema}.migrations (version, name) VALUES (${migration.version}, '${migration.name}');
  END IF;`;
  });
  // `schema` matched ^[a-z_][a-z0-9_]*$, so it is safe inside a string literal and a quoted identifier.
  return `DO ${OUTER}
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('agent-smtp migrate ${schema}', 0));
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = '${schema}') THEN
    CREATE SCHEMA ${quotedSchema};
  END IF;
  CREATE TABLE IF NOT EXISTS ${quotedSchema}.migrations (
    version    integer primary key,
    name       text not null,
    applied_at timestamptz not null default now()
  );${steps.join('')}${everyRun === undefined ? '' : `
  -- Every run:
  ${checkedEveryRun(everyRun).replaceAll('{{schema}}', quotedSchema)}`}
END
${OUTER}`;
}

function checkedEveryRun(sql: string): string {
  if (sql.includes(OUTER)) throw new Error('The every-run SQL contains a reserved dollar-quote tag.');
  return sql;
}

export async function runMigrations(client: PostgresClient, schema: string, quotedSchema: string): Promise<void> {
  await client.query(buildMigrateStatement(schema, quotedSchema));
}
