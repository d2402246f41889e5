import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { ConfigError } from '../errors/config-error.js';
import type { CredentialStore, SmtpConfigWrite, StoredSmtpConfig } from '../store/mail-store.js';
import { checkSmtpHost, connectToCheckedHost, type HostPolicy, type LookupFn } from './host-guard.js';
import { type KeyRingOptions, type SecretKeeper, toSecretKeeper } from './key-ring.js';
import {
  describeDkimKey,
  describePassword,
  dkimKeyAdditionalData,
  mergeSmtpConfigInput,
  passwordAdditionalData,
  type SmtpConfigInput,
  type SmtpConfigSummary,
  type SmtpServerDefaults,
  toSmtpConfigSummary,
  toSmtpServerConfig,
} from './smtp-config.js';
import { testSmtpConnection } from './test-smtp-connection.js';

/** What the stored-config functions work on. */
export interface SmtpConfigContext {
  /** A store with a `credentials` part (MemoryStore, the Postgres and Supabase stores). */
  store: { readonly credentials?: CredentialStore | undefined };
  /**
   * What encrypts the configs' passwords and DKIM keys: `{ current, keys }` (AES-256-GCM in this process), a `KeyRing`,
   * or another `SecretKeeper` such as `supabaseVault()` (the secrets in Supabase Vault).
   */
  keyRing: KeyRingOptions | SecretKeeper;
  /** Merged into every server a stored config becomes, the connection test's included (a private CA, timeouts). */
  serverDefaults?: SmtpServerDefaults | undefined;
  /**
   * Which hosts users' configs may reach, checked when a config is saved and again whenever it is resolved. Default:
   * public addresses only (no loopback, private, link-local, metadata, …); `{ allowPrivate: true }` for a deployment
   * whose users' servers are on its own network, `{ allowHosts: ['relay.internal'] }` for one internal relay.
   */
  hosts?: HostPolicy | undefined;
  /** How host names are looked up: `dns.promises.lookup` by default. For tests, or a resolver of your own. */
  lookup?: LookupFn | undefined;
}

export interface SaveSmtpConfigOptions {
  /** Connect and log in before saving, and save nothing if that fails. Default true. */
  test?: boolean | undefined;
}

/**
 * Creates a config (input without `id`) or edits one of the owner's (with its `id`). Checks the host against
 * `context.hosts` (`ValidationError` of `host` when refused, `test: false` or not), then tests the connection to the
 * checked address unless `test: false`, and stores nothing when either fails (`SmtpError` naming the field to fix). The password
 * is encrypted under the key ring's current key with the owner and config id as additional data. Returns the config
 * without its password.
 */
export async function saveSmtpConfig(
  context: SmtpConfigContext,
  ownerId: string,
  input: SmtpConfigInput,
  options: SaveSmtpConfigOptions = {},
): Promise<SmtpConfigSummary> {
  const { store, keyRing } = open(context);
  const existing = input?.id === undefined ? undefined : await store.get(ownerId, input.id);
  if (input?.id !== undefined && !existing) throw notFound(ownerId, input.id);
  const merged = mergeSmtpConfigInput(input, existing);
  const id = existing?.id ?? `smtp_${crypto.randomUUID()}`;
  const checked = await checkSmtpHost(merged.host, context.hosts ?? {}, { lookup: context.lookup });

  if (options.test !== false) {
    // Editing without a new password tests with the stored one.
    const password =
      merged.password === undefined && existing?.passwordCiphertext !== undefined
        ? await keyRing.decrypt({ keyId: existing.keyId!, ciphertext: existing.passwordCiphertext }, passwordAdditionalData(ownerId, id), describePassword(existing))
        : (merged.password ?? undefined);
    await testSmtpConnection(connectToCheckedHost(toSmtpServerConfig(merged, password, context.serverDefaults), checked), `"${merged.name}"`);
  }

  const secret = typeof merged.password === 'string' ? await keyRing.encrypt(merged.password, passwordAdditionalData(ownerId, id)) : undefined;
  const dkimKey = merged.dkim?.privateKey === undefined ? undefined : await keyRing.encrypt(merged.dkim.privateKey, dkimKeyAdditionalData(ownerId, id));
  const write: SmtpConfigWrite = {
    ownerId,
    id,
    name: merged.name,
    host: merged.host,
    port: merged.port,
    security: merged.security,
    username: merged.username,
    passwordCiphertext: secret?.ciphertext,
    keyId: secret?.keyId,
    keepPassword: merged.password === undefined,
    dkimDomain: merged.dkim?.domainName,
    dkimSelector: merged.dkim?.keySelector,
    dkimKeyCiphertext: dkimKey?.ciphertext,
    dkimKeyId: dkimKey?.keyId,
    keepDkimKey: merged.dkim !== undefined && dkimKey === undefined,
    fromAddress: merged.fromAddress,
    fromName: merged.fromName,
    isDefault: merged.isDefault,
    active: merged.active,
  };
  return toSmtpConfigSummary(await store.save(write));
}

/** The owner's configs, oldest first, without passwords. */
export async function listSmtpConfigs(context: Pick<SmtpConfigContext, 'store'>, ownerId: string): Promise<SmtpConfigSummary[]> {
  return (await credentialStore(context).list(ownerId)).map(toSmtpConfigSummary);
}

