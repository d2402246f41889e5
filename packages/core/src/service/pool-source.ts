import { createHmac, randomBytes } from 'node:crypto';
import { type ResolvedSmtpServerConfig, resolveSmtpServerConfigs, revealTlsOptions, type SmtpServerConfig } from '../config/smtp-server-config.js';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { ConfigError } from '../errors/config-error.js';
import type { Logger } from '../logger/logger.js';
import type { ParsedAddress } from '../message/address.js';
import { senderFromServers } from '../pipeline/compose.js';
import { type PoolCloseOptions, SmtpPool, type SmtpPoolOptions } from '../pool/smtp-pool.js';

/** Whose servers: an owner, and the agent acting for it (a provider may give agents servers of their own). */
export interface PoolScope {
  ownerId: string;
  agentId?: string | undefined;
}

/**
 * Where a mailer gets the SMTP pool of the owner it sends for. One pool for a single-tenant mailer
 * (`StaticPoolSource`); a cache of pools per owner's server set for a service (`OwnerPools`).
 */
export interface PoolSource {
  /** Runs `task` with the scope's pool; the pool is not closed while a task uses it. */
  use<T>(scope: PoolScope, task: (pool: SmtpPool) => Promise<T>): Promise<T>;
  /** The scope's pool if one is open now (for a synchronous status). */
  peek(scope: PoolScope): SmtpPool | undefined;
  /** The sender the scope's servers imply (a server's `from`, or a username that is an address). */
  senderFor(scope: PoolScope): ParsedAddress | undefined | Promise<ParsedAddress | undefined>;
  close(options?: PoolCloseOptions): Promise<void>;
}

/** One pool for one owner: what `createMailer` uses. `reload` swaps the servers without dropping sends. */
export class StaticPoolSource implements PoolSource {
  readonly pool: SmtpPool;
  private sender: ParsedAddress | undefined;

  constructor(servers: readonly SmtpServerConfig[], options: Omit<SmtpPoolOptions, 'servers'>) {
    this.pool = new SmtpPool({ servers, ...options });
    this.sender = senderFromServers(servers);
  }

  use<T>(_scope: PoolScope, task: (pool: SmtpPool) => Promise<T>): Promise<T> {
    return task(this.pool);
  }

  peek(): SmtpPool {
    return this.pool;
  }

  senderFor(): ParsedAddress | undefined {
    return this.sender;
  }

  reload(servers: readonly SmtpServerConfig[]): void {
    this.pool.reload(servers);
    this.sender = senderFromServers(servers);
  }

  close(options?: PoolCloseOptions): Promise<void> {
    return this.pool.close(options);
  }
}

/** Resolves the servers a scope sends through: what `OwnerPools` needs of a credential provider. */
export type ResolveServers = (scope: PoolScope) => Promise<readonly SmtpServerConfig[]>;

export interface OwnerPoolsOptions {
  resolve: ResolveServers;
  /**
   * The servers without secrets, for `senderFor` when resolving in full failed only because a password may not be read
   * here (`ConfigError.secretNotReadableHere`: a user's client over Supabase Vault), so composing goes on.
   */
  resolveWithoutSecrets?: ResolveServers | undefined;
  pool: Omit<SmtpPoolOptions, 'servers' | 'logger'>;
  logger: Logger;
  /** A pool no send used for this long is closed. Default: 5 minutes. */
  idleMs?: number;
  /**
   * How long a scope's resolved servers are reused before they are read again (a store read and a decryption per
   * send would be the price otherwise). A change made through the service applies at once (`invalidate`); one made
   * by another process within this time. Default: 30 s.
   */
  resolveTtlMs?: number;
}

interface PoolEntry {
  pool: SmtpPool;
  sender: ParsedAddress | undefined;
  inUse: number;
  lastUsed: number;
  /** Set once replaced or idle: closed as soon as no send uses it. */
  retired: boolean;
}

interface Resolved {
  key: string;
  until: number;
}

