/**
 * Each owner's named SMTP configs (`CredentialStore`), and every read and write of them as a SQL function, so the
 * Supabase store calls the same functions over `rpc()`.
 *
 * Only the password is secret, and it arrives already encrypted (AES-256-GCM in the SDK, bound to owner and id):
 * the database never sees it in plaintext. The `credentials` table of 001 (opaque named blobs) stays as it was:
 * nothing in the SDK reads it any more, and dropping it would delete whatever an application kept there.
 *
 * Writes of one owner's configs take a transaction-scoped advisory lock on the owner, so "the first active config
 * becomes the default" and "deleting the default promotes the next" hold under concurrent calls; the partial unique
 * index is the backstop for at most one default per owner.
 */
export const migration004 = String.raw`
create table {{schema}}.smtp_configs (
  owner_id            text not null,
  id                  text not null,
  name                text not null,
  host                text not null,
  port                integer not null check (port between 1 and 65535),
  security            text not null check (security in ('tls', 'starttls', 'none')),
  username            text,
  password_ciphertext text,
  key_id              text,
  from_address        text,
  from_name           text,
  is_default          boolean not null default false,
  active              boolean not null default true,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  -- Creation order for lists: created_at alone ties within one transaction.
  seq                 bigint generated always as identity,
  primary key (owner_id, id),
  constraint smtp_configs_owner_name unique (owner_id, name),
  constraint smtp_configs_key_with_ciphertext check ((password_ciphertext is null) = (key_id is null))
);
create unique index smtp_configs_one_default on {{schema}}.smtp_configs (owner_id) where is_default;
-- Rotation walks configs not under the current key in (owner_id, id) order.
create index smtp_configs_key_idx on {{schema}}.smtp_configs (key_id, owner_id, id) where key_id is not null;

-- Inserts or replaces the owner's config p_id. p_keep_password leaves the stored ciphertext and key id as they are.
-- A name another config of the owner has raises unique_violation on constraint smtp_configs_owner_name.
create function {{schema}}.smtp_config_save(
  p_owner_id text,
  p_id text,
  p_name text,
  p_host text,
  p_port integer,
  p_security text,
  p_username text,
  p_password_ciphertext text,
  p_key_id text,
  p_keep_password boolean,
  p_from_address text,
  p_from_name text,
  p_is_default boolean,
  p_active boolean
)
returns setof {{schema}}.smtp_configs
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  v_default boolean;
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('agent-smtp smtp_configs ' || p_owner_id, 0));
  v_default := coalesce(p_is_default, false) or (coalesce(p_active, true) and not exists (
    select 1 from {{schema}}.smtp_configs c where c.owner_id = p_owner_id and c.is_default and c.id <> p_id));
  if coalesce(p_is_default, false) then
    update {{schema}}.smtp_configs c set is_default = false where c.owner_id = p_owner_id and c.is_default and c.id <> p_id;
  end if;
  return query
  insert into {{schema}}.smtp_configs as c (
    owner_id, id, name, host, port, security, username, password_ciphertext, key_id, from_address, from_name, is_default, active
  ) values (
    p_owner_id, p_id, p_name, p_host, p_port, p_security, p_username,
    case when p_keep_password then null else p_password_ciphertext end,
    case when p_keep_password then null else p_key_id end,
    p_from_address, p_from_name, v_default, coalesce(p_active, true)
  )
  on conflict (owner_id, id) do update set
    name = excluded.name,
    host = excluded.host,
    port = excluded.port,
    security = excluded.security,
    username = excluded.username,
    password_ciphertext = case when p_keep_password then c.password_ciphertext else excluded.password_ciphertext end,
    key_id = case when p_keep_password then c.key_id else excluded.key_id end,
    from_address = excluded.from_address,
    from_name = excluded.from_name,
    is_default = excluded.is_default,
    active = excluded.active,
    updated_at = now()
  returning c.*;
end;
$$;

create function {{schema}}.smtp_config_get(p_owner_id text, p_id text)
returns setof {{schema}}.smtp_configs
language sql stable security invoker set search_path = ''
as $$
  select c.* from {{schema}}.smtp_configs c where c.owner_id = p_owner_id and c.id = p_id;
$$;

create function {{schema}}.smtp_config_list(p_owner_id text)
returns setof {{schema}}.smtp_configs
language sql stable security invoker set search_path = ''
as $$
  select c.* from {{schema}}.smtp_configs c where c.owner_id = p_owner_id order by c.seq;
$$;

-- Deleting the default makes the oldest remaining active config the default.
create function {{schema}}.smtp_config_delete(p_owner_id text, p_id text)
returns boolean
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  v_was_default boolean;
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('agent-smtp smtp_configs ' || p_owner_id, 0));
  delete from {{schema}}.smtp_configs c where c.owner_id = p_owner_id and c.id = p_id returning c.is_default into v_was_default;
  if not found then
    return false;
  end if;
  if v_was_default then
    update {{schema}}.smtp_configs c set is_default = true
    where c.owner_id = p_owner_id and c.id = (
      select n.id from {{schema}}.smtp_configs n where n.owner_id = p_owner_id and n.active order by n.seq limit 1);
  end if;
  return true;
end;
$$;

-- Makes p_id the owner's only default; no row (and no change) when the owner has no such config.
create function {{schema}}.smtp_config_set_default(p_owner_id text, p_id text)
returns setof {{schema}}.smtp_configs
language plpgsql volatile security invoker set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('agent-smtp smtp_configs ' || p_owner_id, 0));
  if not exists (select 1 from {{schema}}.smtp_configs c where c.owner_id = p_owner_id and c.id = p_id) then
    return;
  end if;
  -- Cleared first: the partial unique index is checked row by row.
  update {{schema}}.smtp_configs c set is_default = false where c.owner_id = p_owner_id and c.is_default and c.id <> p_id;
  return query
  update {{schema}}.smtp_configs c set is_default = true where c.owner_id = p_owner_id and c.id = p_id returning c.*;
end;
$$;

-- Configs with a password under a key other than p_key_id, in (owner_id, id) order after the cursor. "C" collation:
-- byte order, the same in every database and the same as MemoryStore's.
create function {{schema}}.smtp_config_list_for_rotation(
  p_key_id text, p_owner_id text, p_after_owner_id text, p_after_id text, p_limit integer
)
returns setof {{schema}}.smtp_configs
language sql stable security invoker set search_path = ''
as $$
  select c.* from {{schema}}.smtp_configs c
  where c.key_id is not null and c.key_id <> p_key_id
    and (p_owner_id is null or c.owner_id = p_owner_id)
    and (p_after_owner_id is null
         or (c.owner_id collate "C", c.id collate "C") > (p_after_owner_id collate "C", p_after_id collate "C"))
  order by c.owner_id collate "C", c.id collate "C"
  limit p_limit;
$$;

-- Re-encryption by key rotation: replaces the ciphertext only while it is still p_expected, so a password saved
-- meanwhile wins. updated_at stays: the config itself did not change.
create function {{schema}}.smtp_config_replace_password(
  p_owner_id text, p_id text, p_expected text, p_key_id text, p_password_ciphertext text
)
returns boolean
language sql volatile security invoker set search_path = ''
as $$
  with replaced as (
    update {{schema}}.smtp_configs c
    set password_ciphertext = p_password_ciphertext, key_id = p_key_id
    where c.owner_id = p_owner_id and c.id = p_id and c.password_ciphertext = p_expected
    returning 1
  )
  select exists (select 1 from replaced);
$$;
`;
