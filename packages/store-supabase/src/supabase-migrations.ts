import { getMigrateStatement, toDate, type Migration, type PostgresClient } from '@agent-smtp/store-postgres';
import { vaultMigrationSql } from './supabase-vault.js';

/** The Postgres store's tables that hold an owner's rows: each gets the auth default and the owner-only policy. */
export const OWNER_TABLES = ['outbox', 'events', 'suppressions', 'audit', 'counters', 'credentials', 'smtp_configs', 'policies'] as const;

/**
 * Row-level security over the Postgres store's schema, for a Supabase project (its `auth` schema and its roles
 * `anon`, `authenticated` and `service_role` must exist, as they do in every project).
 *
 * - `owner_id` stays `text`, defaulting to `auth.uid()::text`, and the policies compare `owner_id =
 *   auth.uid()::text`. Text rather than uuid: the SQL functions, the SDK's `ownerId` (a string) and an existing
 *   Postgres store schema (whose rows may have owners that are not Supabase users, such as `default` or a tenant id
 *   a service-role worker writes) stay as they are, so this applies on top of a schema in use without rewriting a
 *   table, and the store calls the very functions the Postgres store does.
 * - `authenticated` reaches only rows whose owner is the caller: one policy per table for all commands, `using` and
 *   `with check`, so a user can neither read nor write, nor move a row to, another owner. The SQL functions are
 *   `security invoker`, so the same policies apply inside them: a claim, cancel or count over another owner's rows
 *   finds none, an enqueue for another owner is refused (42501).
 * - `service_role` has BYPASSRLS in Supabase: a worker made with the service-role key drains every user's outbox
 *   through the same functions. `anon` gets nothing: no schema usage, no table, no function.
 * - `<schema>.migrations` is the service role's only.
 */
const ownerIsCaller = `owner_id = (select auth.uid())::text`;

const supabaseRls = [
  ...OWNER_TABLES.flatMap((table) => [
    `alter table {{schema}}.${table} alter column owner_id set default (auth.uid())::text;`,
    `alter table {{schema}}.${table} enable row level security;`,
    `create policy ${table}_owner on {{schema}}.${table} as permissive for all to authenticated\n  using (${ownerIsCaller}) with check (${ownerIsCaller});`,
  ]),
  `alter table {{schema}}.migrations enable row level security;`,
  `revoke all on schema {{schema}} from public, anon;`,
  `grant usage on schema {{schema}} to authenticated, service_role;`,
  `revoke all on all tables in schema {{schema}} from public, anon, authenticated;`,
  `grant select, insert, update, delete on ${OWNER_TABLES.map((t) => `{{schema}}.${t}`).join(', ')} to authenticated;`,
  `grant select, insert, update, delete on all tables in schema {{schema}} to service_role;`,
  `revoke all on all sequences in schema {{schema}} from public, anon;`,
  `grant usage, select on all sequences in schema {{schema}} to authenticated, service_role;`,
  `revoke all on all functions in schema {{schema}} from public, anon;`,
  `grant execute on all functions in schema {{schema}} to authenticated, service_role;`,
].join('\n');

/**
 * Run after the migrations on every run of the migrate statement (a PL/pgSQL block inside it), so what 1001 and 1002
 * set up also holds for whatever a later Postgres store migration makes, without a Supabase migration to follow each:
 * every table gets row-level security; a table with `owner_id` gets the `auth.uid()` default, the owner-only policy
 * and the grants to `authenticated` (a table without one is the service role's only); and every function, also one a
 * migration dropped and created again (which grants EXECUTE to PUBLIC by default), is executable by
 * `authenticated` and `service_role` and not by PUBLIC or `anon`, but for the vault functions, which stay as 1002 left
 * them. Idempotent: existing policies are left as they are.
 */
