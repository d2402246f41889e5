import { resolveSmtpServerConfigs, sameResolvedConfig, type SmtpServerConfig } from '../config/smtp-server-config.js';

/** Whose servers to resolve. */
export interface CredentialScope {
  ownerId: string;
  /** The agent sending. Providers may narrow the servers by agent; the built-in ones give every agent its owner's. */
  agentId?: string | undefined;
  /** One config of the owner (a stored config's id; a static server's name) instead of the owner's default. */
  configId?: string | undefined;
}

/**
 * Where an owner's (and agent's) SMTP servers come from: `envCredentials()`, `staticCredentials(servers)`,
 * `storedCredentials({ store, keyRing })`, or your own.
 *
 * Caching contract (what a pool cache relies on):
 * - `resolve` returns the same array object for a scope for as long as that scope's servers are unchanged, so a
 *   cache compares with `===`; a new array means the servers may have changed (`sameServerSet` tells for sure).
 * - `onChange`, when present, calls its listener with an owner id as soon as this process learns that owner's
 *   servers may have changed (a config saved, deleted, made default), so a cache can close that owner's pools now
 *   instead of at the next `resolve`.
 */
export interface CredentialProvider {
  /**
   * The servers the scope sends through, highest priority first; never empty. Throws `ConfigError` saying what to
   * set up when there are none. The configs' `auth.pass` is non-enumerable: logging the result shows no password.
   */
  resolve(scope: CredentialScope): Promise<readonly SmtpServerConfig[]>;
  /**
   * The same servers without their secrets (no password, no DKIM key): what composing a message needs (its default
   * From) where `resolve` failed with `ConfigError.secretNotReadableHere`, e.g. a user's Supabase client whose
   * passwords are in Vault, which only a worker reads. Optional: without it, that error stops the send.
   */
  resolveWithoutSecrets?(scope: CredentialScope): Promise<readonly SmtpServerConfig[]>;
  /** Calls `listener(ownerId)` when that owner's servers may have changed. Returns a function that unsubscribes. */
  onChange?(listener: (ownerId: string) => void): () => void;
}

/** Whether two server lists would configure the same pool, passwords included (which JSON would not show). */
export function sameServerSet(a: readonly SmtpServerConfig[], b: readonly SmtpServerConfig[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  if (a.length === 0) return true;
  const left = resolveSmtpServerConfigs(a);
  const right = resolveSmtpServerConfigs(b);
  return left.every((config, i) => sameResolvedConfig(config, right[i]!));
}

/**
 * A copy of the config whose `auth.pass` and `dkim.privateKey` are non-enumerable: readable by the pool, absent from
 * logs, JSON and spreads.
 */
export function hidePassword(config: SmtpServerConfig): SmtpServerConfig {
  const out = { ...config };
  if (config.auth) {
    const auth = { user: config.auth.user, ...(config.auth.method ? { method: config.auth.method } : {}) } as NonNullable<SmtpServerConfig['auth']>;
    Object.defineProperty(auth, 'pass', { value: config.auth.pass, enumerable: false });
    out.auth = auth;
  }
  if (config.dkim) {
    const { privateKey, ...rest } = config.dkim;
    const dkim = { ...rest } as NonNullable<SmtpServerConfig['dkim']>;
    Object.defineProperty(dkim, 'privateKey', { value: privateKey, enumerable: false });
    out.dkim = dkim;
  }
  return out;
}