/** One of the owner's configs without its password, or undefined. */
export async function getSmtpConfig(context: Pick<SmtpConfigContext, 'store'>, ownerId: string, id: string): Promise<SmtpConfigSummary | undefined> {
  const config = await credentialStore(context).get(ownerId, id);
  return config ? toSmtpConfigSummary(config) : undefined;
}

/** Deletes one of the owner's configs; false when there was none. Deleting the default makes the oldest active one the default. */
export async function deleteSmtpConfig(context: Pick<SmtpConfigContext, 'store'>, ownerId: string, id: string): Promise<boolean> {
  return credentialStore(context).delete(ownerId, id);
}

/** Makes one of the owner's configs the default. Throws `NOT_FOUND` when the owner has none with this id. */
export async function setDefaultSmtpConfig(context: Pick<SmtpConfigContext, 'store'>, ownerId: string, id: string): Promise<SmtpConfigSummary> {
  const config = await credentialStore(context).setDefault(ownerId, id);
  if (!config) throw notFound(ownerId, id);
  return toSmtpConfigSummary(config);
}

export interface RotateKeysResult {
  /** Secrets (passwords and DKIM keys) re-encrypted under the current key. */
  rotated: number;
  /** Secrets that changed while being rotated (saved again meanwhile, so already under the current key). */
  skipped: number;
}

/**
 * Re-encrypts every stored password and DKIM key (of every owner, or of `ownerId`) that is not under the key ring's current key,
 * with a fresh IV. A config saved meanwhile is left as saved. Passwords that do not decrypt (a key missing from the
 * ring, a copied ciphertext) are left as they are and reported together in one `ConfigError` after the rest are
 * done. Afterwards, keys other than the current one can leave the ring.
 */
export async function rotateKeys(
  context: Pick<SmtpConfigContext, 'store' | 'keyRing'>,
  options: { ownerId?: string | undefined; batchSize?: number | undefined } = {},
): Promise<RotateKeysResult> {
  const { store, keyRing } = open(context);
  const result: RotateKeysResult = { rotated: 0, skipped: 0 };
  const failures: { config: StoredSmtpConfig; error: unknown }[] = [];
  const limit = options.batchSize ?? 100;
  let after: { ownerId: string; id: string } | undefined;
  for (;;) {
    const batch = await store.listForRotation({ keyId: keyRing.currentKeyId, ownerId: options.ownerId, after, limit });
    for (const config of batch) {
      try {
        if (config.keyId !== undefined && config.keyId !== keyRing.currentKeyId) {
          const aad = passwordAdditionalData(config.ownerId, config.id);
          const password = await keyRing.decrypt({ keyId: config.keyId, ciphertext: config.passwordCiphertext! }, aad, describePassword(config));
          const next = await keyRing.encrypt(password, aad);
          const replaced = await store.replacePassword(config.ownerId, config.id, config.passwordCiphertext!, { keyId: next.keyId, passwordCiphertext: next.ciphertext });
          if (replaced) result.rotated++;
          else result.skipped++;
        }
        if (config.dkimKeyId !== undefined && config.dkimKeyId !== keyRing.currentKeyId) {
          const aad = dkimKeyAdditionalData(config.ownerId, config.id);
          const key = await keyRing.decrypt({ keyId: config.dkimKeyId, ciphertext: config.dkimKeyCiphertext! }, aad, describeDkimKey(config));
          const next = await keyRing.encrypt(key, aad);
          const replaced = await store.replaceDkimKey(config.ownerId, config.id, config.dkimKeyCiphertext!, { dkimKeyId: next.keyId, dkimKeyCiphertext: next.ciphertext });
          if (replaced) result.rotated++;
          else result.skipped++;
        }
      } catch (error) {
        if (!AgentSmtpError.isInstance(error)) throw error;
        failures.push({ config, error });
      }
    }
    if (batch.length < limit) break;
    const last = batch[batch.length - 1]!;
    after = { ownerId: last.ownerId, id: last.id };
  }
  if (failures.length > 0) {
    const first = failures[0]!.error as AgentSmtpError;
    const list = failures.slice(0, 10).map(({ config }) => `"${config.name}" (id ${config.id}, owner ${config.ownerId}, key ${config.keyId})`);
    throw new ConfigError(
      `rotateKeys re-encrypted ${result.rotated} secret(s) but could not decrypt ${failures.length}: ${list.join(', ')}${failures.length > 10 ? ', …' : ''}. ` +
        `First reason: ${first.message}`,
      { setting: (first as Partial<ConfigError>).setting ?? 'keyRing', cause: first },
    );
  }
  return result;
}

function credentialStore(context: Pick<SmtpConfigContext, 'store'>): CredentialStore {
  const store = context.store?.credentials;
  if (!store) {
    throw new ConfigError('This store has no credentials part, so it cannot keep SMTP configs: use MemoryStore or the Postgres or Supabase store.', {
      setting: 'store',
    });
  }
  return store;
}

function open(context: Pick<SmtpConfigContext, 'store' | 'keyRing'>): { store: CredentialStore; keyRing: SecretKeeper } {
  return { store: credentialStore(context), keyRing: toSecretKeeper(context.keyRing) };
}

function notFound(ownerId: string, id: string): AgentSmtpError {
  return new AgentSmtpError('NOT_FOUND', `Owner "${ownerId}" has no SMTP config with id "${id}": listSmtpConfigs shows the ids.`);
}