/**
 * Pools cached per owner and server set (servers, credentials included), so every owner sends through its own
 * servers with connections, health and preferences of its own, and the agents of one owner share them. A pool is
 * closed when idle, or once its owner's servers resolve to another set (a configuration change); never while a
 * send uses it.
 */
export class OwnerPools implements PoolSource {
  private readonly pools = new Map<string, PoolEntry>();
  private readonly resolved = new Map<string, Resolved>();
  private readonly pending = new Map<string, { generation: number; entry: Promise<PoolEntry> }>();
  /** Bumped by `invalidate`: a resolution that began before it is not cached. */
  private readonly generations = new Map<string, number>();
  private readonly idleMs: number;
  private readonly resolveTtlMs: number;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: OwnerPoolsOptions) {
    this.idleMs = options.idleMs ?? 300_000;
    this.resolveTtlMs = options.resolveTtlMs ?? 30_000;
    this.sweeper = setInterval(() => this.sweep(), Math.max(1_000, Math.floor(Math.min(this.idleMs, this.resolveTtlMs) / 2)));
    this.sweeper.unref();
  }

  /** Open pools (for tests and status pages). */
  get size(): number {
    return this.pools.size;
  }

  async use<T>(scope: PoolScope, task: (pool: SmtpPool) => Promise<T>): Promise<T> {
    const entry = await this.entryFor(scope);
    entry.inUse++;
    entry.lastUsed = Date.now();
    try {
      return await task(entry.pool);
    } finally {
      entry.inUse--;
      entry.lastUsed = Date.now();
      if (entry.retired && entry.inUse === 0) this.closePool(entry);
    }
  }

  peek(scope: PoolScope): SmtpPool | undefined {
    const resolved = this.resolved.get(scopeKey(scope));
    return resolved ? this.pools.get(resolved.key)?.pool : undefined;
  }

  async senderFor(scope: PoolScope): Promise<ParsedAddress | undefined> {
    try {
      return (await this.entryFor(scope)).sender;
    } catch (err) {
      // The servers resolve, but their passwords may not be read here: the From needs none, so queueing goes on.
      const withoutSecrets = this.options.resolveWithoutSecrets;
      if (!withoutSecrets || !ConfigError.isInstance(err) || !err.secretNotReadableHere) throw err;
      return senderFromServers(await this.read(withoutSecrets, scope));
    }
  }

  /**
   * Forgets the servers resolved for `ownerId` (for every owner without one): the next send resolves them again.
   * Its pool stays if they resolve to the same set (a change to another of its configs), and is closed, once its
   * sends are done, if they do not.
   */
  invalidate(ownerId?: string): void {
    const owners = ownerId === undefined ? new Set([...this.resolved.keys(), ...this.pending.keys()].map(ownerOf)) : new Set([ownerId]);
    for (const owner of owners) this.generations.set(owner, (this.generations.get(owner) ?? 0) + 1);
    for (const key of [...this.resolved.keys()]) if (owners.has(ownerOf(key))) this.resolved.delete(key);
    for (const key of [...this.pending.keys()]) if (owners.has(ownerOf(key))) this.pending.delete(key);
  }

  async close(options?: PoolCloseOptions): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    const entries = [...this.pools.values()];
    this.pools.clear();
    this.resolved.clear();
    await Promise.all(entries.map((e) => e.pool.close(options)));
  }

  private async entryFor(scope: PoolScope): Promise<PoolEntry> {
    if (this.closed) throw new AgentSmtpError('CLOSED', 'The mail service is closed; create a new one to send again.');
    const key = scopeKey(scope);
    const resolved = this.resolved.get(key);
    const cached = resolved && resolved.until > Date.now() ? this.pools.get(resolved.key) : undefined;
    if (cached) return cached;
    // One resolution per scope at a time: a burst of sends for a new owner reads its configuration once.
    const generation = this.generations.get(scope.ownerId) ?? 0;
    let pending = this.pending.get(key);
    if (!pending || pending.generation !== generation) {
      const entry = this.open(scope, generation).finally(() => {
        if (this.pending.get(key)?.entry === entry) this.pending.delete(key);
      });
      pending = { generation, entry };
      this.pending.set(key, pending);
    }
    return pending.entry;
  }

  private async read(resolve: ResolveServers, scope: PoolScope): Promise<readonly SmtpServerConfig[]> {
    try {
      return await resolve(scope);
    } catch (err) {
      if (AgentSmtpError.isInstance(err)) throw err;
      // A provider's raw error (a store's, a driver's) may hold SQL or connection strings: it stays in `cause`.
      throw new ConfigError(`The SMTP servers of owner "${scope.ownerId}" could not be read; nothing was sent. The cause is in the server log.`, {
        setting: 'credentials',
        cause: err,
      });
    }
  }

  private async open(scope: PoolScope, generation: number): Promise<PoolEntry> {
    const servers = await this.read(this.options.resolve, scope);
    // The configuration changed while it was being read: what was read may be the old one, so read it again.
    if ((this.generations.get(scope.ownerId) ?? 0) !== generation) return this.entryFor(scope);
    const setKey = `${scope.ownerId}\u0000${serverSetKey(resolveSmtpServerConfigs(servers))}`;
    let entry = this.pools.get(setKey);
    if (!entry) {
      entry = { pool: new SmtpPool({ servers, ...this.options.pool, logger: this.options.logger }), sender: senderFromServers(servers), inUse: 0, lastUsed: Date.now(), retired: false };
      this.pools.set(setKey, entry);
    }
    this.resolved.set(scopeKey(scope), { key: setKey, until: Date.now() + this.resolveTtlMs });
    // The owner's servers changed: its pools for other sets go once no scope resolves to them (an agent of the
    // owner that still needs one re-opens it at its next send).
    const ownerPrefix = `${scope.ownerId}\u0000`;
    const inUse = new Set([...this.resolved.values()].map((r) => r.key));
    for (const key of [...this.pools.keys()]) if (key.startsWith(ownerPrefix) && key !== setKey && !inUse.has(key)) this.retire(key);
    return entry;
  }

  /** Drops expired resolutions (a long-lived pool would otherwise collect one per scope forever) and idle pools. */
  private sweep(): void {
    const now = Date.now();
    for (const [key, resolved] of this.resolved) if (resolved.until <= now) this.resolved.delete(key);
    for (const [key, entry] of this.pools) {
      if (entry.inUse === 0 && now - entry.lastUsed >= this.idleMs) this.retire(key);
    }
  }

  private retire(key: string): void {
    const entry = this.pools.get(key);
    if (!entry) return;
    this.pools.delete(key);
    for (const [scope, resolved] of this.resolved) if (resolved.key === key) this.resolved.delete(scope);
    entry.retired = true;
    if (entry.inUse === 0) this.closePool(entry);
  }

  private closePool(entry: PoolEntry): void {
    entry.pool.close().catch((err: unknown) => this.options.logger.warn({ err }, 'could not close an SMTP pool'));
  }
}

// NUL cannot occur in an owner id (the stores refuse it), so owner and agent cannot run into each other here.
const scopeKey = (scope: PoolScope): string => `${scope.ownerId}\u0000${scope.agentId ?? ''}`;
const ownerOf = (key: string): string => key.slice(0, key.indexOf('\u0000'));

/** Keys the server-set hashes: without it a weak password could be guessed from a hash seen in a heap dump. */
const SERVER_SET_KEY = randomBytes(32);

/** Identifies a server set, secrets included (an HMAC, never the secret), so a changed password opens a new pool. */
function serverSetKey(servers: readonly ResolvedSmtpServerConfig[]): string {
  const hash = createHmac('sha256', SERVER_SET_KEY);
  for (const server of servers) {
    hash.update(JSON.stringify(server));
    hash.update('\u0000');
    hash.update(server.auth?.pass ?? '');
    hash.update('\u0000');
    hash.update(JSON.stringify(revealTlsOptions(server.tls) ?? null));
  }
  return hash.digest('hex');
}
