import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import type { CredentialProvider } from '../credentials/credential-provider.js';
import type { StoredCredentialProvider } from '../credentials/stored-credentials.js';
import { type Logger, safeLogger } from '../logger/logger.js';
import { MailRuntime, type MailSettings } from '../mailer/mail-runtime.js';
import { Mailer, SCOPED } from '../mailer/mailer.js';
import type { OutboxWorker, WorkerOptions } from '../outbox/outbox-worker.js';
import type { BackoffOptions } from '../pool/backoff.js';
import type { MailStore } from '../store/mail-store.js';
import { MemoryStore } from '../store/memory-store.js';
import { OwnerPools, type PoolScope } from './pool-source.js';

/** What a service needs of its credentials: a `CredentialProvider` (kept under this name for callers who used it). */
export type ServerResolver = CredentialProvider;

/** A provider that keeps per-owner SMTP configs (`storedCredentials`): the service exposes its methods. */
type SmtpConfigKeeper = Pick<
  StoredCredentialProvider,
  'saveSmtpConfig' | 'listSmtpConfigs' | 'getSmtpConfig' | 'deleteSmtpConfig' | 'setDefaultSmtpConfig' | 'rotateKeys'
>;

export interface MailServiceOptions extends MailSettings {
  /** Where every owner's records, events and audit are kept. Default: a `MemoryStore` (one process only). */
  store?: MailStore;
  /** Resolves each owner's SMTP servers: `envCredentials()`, `staticCredentials(servers)`, `storedCredentials(…)`. */
  credentials: CredentialProvider;
  pool?: { backoff?: BackoffOptions; maxRetryWaitMs?: number; maxRequeues?: number };
  /**
   * Pools are cached per owner's server set: closed after `idleMs` unused (5 min), and when the owner's
   * configuration changes. Resolved servers are reused for `resolveTtlMs` (30 s) before they are read again.
   */
  pools?: { idleMs?: number; resolveTtlMs?: number };
  /** pino-compatible; everything logged through it is redacted. Default: logs nothing. */
  logger?: Logger;
}

/** Creates the multi-tenant root: one store and one worker fleet for many owners, each with their own servers. */
export function createMailService(options: MailServiceOptions): MailService {
  return new MailService(options);
}

/**
 * Many users in one service. `forAgent({ ownerId, agentId })` gives a cheap `Mailer` scoped to one owner and agent
 * (records, statuses and audit are that owner's only; mail goes through that owner's servers). `startWorker()`
 * drains every owner's outbox, each record through its own owner's servers.
 */
export class MailService {
  readonly store: MailStore;
  private readonly pools: OwnerPools;
  private readonly runtime: MailRuntime;
  private readonly credentials: CredentialProvider;
  private readonly stopListening: (() => void) | undefined;

  constructor(options: MailServiceOptions) {
    if (!options?.credentials || typeof options.credentials.resolve !== 'function') {
      throw ValidationError.of('credentials', 'is required: pass envCredentials(), staticCredentials(servers) or storedCredentials({ store, keyRing })');
    }
    const logger = safeLogger(options.logger);
    const credentials = options.credentials;
    this.pools = new OwnerPools({ resolve: (scope) => credentials.resolve(scope), pool: options.pool ?? {}, logger, ...options.pools });
    this.store = options.store ?? new MemoryStore();
    this.runtime = new MailRuntime(this.store, this.pools, logger, options, options.store === undefined);
    this.credentials = credentials;
    // A configuration saved, deleted or made default replaces the owner's pool at once, not after a cache expires.
    this.stopListening = credentials.onChange?.((ownerId) => this.pools.invalidate(ownerId));
  }

  /**
   * Saves (creates, or with `id` updates) an SMTP configuration of `ownerId`, connection-tested first unless
   * `{ test: false }`. The password is encrypted; nothing returned holds it. Needs `storedCredentials(…)`.
   */
  async saveSmtpConfig(ownerId: string, ...args: DropFirst<Parameters<SmtpConfigKeeper['saveSmtpConfig']>>): ReturnType<SmtpConfigKeeper['saveSmtpConfig']> {
    const saved = await this.configs().saveSmtpConfig(ownerId, ...args);
    await this.audit(ownerId, 'smtp_config_save', { configId: saved.id, name: saved.name, host: saved.host, isDefault: saved.isDefault });
    return saved;
  }

