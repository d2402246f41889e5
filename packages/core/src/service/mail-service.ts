import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import type { CredentialProvider, CredentialScope } from '../credentials/credential-provider.js';
import type { StoredCredentialProvider } from '../credentials/stored-credentials.js';
import { type Logger, safeLogger } from '../logger/logger.js';
import { MailRuntime, type MailSettings } from '../mailer/mail-runtime.js';
import { type AuditPage, type AuditQuery, Mailer, type PendingEmail, SCOPED, type SendResult } from '../mailer/mailer.js';
import { compilePolicy } from '../policy/check-policy.js';
import type { Policy, PolicyScope } from '../policy/policy.js';
import { type PoliciesOption, PolicySource } from '../policy/policy-source.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import type { OutboxWorker, WorkerOptions } from '../outbox/outbox-worker.js';
import type { BackoffOptions } from '../pool/backoff.js';
import type { MailStore, StoredPolicy, Suppression } from '../store/mail-store.js';
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
  /**
   * Policies given in code, per agent id or as a function of `{ ownerId, agentId }`. An agent without one here uses
   * its stored policy (`service.policies.save`), else its owner's stored default, else `defaultPolicy`.
   */
  policies?: PoliciesOption;
  /** For agents with no policy anywhere. Default: `DEFAULT_AGENT_POLICY` (quotas and caps, no free `from`). */
  defaultPolicy?: Policy;
}

/** An audit query across one owner's agents (or one agent's, with `agentId`). */
export interface ServiceAuditQuery extends AuditQuery {
  ownerId: string;
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
  private readonly policySource: PolicySource;

  /** Per-agent policies kept in the store: each change is validated, audited, and applies to the next send. */
  readonly policies: {
    /** Saves the policy of one agent, or (`agentId` undefined) the default of the owner's agents without one. */
    save(ownerId: string, agentId: string | undefined, policy: Policy, options?: { by?: string }): Promise<StoredPolicy>;
    get(ownerId: string, agentId: string | undefined): Promise<StoredPolicy | undefined>;
    delete(ownerId: string, agentId: string | undefined, options?: { by?: string }): Promise<boolean>;
    list(ownerId: string): Promise<StoredPolicy[]>;
    /** The policy the agent acts under now, wherever it comes from (code, store, default). */
    effective(ownerId: string, agentId: string | undefined): Promise<Readonly<Policy>>;
  };

  /** Each owner's suppressed addresses: sends to them are refused. Changes are audited. */
  readonly suppressions: {
    list(ownerId: string, options?: { limit?: number }): Promise<Suppression[]>;
    add(ownerId: string, address: string, options?: { reason?: Suppression['reason']; by?: string }): Promise<Suppression>;
    remove(ownerId: string, address: string, options?: { by?: string }): Promise<boolean>;
  };

  /** Every operation's audit trail, queryable per owner. */
  readonly audit: { list(query: ServiceAuditQuery): Promise<AuditPage> };

  constructor(options: MailServiceOptions) {
    if (!options?.credentials || typeof options.credentials.resolve !== 'function') {
      throw ValidationError.of('credentials', 'is required: pass envCredentials(), staticCredentials(servers) or storedCredentials({ store, keyRing })');
    }
    const logger = safeLogger(options.logger);
    const credentials = options.credentials;
    this.store = options.store ?? new MemoryStore();
    this.policySource = new PolicySource({ store: this.store, policies: options.policies, defaultPolicy: options.defaultPolicy });
    const policies = this.policySource;
    // An agent whose policy names SMTP configs sends through those, in that order, and through no other.
    const agentServers =
      (read: (scope: CredentialScope) => Promise<readonly SmtpServerConfig[]>) =>
      async (scope: PolicyScope): Promise<readonly SmtpServerConfig[]> => {
        const configs = (await policies.policyFor(scope)).smtpConfigs;
        if (!configs?.length) return read(scope);
        const lists = await Promise.all(configs.map((configId) => read({ ...scope, configId })));
        return lists.flatMap((servers, i) => servers.map((server) => ({ ...server, priority: (configs.length - i) * 1000 + (server.priority ?? 0) })));
      };
    const resolve = agentServers((scope) => credentials.resolve(scope));
    // The From a message gets needs no secret: a user's client that may not read passwords (Vault) can still enqueue.
    const withoutSecrets = credentials.resolveWithoutSecrets && agentServers((scope) => credentials.resolveWithoutSecrets!(scope));
    this.pools = new OwnerPools({
      resolve: (scope) => resolve({ ownerId: scope.ownerId, agentId: scope.agentId }),
      ...(withoutSecrets ? { resolveWithoutSecrets: (scope: PoolScope) => withoutSecrets({ ownerId: scope.ownerId, agentId: scope.agentId }) } : {}),
      pool: options.pool ?? {},
      logger,
      ...options.pools,
    });
    this.runtime = new MailRuntime(this.store, this.pools, logger, options, options.store === undefined, policies);
    this.policies = {
      save: (ownerId, agentId, policy, opts) => this.savePolicy(ownerId, agentId, policy, opts?.by),
      get: (ownerId, agentId) => this.policyStore().get(checkedOwner(ownerId), checkedAgent(agentId)),
      delete: (ownerId, agentId, opts) => this.deletePolicy(ownerId, agentId, opts?.by),
      list: (ownerId) => this.policyStore().list(checkedOwner(ownerId)),
      effective: async (ownerId, agentId) => (await policies.policyFor({ ownerId: checkedOwner(ownerId), agentId: checkedAgent(agentId) })).source,
    };
    this.suppressions = {
      list: (ownerId, opts) => this.forAgent({ ownerId }).listSuppressions(opts),
      add: (ownerId, address, opts) => this.forAgent({ ownerId }).suppress(address, opts),
      remove: (ownerId, address, opts) => this.forAgent({ ownerId }).unsuppress(address, opts),
    };
    this.audit = { list: ({ ownerId, ...query }) => this.forAgent({ ownerId }).listAudit({ ...query, agentId: checkedAgent(query.agentId) }) };
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
    await this.writeAudit(ownerId, 'smtp_config_save', { configId: saved.id, name: saved.name, host: saved.host, isDefault: saved.isDefault });
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
    await this.writeAudit(ownerId, 'smtp_config_delete', { configId: id, deleted });
    return deleted;
  }

