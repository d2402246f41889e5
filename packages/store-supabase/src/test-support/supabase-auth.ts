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

export async function installSupabaseAuth(client: PostgresClient): Promise<void> {
  await client.query(SUPABASE_AUTH_SQL);
}