const supabaseEveryRun = String.raw`DECLARE
    t record;
  BEGIN
    FOR t IN
      SELECT c.relname, EXISTS (
               SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'owner_id' AND NOT a.attisdropped
             ) AS has_owner
      FROM pg_catalog.pg_class c
      WHERE c.relnamespace = '{{schema}}'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'migrations'
    LOOP
      EXECUTE format('alter table %s.%I enable row level security', '{{schema}}', t.relname);
      IF t.has_owner THEN
        EXECUTE format('alter table %s.%I alter column owner_id set default (auth.uid())::text', '{{schema}}', t.relname);
        IF NOT EXISTS (
          SELECT 1 FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class pc ON pc.oid = p.polrelid
          WHERE pc.relnamespace = '{{schema}}'::regnamespace AND pc.relname = t.relname AND p.polname = t.relname || '_owner'
        ) THEN
          EXECUTE format(
            'create policy %I on %s.%I as permissive for all to authenticated using (${ownerIsCaller}) with check (${ownerIsCaller})',
            t.relname || '_owner', '{{schema}}', t.relname
          );
        END IF;
        EXECUTE format('grant select, insert, update, delete on %s.%I to authenticated', '{{schema}}', t.relname);
      END IF;
    END LOOP;
    revoke all on all tables in schema {{schema}} from public, anon;
    grant select, insert, update, delete on all tables in schema {{schema}} to service_role;
    revoke all on all sequences in schema {{schema}} from public, anon;
    grant usage, select on all sequences in schema {{schema}} to authenticated, service_role;
    revoke all on all functions in schema {{schema}} from public, anon;
    grant execute on all functions in schema {{schema}} to authenticated, service_role;
    revoke all on function {{schema}}.vault_read_secret(uuid, text) from authenticated;
    revoke all on function {{schema}}.vault_forget_secrets() from authenticated, service_role;
  END;`;

/**
 * The Supabase store's migrations, applied after the Postgres store's and recorded in the same
 * `<schema>.migrations` table. Versions from 1001 on, so they never collide with the Postgres store's. A Postgres
 * migration that adds an owner table or (re)creates a function needs no Supabase one after it: the every-run block
 * gives it row-level security and grants (the package's tests check every table and function). A table whose rows
 * need another policy than "owner only" does.
 */
export const supabaseMigrations: readonly Migration[] = [
  { version: 1001, name: '1001_supabase_rls', sql: supabaseRls },
  { version: 1002, name: '1002_supabase_vault', sql: vaultMigrationSql },
];

/**
 * The one idempotent statement that creates the schema or brings it up to date: the Postgres store's migrations,
 * then the Supabase ones, in one transaction, skipping what `<schema>.migrations` records. It is what `migrate()`
 * runs and what the `supabase/migrations` file in this package holds (for `schema` `agent_smtp`).
 */
export function getSupabaseMigrateStatement(schema = 'agent_smtp'): string {
  return getMigrateStatement(schema, supabaseMigrations, { everyRun: supabaseEveryRun });
}

export interface MigrateOptions {
  /**
   * A direct connection to the project's database (`pg` Pool or Client on the connection string of the dashboard's
   * Connect panel, as `postgres`), not supabase-js: DDL does not go through the API.
   */
  client: PostgresClient;
  /** Default `agent_smtp`. Add it to the API's exposed schemas (Dashboard: API settings; CLI: `[api] schemas`). */
  schema?: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  appliedAt: Date;
}

/** Applies the Supabase store's schema (see `getSupabaseMigrateStatement`); returns every migration applied. */
export async function migrate(options: MigrateOptions): Promise<AppliedMigration[]> {
  const schema = options.schema ?? 'agent_smtp';
  await options.client.query(getSupabaseMigrateStatement(schema));
  const { rows } = await options.client.query(`select version, name, applied_at from "${schema}".migrations order by version`);
  return (rows as Record<string, unknown>[]).map((row) => ({ version: Number(row.version), name: row.name as string, appliedAt: toDate(row.applied_at) }));
}
