import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { createPostgresStore, getMigrationSql, type PostgresClient } from '@agent-smtp/store-postgres';
import { newOutboxRecord } from '@agent-smtp/testing/store-contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newestMigrationFile, renderSupabaseMigrationFile, SUPABASE_MIGRATIONS_DIR } from './supabase-migration-file.js';
import { migrate, OWNER_TABLES, supabaseMigrations } from './supabase-migrations.js';
import { installSupabaseAuth } from './test-support/supabase-auth.js';
import { uniqueSchema } from './test-support/test-project.js';

const versions = [...getMigrationSql().map((m) => m.version), ...supabaseMigrations.map((m) => m.version)];
const rowsOf = async <T>(db: PostgresClient, text: string, params: unknown[] = []): Promise<T[]> => (await db.query(text, params)).rows as T[];

describe('the supabase/migrations folder', () => {
  const dir = fileURLToPath(new URL(`../${SUPABASE_MIGRATIONS_DIR}/`, import.meta.url));
  it('its newest file is what the generator makes from the migrations in code', () => {
    const newest = newestMigrationFile(readdirSync(dir));
    expect(newest, `no migration file in ${SUPABASE_MIGRATIONS_DIR}`).toBeDefined();
    const upToDate = readFileSync(`${dir}${newest}`, 'utf8') === renderSupabaseMigrationFile();
    expect(
      upToDate,
      `${SUPABASE_MIGRATIONS_DIR}/${newest} does not hold the migrations in code (a Postgres or Supabase migration was added): run \`npm run generate:migration -w @agent-smtp/store-supabase\`, which adds a newer file (released files never change), and commit it`,
    ).toBe(true);
  });
});