  async setDefaultSmtpConfig(ownerId: string, id: string): ReturnType<SmtpConfigKeeper['setDefaultSmtpConfig']> {
    const summary = await this.configs().setDefaultSmtpConfig(ownerId, id);
    await this.writeAudit(ownerId, 'smtp_config_default', { configId: id });
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

  /** Approves an owner's message waiting for approval and sends it (see `Mailer.approve`); `by` names the human. */
  approve(ownerId: string, id: string, options: { by: string; signal?: AbortSignal }): Promise<SendResult> {
    return this.forAgent({ ownerId }).approve(id, options);
  }

  /** Rejects an owner's message waiting for approval: it is never sent. */
  reject(ownerId: string, id: string, options: { by: string }): ReturnType<Mailer['reject']> {
    return this.forAgent({ ownerId }).reject(id, options);
  }

  /** The owner's messages waiting for approval (every agent's, or one's), oldest first. */
  listPending(ownerId: string, options: { agentId?: string; after?: string; limit?: number } = {}): Promise<PendingEmail[]> {
    return this.forAgent({ ownerId, agentId: options.agentId }).listPending(options);
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

  private policyStore(): NonNullable<MailStore['policies']> {
    if (!this.store.policies) {
      throw new ConfigError('This store keeps no policies: give them in code (createMailService({ policies })) or use a store with a policies part.', { setting: 'store' });
    }
    return this.store.policies;
  }

  private async savePolicy(ownerId: string, agentId: string | undefined, policy: Policy, by: string | undefined): Promise<StoredPolicy> {
    checkedOwner(ownerId);
    checkedAgent(agentId);
    if (typeof (policy as Policy | undefined)?.approval?.when === 'function') {
      throw ValidationError.of('policy.approval.when', 'is a function, which cannot be stored; give such a policy in code (createMailService({ policies }))');
    }
    // Checked (and so every rule parsed) before it is stored: a stored policy that fails later would stop the agent's mail.
    compilePolicy(policy, 'policy');
    const saved = await this.policyStore().save({ ownerId, agentId, policy: JSON.parse(JSON.stringify(policy)) as Record<string, unknown> });
    this.policySource.invalidate(ownerId);
    this.pools.invalidate(ownerId);
    await this.writeAudit(ownerId, 'policy_save', { policy: saved.policy }, agentId, by);
    return saved;
  }

  private async deletePolicy(ownerId: string, agentId: string | undefined, by: string | undefined): Promise<boolean> {
    const deleted = await this.policyStore().delete(checkedOwner(ownerId), checkedAgent(agentId));
    this.policySource.invalidate(ownerId);
    this.pools.invalidate(ownerId);
    await this.writeAudit(ownerId, 'policy_delete', { deleted }, agentId, by);
    return deleted;
  }

  /** Best effort, like every audit write after the work is done. */
  private async writeAudit(ownerId: string, action: string, detail: Record<string, unknown>, agentId?: string, actor?: string): Promise<void> {
    try {
      await this.store.audit.append({ ownerId, agentId, action, outcome: 'ok', detail, ...(actor ? { actor } : {}) });
    } catch (err) {
      this.runtime.logger.warn({ err, action }, 'could not write the audit entry');
    }
  }
}

function checkedOwner(ownerId: unknown): string {
  assertId(ownerId, 'ownerId');
  return ownerId as string;
}

function checkedAgent(agentId: unknown): string | undefined {
  if (agentId !== undefined) assertId(agentId, 'agentId');
  return agentId as string | undefined;
}

/** Ids key records, pools and caches: printable, at most 256 characters (no NUL or line break to run two together). */
function assertId(value: unknown, field: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw ValidationError.of(field, 'must be 1 to 256 printable characters');
  }
}

type DropFirst<T extends unknown[]> = T extends [unknown, ...infer Rest] ? Rest : never;
