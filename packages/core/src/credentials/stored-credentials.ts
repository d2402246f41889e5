import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import type { StoredSmtpConfig } from '../store/mail-store.js';
import { type CredentialProvider, type CredentialScope, sameServerSet } from './credential-provider.js';
import { type CheckedHost, checkSmtpHost, connectToCheckedHost } from './host-guard.js';
import { type SecretKeeper, toSecretKeeper } from './key-ring.js';
import { describeDkimKey, describePassword, dkimKeyAdditionalData, passwordAdditionalData, type SmtpConfigInput, type SmtpConfigSummary, toSmtpServerConfig } from './smtp-config.js';
import {
  deleteSmtpConfig,
  getSmtpConfig,
  listSmtpConfigs,
  rotateKeys,
  type RotateKeysResult,
  type SaveSmtpConfigOptions,
  saveSmtpConfig,
  setDefaultSmtpConfig,
  type SmtpConfigContext,
} from './smtp-configs.js';

export interface StoredCredentialsOptions extends SmtpConfigContext {
  /**
   * How long an owner's configs are served from memory before the store is read again and their hosts are looked up
   * and checked again, in ms. Changes made through this provider apply at once; changes another process made, and
   * new DNS answers, show after at most this long. Default 5000; 0 reads the store and DNS on every resolve.
   */
  refreshMs?: number | undefined;
  /**
   * Without a `configId`, send through the default config and then fail over to the owner's other active configs
   * (oldest first). Default false: only the default, since another account usually means another sender address.
   */
  failover?: boolean | undefined;
  /** Owners whose configs are kept in memory at once (least recently used leave first). Default 10000. */
  maxCachedOwners?: number | undefined;
}

interface OwnerEntry {
  rows: readonly StoredSmtpConfig[];
  /** The rows as compared between reads, without ciphertexts (a key rotation changes those, not the servers). */
  shape: string;
  loadedAt: number;
  /** A change through this provider made it stale and was reported already: the read that follows reports no more. */
  reported?: boolean;
  /** Resolved server lists by configId ('' for the default), kept so that resolve returns the same array. */
  servers: Map<string, Promise<readonly SmtpServerConfig[]>>;
}

/** The host check of one server list (as built from the store): when it ran, and the list pinned to its addresses. */
interface HostCheck {
  checkedAt: number;
  pinned: Promise<readonly SmtpServerConfig[]>;
  /** The last list that passed: a check that finds the same addresses returns it, so the array stays the same. */
  last: readonly SmtpServerConfig[] | undefined;
}

/**
 * The provider of per-owner stored SMTP configs (`storedCredentials({ store, keyRing })`), and the functions a
 * service exposes to manage them. Changes made through it reach `onChange` listeners at once.
 */
export class StoredCredentialProvider implements CredentialProvider {
  readonly #context: SmtpConfigContext & { keyRing: SecretKeeper };
  /** Keyed by the array built from the store, which stays the same while the rows do. */
  readonly #hostChecks = new WeakMap<readonly SmtpServerConfig[], HostCheck>();
  readonly #refreshMs: number;
  readonly #failover: boolean;
  readonly #maxOwners: number;
  readonly #owners = new Map<string, OwnerEntry>();
  readonly #loading = new Map<string, Promise<OwnerEntry>>();
  readonly #listeners = new Set<(ownerId: string) => void>();
  /** Changes made through this provider, per owner: a read that overlapped one is not trusted as fresh. */
  readonly #changes = new Map<string, number>();