  /** The owner's SMTP configurations, without secrets. */
  async listSmtpConfigs(ownerId: string): ReturnType<SmtpConfigKeeper['listSmtpConfigs']> {
    return this.configs().listSmtpConfigs(ownerId);
  }

  /** One SMTP configuration, without secrets; undefined when the owner has none with that id. */
  async getSmtpConfig(ownerId: string, id: string): ReturnType<SmtpConfigKeeper['getSmtpConfig']> {
    return this.configs().getSmtpConfig(ownerId, id);
  }

  async deleteSmtpConfig(ownerId: string, id: string): Promise<boolean> {
    const deleted = await this.configs().deleteSmtpConfig(ownerId, id);
    await this.audit(ownerId, 'smtp_config_delete', { configId: id, deleted });
    return deleted;
  }

  async setDefaultSmtpConfig(ownerId: string, id: string): ReturnType<SmtpConfigKeeper['setDefaultSmtpConfig']> {
    const summary = await this.configs().setDefaultSmtpConfig(ownerId, id);
    await this.audit(ownerId, 'smtp_config_default', { configId: id });
    return summary;
  }

  /** Re-encrypts every stored password under the key ring's current key (run after adding a new key). */
  async rotateKeys(options?: Parameters<SmtpConfigKeeper['rotateKeys']>[0]): ReturnType<SmtpConfigKeeper['rotateKeys']> {
    return this.configs().rotateKeys(options);
  }

  /** A mailer for one agent of one owner. Cheap: it shares the service's store, pools and settings. */
  forAgent(scope: { ownerId: string; agentId?: string | undefined }): Mailer {
    if (typeof scope?.ownerId !== 'string' || scope.ownerId === '') throw ValidationError.of('ownerId', 'is required: the user this agent acts for');
    assertId(scope.ownerId, 'ownerId');
    if (scope.agentId !== undefined) assertId(scope.agentId, 'agentId');
    return new Mailer({ [SCOPED]: this.runtime, ownerId: scope.ownerId, agentId: scope.agentId });
  }

  /** A worker that claims every owner's due mail and sends each message through its own owner's servers. */
  startWorker(options: WorkerOptions = {}): OutboxWorker {
    return this.runtime.startWorker(undefined, options);
  }

  /** Forgets an owner's cached servers (after a change to its configuration made elsewhere); its old pool closes. */
  invalidate(ownerId: string): void {
    this.pools.invalidate(ownerId);
  }

  /** Stops taking sends, waits up to `timeoutMs` (10 s) for the work in flight, then closes every connection. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.stopListening?.();
    return this.runtime.close(options.timeoutMs ?? 10_000);
  }

  private configs(): SmtpConfigKeeper {
    const keeper = this.credentials as Partial<SmtpConfigKeeper>;
    if (typeof keeper.saveSmtpConfig !== 'function') {
      throw new ConfigError('This service keeps no SMTP configurations: create it with credentials: storedCredentials({ store, keyRing }).', {
        setting: 'credentials',
      });
    }
    return keeper as SmtpConfigKeeper;
  }

  /** Best effort, like every audit write after the work is done. */
  private async audit(ownerId: string, action: string, detail: Record<string, unknown>): Promise<void> {
    try {
      await this.store.audit.append({ ownerId, agentId: undefined, action, outcome: 'ok', detail });
    } catch (err) {
      this.runtime.logger.warn({ err, action }, 'could not write the audit entry');
    }
  }
}

/** Ids key records, pools and caches: printable, at most 256 characters (no NUL or line break to run two together). */
function assertId(value: unknown, field: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw ValidationError.of(field, 'must be 1 to 256 printable characters');
  }
}

type DropFirst<T extends unknown[]> = T extends [unknown, ...infer Rest] ? Rest : never;
