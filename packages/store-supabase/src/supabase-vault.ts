import { ConfigError, type EncryptedSecret, type SecretKeeper } from '@agent-smtp/core';
import { SchemaRpc, SupabaseRpcError, type SupabaseRpcClient } from './supabase-rpc.js';
import { checkOptions } from './supabase-store.js';

/** The key id of a secret kept in Supabase Vault: the config row's "ciphertext" is then the vault secret's id. */
export const VAULT_KEY_ID = 'vault';

/**
 * Vault mode (migration 1002): SMTP passwords and DKIM keys as secrets in Supabase Vault (`vault.secrets`, encrypted
 * at rest by Supabase), a config row holding only the secret's id under the key id `vault`.
 *
 * - `vault_save_secret(p_additional_data, p_secret)`: creates a new secret named `"<schema>":` + the SDK's additional
 *   data in jsonb's text form (`["agent-smtp/smtp-config-password/v1", owner, config]`) + `/` + a random uuid, for
 *   the owner it names only: the caller must be that user (`auth.uid()`) or the service role. Returns its id. Never
 *   changes a secret in place: a config row whose save is then refused keeps the secret it had, and the new one,
 *   which nothing refers to, is deleted by a later save of that owner once 15 minutes old.
 * - `vault_read_secret(p_id, p_additional_data)`: the secret in clear, only for the service role (execute granted to
 *   it alone, and checked again inside), and only when the owner's config named by the additional data exists and
 *   refers to this secret id: an id copied into another owner's or config's row reads nothing (null).
 * - A trigger deletes a config's vault secret when the config is deleted or its row refers to another secret.
 *
 * The three functions are `security definer` (owned by the role that migrates: `postgres` in a Supabase project,
 * which may use `vault.create_secret` and read and delete `vault.secrets`) with an empty `search_path`, and plpgsql,
 * so the migration applies where Vault is not installed; the functions then fail when called, naming `vault`.
 */
export const vaultMigrationSql = String.raw`
create function {{schema}}.vault_save_secret(p_additional_data text, p_secret text) returns uuid
language plpgsql volatile security definer set search_path = '' as $fn$
declare
  v_ref jsonb;
  v_owner_prefix text;
begin
  begin
    v_ref := p_additional_data::jsonb;
  exception when others then
    v_ref := null;
  end;
  if v_ref is null or jsonb_typeof(v_ref) <> 'array' or jsonb_array_length(v_ref) <> 3
     or (v_ref ->> 0) not in ('agent-smtp/smtp-config-password/v1', 'agent-smtp/smtp-config-dkim-key/v1')
     or coalesce(v_ref ->> 1, '') = '' or coalesce(v_ref ->> 2, '') = '' then
    raise exception 'p_additional_data must name a secret of a stored SMTP config, as the SDK writes it' using errcode = '22023';
  end if;
  if p_secret is null or length(p_secret) > 16384 then
    raise exception 'p_secret must be given, at most 16384 characters' using errcode = '22023';
  end if;
  if coalesce((select auth.jwt()) ->> 'role', '') <> 'service_role' and (v_ref ->> 1) is distinct from (select auth.uid())::text then
    raise exception 'only the owner of an SMTP config (or the service role) may store its secrets' using errcode = '42501';
  end if;
  -- Secrets this owner saved over 15 minutes ago that no config refers to: saves whose config row was then refused.
  foreach v_owner_prefix in array array[
    '{{schema}}:' || jsonb_build_array('agent-smtp/smtp-config-password/v1', v_ref ->> 1)::text,
    '{{schema}}:' || jsonb_build_array('agent-smtp/smtp-config-dkim-key/v1', v_ref ->> 1)::text
  ] loop
    delete from vault.secrets s
    where starts_with(s.name, left(v_owner_prefix, -1) || ', ') and s.created_at < now() - interval '15 minutes'
      and not exists (
        select 1 from {{schema}}.smtp_configs c
        where c.owner_id = (v_ref ->> 1) and ((c.key_id = 'vault' and c.password_ciphertext = s.id::text) or (c.dkim_key_id = 'vault' and c.dkim_key_ciphertext = s.id::text))
      );
  end loop;
  -- Always a new secret, never one changed in place: the config row keeps the old one until its own save commits,
  -- and the trigger below deletes the old one then.
  return vault.create_secret(p_secret, '{{schema}}:' || v_ref::text || '/' || gen_random_uuid()::text, 'agent-smtp: ' || (v_ref ->> 0) || ' of SMTP config ' || (v_ref ->> 2));
end
$fn$;

create function {{schema}}.vault_read_secret(p_id uuid, p_additional_data text) returns text
language plpgsql stable security definer set search_path = '' as $fn$
declare
  v_ref jsonb;
  v_secret text;
begin
  if coalesce((select auth.jwt()) ->> 'role', '') <> 'service_role' then
    raise exception 'only the service role may read SMTP secrets from the vault' using errcode = '42501';
  end if;
  begin
    v_ref := p_additional_data::jsonb;
  exception when others then
    return null;
  end;
  if jsonb_typeof(v_ref) <> 'array' then
    return null;
  end if;
  -- The owner's config must refer to this very secret: an id copied into another row reads nothing.
  if not exists (
    select 1 from {{schema}}.smtp_configs c
    where c.owner_id = (v_ref ->> 1) and c.id = (v_ref ->> 2)
      and ((v_ref ->> 0 = 'agent-smtp/smtp-config-password/v1' and c.key_id = 'vault' and c.password_ciphertext = p_id::text)
        or (v_ref ->> 0 = 'agent-smtp/smtp-config-dkim-key/v1' and c.dkim_key_id = 'vault' and c.dkim_key_ciphertext = p_id::text))
  ) then
    return null;
  end if;
  select d.decrypted_secret into v_secret from vault.decrypted_secrets d
  where d.id = p_id and starts_with(d.name, '{{schema}}:' || v_ref::text || '/');
  return v_secret;
end
$fn$;

create function {{schema}}.vault_forget_secrets() returns trigger
language plpgsql security definer set search_path = '' as $fn$
declare
  v_uuid constant text := '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
begin
  if old.key_id = 'vault' and old.password_ciphertext ~ v_uuid
     and (tg_op = 'DELETE' or new.password_ciphertext is distinct from old.password_ciphertext) then
    delete from vault.secrets s where s.id = old.password_ciphertext::uuid
      and starts_with(s.name, '{{schema}}:' || jsonb_build_array('agent-smtp/smtp-config-password/v1', old.owner_id, old.id)::text || '/');
  end if;
  if old.dkim_key_id = 'vault' and old.dkim_key_ciphertext ~ v_uuid
     and (tg_op = 'DELETE' or new.dkim_key_ciphertext is distinct from old.dkim_key_ciphertext) then
    delete from vault.secrets s where s.id = old.dkim_key_ciphertext::uuid
      and starts_with(s.name, '{{schema}}:' || jsonb_build_array('agent-smtp/smtp-config-dkim-key/v1', old.owner_id, old.id)::text || '/');
  end if;
  return null;
end
$fn$;

create trigger smtp_configs_vault_forget after update or delete on {{schema}}.smtp_configs
  for each row when (old.key_id = 'vault' or old.dkim_key_id = 'vault')
  execute function {{schema}}.vault_forget_secrets();

revoke all on function {{schema}}.vault_save_secret(text, text) from public, anon;
grant execute on function {{schema}}.vault_save_secret(text, text) to authenticated, service_role;
revoke all on function {{schema}}.vault_read_secret(uuid, text) from public, anon, authenticated;
grant execute on function {{schema}}.vault_read_secret(uuid, text) to service_role;
revoke all on function {{schema}}.vault_forget_secrets() from public, anon, authenticated, service_role;
`;

