import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { ValidationError } from '../errors/validation-error.js';
import { type Logger, safeLogger } from '../logger/logger.js';
import { MailRuntime, type MailSettings } from '../mailer/mail-runtime.js';
import { Mailer, SCOPED } from '../mailer/mailer.js';
import type { OutboxWorker, WorkerOptions } from '../outbox/outbox-worker.js';
import type { BackoffOptions } from '../pool/backoff.js';
import type { MailStore } from '../store/mail-store.js';
import { MemoryStore } from '../store/memory-store.js';
import { OwnerPools, type PoolScope } from './pool-source.js';

/** What a service needs of a credential provider: the servers one owner (and agent) sends through. */
export interface ServerResolver {
  resolve(scope: PoolScope): Promise<readonly SmtpServerConfig[]>;
}

export interface MailServiceOptions extends MailSettings {
  /** Where every owner's records, events and audit are kept. Default: a `MemoryStore` (one process only). */
  store?: MailStore;
  /** Resolves each owner's SMTP servers: `envCredentials()`, `staticCredentials(servers)`, `storedCredentials(…)`. */
  credentials: ServerResolver;
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

  constructor(options: MailServiceOptions) {
    if (!options?.credentials || typeof options.credentials.resolve !== 'function') {
      throw ValidationError.of('credentials', 'is required: pass envCredentials(), staticCredentials(servers) or storedCredentials({ store, keyRing })');
    }
    const logger = safeLogger(options.logger);
    const credentials = options.credentials;
    this.pools = new OwnerPools({ resolve: (scope) => credentials.resolve(scope), pool: options.pool ?? {}, logger, ...options.pools });
    this.store = options.store ?? new MemoryStore();
    this.runtime = new MailRuntime(this.store, this.pools, logger, options, options.store === undefined);
  }

  /** A mailer for one agent of one owner. Cheap: it shares the service's store, pools and settings. */
  forAgent(scope: { ownerId: string; agentId?: string | undefined }): Mailer {
    if (typeof scope?.ownerId !== 'string' || scope.ownerId === '') throw ValidationError.of('ownerId', 'is required: the user this agent acts for');
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
    return this.runtime.close(options.timeoutMs ?? 10_000);
  }
}