describe('migrate() on a database with Supabase roles and auth (PGlite)', () => {
  let db: PGlite;
  beforeAll(async () => {
    db = await PGlite.create();
    await installSupabaseAuth(db);
  }, 60_000);
  afterAll(async () => {
    await db.close();
  });

  it('applies twice without error, recording every version once', async () => {
    const schema = uniqueSchema();
    const first = await migrate({ client: db, schema });
    const second = await migrate({ client: db, schema });
    expect(first.map((m) => m.version)).toEqual(versions);
    expect(second).toEqual(first);
  });

  it('the migration file applies twice, and after migrate()', async () => {
    await db.exec(renderSupabaseMigrationFile());
    await db.exec(renderSupabaseMigrationFile());
    await migrate({ client: db, schema: 'agent_smtp' });
    expect((await rowsOf<{ version: number }>(db, 'select version from agent_smtp.migrations order by version')).map((r) => r.version)).toEqual(versions);
  });

  it('every released file of the folder, applied in order on one database, ends where the newest alone does', async () => {
    const dir = fileURLToPath(new URL(`../${SUPABASE_MIGRATIONS_DIR}/`, import.meta.url));
    const files = readdirSync(dir).filter((f) => /^\d{14}_agent_smtp\.sql$/.test(f)).sort();
    const upgraded = await PGlite.create();
    try {
      await installSupabaseAuth(upgraded);
      for (const file of files) await upgraded.exec(readFileSync(`${dir}${file}`, 'utf8'));
      expect((await rowsOf<{ version: number }>(upgraded, 'select version from agent_smtp.migrations order by version')).map((r) => r.version)).toEqual(versions);
      const fns = await rowsOf<{ n: number }>(upgraded, `select count(*)::int as n from pg_proc where pronamespace = 'agent_smtp'::regnamespace`);
      await db.exec(renderSupabaseMigrationFile()); // the newest alone (idempotent where it ran already)
      const fresh = await rowsOf<{ n: number }>(db, `select count(*)::int as n from pg_proc where pronamespace = 'agent_smtp'::regnamespace`);
      expect(fns).toEqual(fresh);
    } finally {
      await upgraded.close();
    }
  });

  it('applies on top of a schema the Postgres store made and used, keeping its rows', async () => {
    const schema = uniqueSchema();
    const postgresStore = createPostgresStore({ client: db, schema });
    await postgresStore.migrate();
    const { record } = await postgresStore.outbox.enqueue(newOutboxRecord('tenant-7'));
    await migrate({ client: db, schema });
    expect((await postgresStore.outbox.get('tenant-7', record.id))?.id).toBe(record.id);
    // The Postgres store's own migrate() still finds nothing to do.
    expect((await postgresStore.migrate()).map((m) => m.version)).toEqual(versions);
  });

  it('gives what a later Postgres migration makes (an owner table, a function dropped and created again) row-level security and grants on the next run', async () => {
    const schema = uniqueSchema();
    await migrate({ client: db, schema });
    const t = `"${schema}"`;
    // As a new Postgres store migration would: a table with owner_id, one without, and a recreated function.
    await db.exec(`
      create table ${t}.later_owned (owner_id text not null, note text);
      create table ${t}.later_internal (k text primary key);
      drop function ${t}.counter_get(text, text, text);
      create function ${t}.counter_get(p_owner_id text, p_key text, p_window text) returns integer language sql stable as $$ select 0 $$;
    `);
    const privileges = async () =>
      (
        await rowsOf<{ anon: boolean; authenticated: boolean }>(
          db,
          `select has_function_privilege('anon', '${t}.counter_get(text, text, text)', 'execute') as anon,
                  has_function_privilege('authenticated', '${t}.counter_get(text, text, text)', 'execute') as authenticated`,
        )
      )[0];
    expect(await privileges()).toEqual({ anon: true, authenticated: true }); // PUBLIC's default: what the next run fixes
    await migrate({ client: db, schema });
    expect(await privileges()).toEqual({ anon: false, authenticated: true });
    const tables = await rowsOf<{ relname: string; rls: boolean; policies: string[]; authenticated: boolean; owner_default: string | null }>(
      db,
      `select c.relname, c.relrowsecurity as rls, array(select polname::text from pg_policy where polrelid = c.oid) as policies,
              has_table_privilege('authenticated', c.oid, 'select') as authenticated,
              (select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
               where d.adrelid = c.oid and a.attname = 'owner_id') as owner_default
       from pg_class c where c.relnamespace = $1::regnamespace and c.relkind = 'r' and c.relname like 'later_%' order by c.relname`,
      [schema],
    );
    expect(tables).toEqual([
      { relname: 'later_internal', rls: true, policies: [], authenticated: false, owner_default: null },
      { relname: 'later_owned', rls: true, policies: ['later_owned_owner'], authenticated: true, owner_default: '(auth.uid())::text' },
    ]);
    // A user reaches only their own rows of the new table.
    const user = crypto.randomUUID();
    await db.query(`insert into ${t}.later_owned values ('someone-else', 'theirs')`);
    const seen = await db.transaction(async (tx) => {
      await tx.query(`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ sub: user, role: 'authenticated' })]);
      await tx.query(`insert into ${t}.later_owned (note) values ('mine')`);
      return (await tx.query(`select owner_id, note from ${t}.later_owned`)).rows;
    });
    expect(seen).toEqual([{ owner_id: user, note: 'mine' }]);
    // And the run after that changes nothing (no duplicate policy, no error).
    await migrate({ client: db, schema });
  });

  it("run by a non-superuser owner with only the vault rights Supabase gives postgres, Vault mode works end to end in SQL", async () => {
    // Supabase's postgres is not a superuser: the vault functions run as their owner with what it was granted.
    await db.exec(`
      do $$ begin
        if not exists (select 1 from pg_roles where rolname = 'project_owner') then create role project_owner nologin; end if;
      end $$;
      grant create on database ${(await rowsOf<{ d: string }>(db, 'select current_database() as d'))[0]!.d} to project_owner;
      grant usage on schema auth to project_owner;
      grant usage on schema vault to project_owner;
      grant select, delete on vault.secrets, vault.decrypted_secrets to project_owner;
      grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid) to project_owner;
    `);
    const schema = uniqueSchema();
    await db.exec('set role project_owner');
    try {
      await migrate({ client: db, schema });
    } finally {
      await db.exec('reset role');
    }
    const t = `"${schema}"`;
    const user = crypto.randomUUID();
    const aad = JSON.stringify(['agent-smtp/smtp-config-password/v1', user, 'smtp_1']);
    const as = (role: string, claims: Record<string, unknown>, sql: string, params: unknown[] = []) =>
      db.transaction(async (tx) => {
        await tx.query(`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, [role, JSON.stringify({ ...claims, role })]);
        return (await tx.query(sql, params)).rows as Record<string, unknown>[];
      });
    const [{ id }] = (await as('authenticated', { sub: user }, `select ${t}.vault_save_secret($1, 'pw-1')::text as id`, [aad])) as [{ id: string }];
    await as(
      'authenticated',
      { sub: user },
      `insert into ${t}.smtp_configs (id, name, host, port, security, username, password_ciphertext, key_id) values ('smtp_1', 'main', 'smtp.example.com', 587, 'starttls', 'u', $1, 'vault')`,
      [id],
    );
    await expect(as('authenticated', { sub: user }, `select ${t}.vault_read_secret($1::uuid, $2)`, [id, aad])).rejects.toMatchObject({ code: '42501' });
    expect(await as('service_role', {}, `select ${t}.vault_read_secret($1::uuid, $2) as secret`, [id, aad])).toEqual([{ secret: 'pw-1' }]);
    await as('authenticated', { sub: user }, `delete from ${t}.smtp_configs where id = 'smtp_1'`);
    expect(await rowsOf(db, 'select 1 from vault.secrets where id = $1', [id])).toEqual([]);
  });

  describe('what it leaves behind', () => {
    const schema = uniqueSchema();
    beforeAll(async () => {
      await migrate({ client: db, schema });
    });

    it('row-level security on every table, and an owner-only policy on every owner table', async () => {
      const tables = await rowsOf<{ relname: string; relrowsecurity: boolean }>(
        db,
        `select c.relname, c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = $1 and c.relkind in ('r', 'p') order by c.relname`,
        [schema],
      );
      expect(tables.map((t) => t.relname).sort()).toEqual([...OWNER_TABLES, 'migrations'].sort());
      expect(tables.filter((t) => !t.relrowsecurity)).toEqual([]);
      const policies = await rowsOf<{ tablename: string; roles: string[] | string; cmd: string; qual: string; with_check: string }>(
        db,
        `select tablename, roles::text[] as roles, cmd, qual, with_check from pg_policies where schemaname = $1 order by tablename`,
        [schema],
      );
      expect(policies.map((p) => p.tablename).sort()).toEqual([...OWNER_TABLES].sort());
      for (const p of policies) {
        expect(p.roles, p.tablename).toEqual(['authenticated']);
        expect(p.cmd, p.tablename).toBe('ALL');
        expect(p.qual, p.tablename).toMatch(/owner_id = \(\( SELECT auth\.uid\(\) AS uid\)\)::text/);
        expect(p.with_check, p.tablename).toBe(p.qual);
      }
    });

    it('owner_id defaults to auth.uid()::text on every owner table', async () => {
      const defaults = await rowsOf<{ table_name: string; column_default: string }>(
        db,
        `select table_name, column_default from information_schema.columns where table_schema = $1 and column_name = 'owner_id' order by table_name`,
        [schema],
      );
      expect(defaults.map((d) => d.table_name).sort()).toEqual([...OWNER_TABLES].sort());
      for (const d of defaults) expect(d.column_default, d.table_name).toBe('(auth.uid())::text');
    });

    it('anon can use nothing; authenticated and service_role can call every function but the vault ones, which alone are security definer', async () => {
      const [usage] = await rowsOf<{ anon: boolean; authenticated: boolean; service_role: boolean }>(
        db,
        `select has_schema_privilege('anon', $1, 'usage') as anon, has_schema_privilege('authenticated', $1, 'usage') as authenticated,
                has_schema_privilege('service_role', $1, 'usage') as service_role`,
        [schema],
      );
      expect(usage).toEqual({ anon: false, authenticated: true, service_role: true });
      const functions = await rowsOf<{ proname: string; anon: boolean; authenticated: boolean; service_role: boolean; definer: boolean }>(
        db,
        `select p.proname, has_function_privilege('anon', p.oid, 'execute') as anon,
                has_function_privilege('authenticated', p.oid, 'execute') as authenticated,
                has_function_privilege('service_role', p.oid, 'execute') as service_role, p.prosecdef as definer
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1 order by p.proname`,
        [schema],
      );
      expect(functions.length).toBeGreaterThan(30);
      // Vault mode's functions run as their owner (the API roles have no rights on the vault schema) and check the
      // caller themselves; reading a secret is the service role's only, the trigger function nobody's.
      const vault = ['vault_forget_secrets', 'vault_read_secret', 'vault_save_secret'];
      expect(functions.filter((f) => !vault.includes(f.proname) && (f.anon || !f.authenticated || !f.service_role || f.definer))).toEqual([]);
      expect(functions.filter((f) => vault.includes(f.proname))).toEqual([
        { proname: 'vault_forget_secrets', anon: false, authenticated: false, service_role: false, definer: true },
        { proname: 'vault_read_secret', anon: false, authenticated: false, service_role: true, definer: true },
        { proname: 'vault_save_secret', anon: false, authenticated: true, service_role: true, definer: true },
      ]);
      const tables = await rowsOf<{ relname: string; anon: boolean; authenticated: boolean; service_role: boolean }>(
        db,
        `select c.relname, has_table_privilege('anon', c.oid, 'select, insert, update, delete') as anon,
                has_table_privilege('authenticated', c.oid, 'select') as authenticated,
                has_table_privilege('service_role', c.oid, 'select, insert, update, delete') as service_role
         from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r' order by c.relname`,
        [schema],
      );
      expect(tables.filter((t) => t.anon || !t.service_role || t.authenticated !== (t.relname !== 'migrations'))).toEqual([]);
    });
  });
});