export interface SupabaseVaultOptions {
  /**
   * A supabase-js v2 client. Reading secrets needs the service-role client (a worker's); a client made with a user's
   * JWT may only store that user's secrets (saving a config with its password, `{ test: false }` when editing one
   * without a new password, since the connection test would need the stored password).
   */
  client: SupabaseRpcClient;
  /** The schema the migration made. Default `agent_smtp`. */
  schema?: string;
}

/**
 * Keeps stored SMTP configs' passwords and DKIM keys in Supabase Vault instead of encrypting them with a key ring:
 * `storedCredentials({ store, keyRing: supabaseVault({ client }) })`. The config row holds the vault secret's id;
 * no key to keep, and the secret in clear is readable only by the service role, for the config that refers to it.
 */
export function supabaseVault(options: SupabaseVaultOptions): SecretKeeper {
  const schema = checkOptions(options, 'supabaseVault');
  return new SupabaseVault(new SchemaRpc(options.client, schema));
}

class SupabaseVault implements SecretKeeper {
  readonly currentKeyId = VAULT_KEY_ID;
  #refused: SupabaseRpcError | undefined;

  constructor(private readonly rpc: SchemaRpc) {}

  async encrypt(plaintext: string, additionalData: string): Promise<EncryptedSecret> {
    const id = await this.rpc.call('vault_save_secret', { p_additional_data: additionalData, p_secret: plaintext });
    if (typeof id !== 'string') throw new Error(`${this.rpc.schema}.vault_save_secret answered ${JSON.stringify(id)} instead of a secret id.`);
    return { keyId: VAULT_KEY_ID, ciphertext: id };
  }

  async decrypt(secret: EncryptedSecret, additionalData: string, what = 'a stored secret'): Promise<string> {
    if (secret.keyId !== VAULT_KEY_ID) {
      throw new ConfigError(
        `${capitalize(what)} was encrypted with key-ring key "${secret.keyId}", but this service reads secrets from Supabase Vault: save the config again with its password (it then goes to the vault), or use keyRing: { current, keys } for it.`,
        { setting: 'keyRing' },
      );
    }
    // Known once refused: this keeper's client stays the same, so it is not asked again.
    if (this.#refused) throw notReadable(what, this.#refused);
    let value: unknown;
    try {
      value = await this.rpc.call('vault_read_secret', { p_id: secret.ciphertext, p_additional_data: additionalData });
    } catch (error) {
      if (error instanceof SupabaseRpcError && error.code === '42501') {
        this.#refused = error;
        throw notReadable(what, error);
      }
      throw error;
    }
    if (typeof value !== 'string') {
      throw new ConfigError(`${capitalize(what)} is not in Supabase Vault (deleted, or the config's row refers to another config's secret): save the config again with its password.`, {
        setting: 'keyRing',
      });
    }
    return value;
  }

  toJSON(): string {
    return `[SupabaseVault ${this.rpc.schema}]`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SupabaseVault { schema: ${this.rpc.schema} }`;
  }
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

function notReadable(what: string, cause: SupabaseRpcError): ConfigError {
  return new ConfigError(
    `${capitalize(what)} is in Supabase Vault, which only the service role may read: send from a worker made with the service-role client (a user's client may enqueue; to edit a config without giving its password again, save it with { test: false }).`,
    { setting: 'keyRing', cause, secretNotReadableHere: true },
  );
}
