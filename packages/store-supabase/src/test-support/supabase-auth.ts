import type { PostgresClient } from '@agent-smtp/store-postgres';

/**
 * What a Supabase project has before any migration of ours, for tests on plain PostgreSQL or PGlite: the API roles
 * as Supabase creates them (`anon` and `authenticated` without rights of their own, `service_role` with BYPASSRLS,
 * the `authenticator` login role PostgREST connects as, granted the three) and `auth.uid()`, `auth.role()` and
 * `auth.jwt()` reading the claims PostgREST puts in `request.jwt.claims` (and the older `request.jwt.claim.*`), as
 * Supabase Auth's migrations define them. Roles are cluster-wide and a test server is shared, so everything is
 * created only if missing, under an advisory lock, and never dropped.
 */
export const SUPABASE_AUTH_SQL = String.raw`
do $agent_smtp_auth$
begin
  perform pg_advisory_xact_lock(hashtextextended('agent-smtp supabase auth emulation', 0));
  if not exists (select 1 from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then create role authenticator login noinherit; end if;
  if not exists (select 1 from pg_auth_members m join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member
                 where u.rolname = 'authenticator' and r.rolname = 'service_role') then
    grant anon, authenticated, service_role to authenticator;
  end if;
  if not exists (select 1 from pg_namespace where nspname = 'auth') then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
    create function auth.uid() returns uuid language sql stable as $f$
      select nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                             (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')), '')::uuid
    $f$;
    create function auth.role() returns text language sql stable as $f$
      select nullif(coalesce(current_setting('request.jwt.claim.role', true),
                             (current_setting('request.jwt.claims', true)::jsonb ->> 'role')), '')::text
    $f$;
    create function auth.jwt() returns jsonb language sql stable as $f$
      select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                      nullif(current_setting('request.jwt.claims', true), ''))::jsonb
    $f$;
  end if;
end
$agent_smtp_auth$`;

/**
 * Supabase Vault as the `supabase_vault` extension (0.3) sets it up, for what the store relies on: `vault.secrets` (the
 * `secret` column holds the encrypted secret), the `vault.decrypted_secrets` view, `vault.create_secret` and
 * `vault.update_secret` as `security definer` functions of `supabase_admin`, and the grants Supabase gives `postgres`
 * and `service_role` (usage on the schema, select and delete on the table and the view, execute on the two
 * functions); nothing for `anon` or `authenticated`. The "encryption" is base64, standing in for libsodium: what the
 * tests check is who can reach the secrets, not the cipher. Created once per database; an older emulation (plain
 * functions, no grants) is brought up to this one in place.
 */
export const SUPABASE_VAULT_SQL = String.raw`
do $agent_smtp_vault$
begin
  perform pg_advisory_xact_lock(hashtextextended('agent-smtp supabase vault emulation', 0));
  if not exists (select 1 from pg_roles where rolname = 'supabase_admin') then create role supabase_admin nologin; end if;
  if not exists (select 1 from pg_namespace where nspname = 'vault') then
    create schema vault;
    revoke all on schema vault from public;
    create table vault.secrets (
      id uuid primary key default gen_random_uuid(),
      name text,
      description text not null default '',
      secret text not null,
      key_id uuid,
      nonce bytea,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create unique index secrets_name_idx on vault.secrets (name) where name is not null;
    create view vault.decrypted_secrets as
      select s.*, convert_from(decode(s.secret, 'base64'), 'utf8') as decrypted_secret from vault.secrets s;
    create function vault.create_secret(new_secret text, new_name text default null, new_description text default '', new_key_id uuid default null)
    returns uuid language sql as $f$
      insert into vault.secrets (secret, name, description, key_id)
      values (encode(convert_to(new_secret, 'utf8'), 'base64'), new_name, coalesce(new_description, ''), new_key_id) returning id
    $f$;
    create function vault.update_secret(secret_id uuid, new_secret text default null, new_name text default null, new_description text default null, new_key_id uuid default null)
    returns void language sql as $f$
      update vault.secrets set
        secret = coalesce(encode(convert_to(new_secret, 'utf8'), 'base64'), secret),
        name = coalesce(new_name, name), description = coalesce(new_description, description),
        key_id = coalesce(new_key_id, key_id), updated_at = now()
      where id = secret_id
    $f$;
  end if;
  if (select proowner <> 'supabase_admin'::regrole or not prosecdef from pg_proc where oid = 'vault.create_secret(text, text, text, uuid)'::regprocedure) then
    alter schema vault owner to supabase_admin;
    alter table vault.secrets owner to supabase_admin;
    alter view vault.decrypted_secrets owner to supabase_admin;
    alter function vault.create_secret(text, text, text, uuid) owner to supabase_admin;
    alter function vault.update_secret(uuid, text, text, text, uuid) owner to supabase_admin;
    alter function vault.create_secret(text, text, text, uuid) security definer set search_path = '';
    alter function vault.update_secret(uuid, text, text, text, uuid) security definer set search_path = '';
    revoke all on all tables in schema vault from public;
    revoke all on all functions in schema vault from public;
    grant usage on schema vault to postgres, service_role;
    grant select, delete on vault.secrets, vault.decrypted_secrets to postgres, service_role;
    grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid) to postgres, service_role;
  end if;
end
$agent_smtp_vault$`;

export async function installSupabaseAuth(client: PostgresClient): Promise<void> {
  await client.query(SUPABASE_AUTH_SQL);
  await client.query(SUPABASE_VAULT_SQL);
}
