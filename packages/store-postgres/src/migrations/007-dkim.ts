/**
 * DKIM signing per stored SMTP config: domain, selector and the private key, which arrives encrypted like the
 * password (AES-256-GCM in the SDK, bound to owner, id and a purpose of its own) under its own key id, since an edit
 * that keeps the password can leave it under an older key than a new DKIM key.
 *
 * `smtp_config_save` gains the DKIM parameters, so it is dropped and created again (a second overload would make a
 * Supabase `rpc()` by name ambiguous). The other functions return `setof smtp_configs` and so the new columns as
 * they are; rotation lists and replaces DKIM keys too.
 */
export const migration007 = String.raw`
alter table {{schema}}.smtp_configs
  add column dkim_domain         text,
  add column dkim_selector       text,
  add column dkim_key_ciphertext text,
  add column dkim_key_id         text,
  add constraint smtp_configs_dkim_key_with_ciphertext check ((dkim_key_ciphertext is null) = (dkim_key_id is null)),
  add constraint smtp_configs_dkim_all_or_none check (
    (dkim_domain is null) = (dkim_selector is null) and (dkim_domain is null) = (dkim_key_ciphertext is null));
create index smtp_configs_dkim_key_idx on {{schema}}.smtp_configs (dkim_key_id, owner_id, id) where dkim_key_id is not null;

drop function {{schema}}.smtp_config_save(text, text, text, text, integer, text, text, text, text, boolean, text, text, boolean, boolean);

-- As in 004, plus DKIM: p_keep_dkim_key leaves the stored DKIM ciphertext and key id as they are; a null
-- p_dkim_domain clears all four DKIM columns.
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
  p_active boolean,
  p_dkim_domain text,
  p_dkim_selector text,
  p_dkim_key_ciphertext text,
  p_dkim_key_id text,
  p_keep_dkim_key boolean
)
returns setof {{schema}}.smtp_configs
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  v_default boolean;
  v_dkim_key_ciphertext text;
  v_dkim_key_id text;
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('agent-smtp smtp_configs ' || p_owner_id, 0));
  -- The kept key is read first (under the owner's lock): the row proposed for insert must pass the checks already.
  if p_dkim_domain is null then
    v_dkim_key_ciphertext := null;
    v_dkim_key_id := null;
  elsif p_keep_dkim_key then
    select c.dkim_key_ciphertext, c.dkim_key_id into v_dkim_key_ciphertext, v_dkim_key_id
    from {{schema}}.smtp_configs c where c.owner_id = p_owner_id and c.id = p_id;
  else
    v_dkim_key_ciphertext := p_dkim_key_ciphertext;
    v_dkim_key_id := p_dkim_key_id;
  end if;
  v_default := coalesce(p_is_default, false) or (coalesce(p_active, true) and not exists (
    select 1 from {{schema}}.smtp_configs c where c.owner_id = p_owner_id and c.is_default and c.id <> p_id));
  if coalesce(p_is_default, false) then
    update {{schema}}.smtp_configs c set is_default = false where c.owner_id = p_owner_id and c.is_default and c.id <> p_id;
  end if;
  return query
  insert into {{schema}}.smtp_configs as c (
    owner_id, id, name, host, port, security, username, password_ciphertext, key_id, from_address, from_name, is_default, active,
    dkim_domain, dkim_selector, dkim_key_ciphertext, dkim_key_id
  ) values (
    p_owner_id, p_id, p_name, p_host, p_port, p_security, p_username,
    case when p_keep_password then null else p_password_ciphertext end,
    case when p_keep_password then null else p_key_id end,
    p_from_address, p_from_name, v_default, coalesce(p_active, true),
    p_dkim_domain,
    case when p_dkim_domain is null then null else p_dkim_selector end,
    v_dkim_key_ciphertext,
    v_dkim_key_id
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
    dkim_domain = excluded.dkim_domain,
    dkim_selector = excluded.dkim_selector,
    dkim_key_ciphertext = excluded.dkim_key_ciphertext,
    dkim_key_id = excluded.dkim_key_id,
    updated_at = now()
  returning c.*;
end;
$$;

-- As in 004, plus configs whose DKIM key is under another key.
create or replace function {{schema}}.smtp_config_list_for_rotation(
  p_key_id text, p_owner_id text, p_after_owner_id text, p_after_id text, p_limit integer
)
returns setof {{schema}}.smtp_configs
language sql stable security invoker set search_path = ''
as $$
  select c.* from {{schema}}.smtp_configs c
  where ((c.key_id is not null and c.key_id <> p_key_id) or (c.dkim_key_id is not null and c.dkim_key_id <> p_key_id))
    and (p_owner_id is null or c.owner_id = p_owner_id)
    and (p_after_owner_id is null
         or (c.owner_id collate "C", c.id collate "C") > (p_after_owner_id collate "C", p_after_id collate "C"))
  order by c.owner_id collate "C", c.id collate "C"
  limit p_limit;
$$;

-- smtp_config_replace_password for the DKIM key: a key saved meanwhile wins; updated_at stays.
create function {{schema}}.smtp_config_replace_dkim_key(
  p_owner_id text, p_id text, p_expected text, p_dkim_key_id text, p_dkim_key_ciphertext text
)
returns boolean
language sql volatile security invoker set search_path = ''
as $$
  with replaced as (
    update {{schema}}.smtp_configs c
    set dkim_key_ciphertext = p_dkim_key_ciphertext, dkim_key_id = p_dkim_key_id
    where c.owner_id = p_owner_id and c.id = p_id and c.dkim_key_ciphertext = p_expected
    returning 1
  )
  select exists (select 1 from replaced);
$$;
`;