  constructor(options: StoredCredentialsOptions) {
    if (!options?.store?.credentials) {
      throw new ConfigError('storedCredentials needs a store with a credentials part: MemoryStore, or the Postgres or Supabase store.', { setting: 'store' });
    }
    // One SecretKeeper for the provider's life: a KeyRing reuses the keys it imported.
    this.#context = {
      store: options.store,
      keyRing: toSecretKeeper(options.keyRing),
      serverDefaults: options.serverDefaults,
      hosts: options.hosts,
      lookup: options.lookup,
    };
    this.#refreshMs = options.refreshMs ?? 5_000;
    this.#failover = options.failover ?? false;
    this.#maxOwners = options.maxCachedOwners ?? 10_000;
  }

  async resolve(scope: CredentialScope): Promise<readonly SmtpServerConfig[]> {
    const entry = await this.#entry(scope.ownerId);
    const key = scope.configId ?? '';
    let servers = entry.servers.get(key);
    if (!servers) {
      servers = this.#build(entry, scope);
      entry.servers.set(key, servers);
      // A failure (a key missing from the ring) is not remembered: fixing the ring fixes the next resolve.
      servers.catch(() => entry.servers.get(key) === servers && entry.servers.delete(key));
    }
    return this.#checkHosts(await servers, scope.ownerId);
  }

  async resolveWithoutSecrets(scope: CredentialScope): Promise<readonly SmtpServerConfig[]> {
    const chosen = this.#choose((await this.#entry(scope.ownerId)).rows, scope);
    const servers = chosen.map((config, i) => this.#server(config, i, chosen.length));
    // The host policy holds here too: a message is not queued for a server that would be refused at send time.
    await Promise.all(servers.map((server) => this.#checkHost(server, scope.ownerId)));
    return servers;
  }

  onChange(listener: (ownerId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  saveSmtpConfig(ownerId: string, input: SmtpConfigInput, options?: SaveSmtpConfigOptions): Promise<SmtpConfigSummary> {
    return this.#changing(ownerId, saveSmtpConfig(this.#context, ownerId, input, options));
  }

  listSmtpConfigs(ownerId: string): Promise<SmtpConfigSummary[]> {
    return listSmtpConfigs(this.#context, ownerId);
  }

  getSmtpConfig(ownerId: string, id: string): Promise<SmtpConfigSummary | undefined> {
    return getSmtpConfig(this.#context, ownerId, id);
  }

  deleteSmtpConfig(ownerId: string, id: string): Promise<boolean> {
    return this.#changing(ownerId, deleteSmtpConfig(this.#context, ownerId, id));
  }

  setDefaultSmtpConfig(ownerId: string, id: string): Promise<SmtpConfigSummary> {
    return this.#changing(ownerId, setDefaultSmtpConfig(this.#context, ownerId, id));
  }

  /** See `rotateKeys`. The servers do not change, so no listener is called and no pool needs closing. */
  rotateKeys(options?: { ownerId?: string | undefined; batchSize?: number | undefined }): Promise<RotateKeysResult> {
    return rotateKeys(this.#context, options);
  }

  async #changing<T>(ownerId: string, change: Promise<T>): Promise<T> {
    const result = await change;
    // Stale rather than dropped: the next resolve reads the store and keeps the arrays whose servers did not change.
    this.#changes.set(ownerId, (this.#changes.get(ownerId) ?? 0) + 1);
    const entry = this.#owners.get(ownerId);
    if (entry) {
      entry.loadedAt = -Infinity;
      entry.reported = true;
    }
    this.#notify(ownerId);
    return result;
  }

  async #entry(ownerId: string): Promise<OwnerEntry> {
    const cached = this.#owners.get(ownerId);
    if (cached && performance.now() - cached.loadedAt < this.#refreshMs) {
      // Least recently used leave first: a hit moves the owner to the end.
      this.#owners.delete(ownerId);
      this.#owners.set(ownerId, cached);
      return cached;
    }
    // One store read per owner at a time, however many sends ask at once.
    let loading = this.#loading.get(ownerId);
    if (!loading) {
      loading = this.#load(ownerId, cached).finally(() => this.#loading.delete(ownerId));
      this.#loading.set(ownerId, loading);
    }
    return loading;
  }

  async #load(ownerId: string, previous: OwnerEntry | undefined): Promise<OwnerEntry> {
    const changesBefore = this.#changes.get(ownerId);
    const rows = await this.#context.store.credentials!.list(ownerId);
    const shape = JSON.stringify(rows.map(({ passwordCiphertext: _c, keyId: _k, dkimKeyCiphertext: _dc, dkimKeyId: _dk, ...rest }) => rest));
    let entry: OwnerEntry;
    if (previous && previous.shape === shape && sameCiphertexts(previous.rows, rows)) {
      entry = { ...previous, loadedAt: performance.now(), reported: false };
    } else {
      entry = { rows, shape, loadedAt: performance.now(), servers: new Map() };
      if (previous) {
        // Keep each scope's array when its servers came out the same (a key rotation), so pools stay open.
        for (const [key, before] of previous.servers) {
          entry.servers.set(
            key,
            Promise.all([before, this.#build(entry, { ownerId, configId: key || undefined })]).then(([old, fresh]) => (sameServerSet(old, fresh) ? old : fresh)),
          );
        }
        for (const [key, servers] of entry.servers) servers.catch(() => entry.servers.get(key) === servers && entry.servers.delete(key));
        if (previous.shape !== shape && !previous.reported) this.#notify(ownerId);
      }
    }
    if (this.#changes.get(ownerId) !== changesBefore) entry.loadedAt = -Infinity;
    this.#owners.delete(ownerId);
    this.#owners.set(ownerId, entry);
    while (this.#owners.size > this.#maxOwners) this.#owners.delete(this.#owners.keys().next().value!);
    return entry;
  }

  /**
   * The servers with each host looked up once and checked, connecting to the checked address (TLS still verifying the
   * name entered), so DNS cannot answer differently at connect time. Checked again after `refreshMs`; the array stays
   * the same while the addresses do, since a new array makes a pool cache reopen the owner's pools.
   */
  #checkHosts(servers: readonly SmtpServerConfig[], ownerId: string): Promise<readonly SmtpServerConfig[]> {
    const previous = this.#hostChecks.get(servers);
    if (previous && performance.now() - previous.checkedAt < this.#refreshMs) return previous.pinned;
    const check: HostCheck = { checkedAt: performance.now(), pinned: undefined!, last: previous?.last };
    // Compared with the newest list, a check still running included, so that overlapping checks agree on one array.
    const before = previous?.pinned.catch(() => previous.last);
    check.pinned = Promise.all([Promise.all(servers.map((server) => this.#checkHost(server, ownerId))), before]).then(
      ([hosts, last]) => {
        if (last?.length === servers.length && last.every((server, i) => server.host === hosts[i]!.address)) return (check.last = last);
        check.last = Object.freeze(servers.map((server, i) => connectToCheckedHost(server, hosts[i]!)));
        return check.last;
      },
      (error: unknown) => {
        // Not remembered: the next resolve looks up again.
        check.checkedAt = -Infinity;
        throw error;
      },
    );
    this.#hostChecks.set(servers, check);
    return check.pinned;
  }

  async #checkHost(server: SmtpServerConfig, ownerId: string): Promise<CheckedHost> {
    try {
      return await checkSmtpHost(server.host, this.#context.hosts ?? {}, { lookup: this.#context.lookup });
    } catch (error) {
      if (!ValidationError.isInstance(error)) throw error;
      // Saved when it passed; its name resolves elsewhere now (or the policy changed). Say which config.
      throw new ValidationError([{ field: 'host', message: `(SMTP config "${server.name}", owner "${ownerId}") ${error.issues[0]!.message}` }], { cause: error });
    }
  }

  async #build(entry: OwnerEntry, scope: CredentialScope): Promise<readonly SmtpServerConfig[]> {
    const chosen = this.#choose(entry.rows, scope);
    const servers = await Promise.all(
      chosen.map(async (config, i) => {
        const password =
          config.passwordCiphertext === undefined
            ? undefined
            : await this.#context.keyRing.decrypt(
                { keyId: config.keyId!, ciphertext: config.passwordCiphertext },
                passwordAdditionalData(config.ownerId, config.id),
                describePassword(config),
              );
        const dkimKey =
          config.dkimKeyCiphertext === undefined
            ? undefined
            : await this.#context.keyRing.decrypt(
                { keyId: config.dkimKeyId!, ciphertext: config.dkimKeyCiphertext },
                dkimKeyAdditionalData(config.ownerId, config.id),
                describeDkimKey(config),
              );
        return this.#server(config, i, chosen.length, password, dkimKey);
      }),
    );
    return Object.freeze(servers);
  }

  /** The `i`th of `count` chosen configs as a server: the first has the highest priority (none when it is alone). */
  #server(config: StoredSmtpConfig, i: number, count: number, password?: string, dkimKey?: string): SmtpServerConfig {
    return toSmtpServerConfig(config, password, this.#context.serverDefaults, count > 1 ? count - i : undefined, dkimKey);
  }

  /** Which configs a scope sends through, in order. Throws `ConfigError` saying what to set up when there is none. */
  #choose(rows: readonly StoredSmtpConfig[], scope: CredentialScope): StoredSmtpConfig[] {
    const { ownerId, configId } = scope;
    if (configId !== undefined) {
      const config = rows.find((c) => c.id === configId);
      if (!config) throw new ConfigError(`configId is "${configId}" but owner "${ownerId}" has no SMTP config with that id: listSmtpConfigs shows the ids.`, { setting: 'configId' });
      if (!config.active) throw new ConfigError(`SMTP config "${config.name}" (id ${config.id}) of owner "${ownerId}" is inactive: activate it (saveSmtpConfig with active: true) or send through another.`, { setting: 'configId' });
      return [config];
    }
    if (rows.length === 0) {
      throw new ConfigError(`Owner "${ownerId}" has no SMTP config: save one with saveSmtpConfig({ name, host, port, security, username, password }).`, { setting: 'smtpConfigs' });
    }
    const primary = rows.find((c) => c.isDefault);
    const others = rows.filter((c) => c.active && c !== primary);
    if (primary?.active) return this.#failover ? [primary, ...others] : [primary];
    if (this.#failover && others.length > 0) return others;
    if (!primary) {
      throw new ConfigError(`Owner "${ownerId}" has no default SMTP config: choose one with setDefaultSmtpConfig.`, { setting: 'smtpConfigs' });
    }
    throw new ConfigError(
      `The default SMTP config "${primary.name}" (id ${primary.id}) of owner "${ownerId}" is inactive: activate it, or make an active config the default with setDefaultSmtpConfig.`,
      { setting: 'smtpConfigs' },
    );
  }

  #notify(ownerId: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(ownerId);
      } catch {
        // A listener's fault must not fail the save or resolve that found the change.
      }
    }
  }

  toJSON(): string {
    return '[StoredCredentialProvider]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `StoredCredentialProvider { owners cached: ${this.#owners.size} }`;
  }
}

/**
 * Per-owner named SMTP configs kept in the store, each password encrypted with AES-256-GCM under the key ring:
 * `storedCredentials({ store, keyRing: { current: 'k1', keys: { k1: process.env.SMTP_CONFIG_KEY } } })`.
 */
export function storedCredentials(options: StoredCredentialsOptions): StoredCredentialProvider {
  return new StoredCredentialProvider(options);
}

function sameCiphertexts(a: readonly StoredSmtpConfig[], b: readonly StoredSmtpConfig[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (config, i) =>
        config.passwordCiphertext === b[i]!.passwordCiphertext &&
        config.keyId === b[i]!.keyId &&
        config.dkimKeyCiphertext === b[i]!.dkimKeyCiphertext &&
        config.dkimKeyId === b[i]!.dkimKeyId
    )
  );
}
