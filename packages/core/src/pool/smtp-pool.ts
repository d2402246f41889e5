import type { SendMailOptions } from 'nodemailer';
import { type ResolvedSmtpServerConfig, resolveSmtpServerConfigs, type SmtpServerConfig } from '../config/smtp-server-config.js';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { SmtpError, type SmtpAttempt } from '../errors/smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { type Logger, silentLogger } from '../logger/logger.js';
import { type BackoffOptions, DEFAULT_BACKOFF, type ResolvedBackoff } from './backoff.js';
import { classifySmtpError, type NodemailerErrorLike } from './classify-smtp-error.js';
import { type SendTracker, ServerState, type ServerStatus } from './server-state.js';

export interface SmtpPoolOptions {
  servers: readonly SmtpServerConfig[];
  backoff?: BackoffOptions;
  /** Longest one send waits for a backing-off server to be tried again. Default: 5000 ms. */
  maxRetryWaitMs?: number;
  /** Messages nodemailer may requeue onto a new connection when one closes before a byte was sent. Default: 2. */
  maxRequeues?: number;
  logger?: Logger;
}

/** What the pool sends: nodemailer message fields with an explicit envelope. */
export interface PoolMessage extends SendMailOptions {
  envelope: { from: string; to: string[] };
  messageId: string;
}

export interface RejectedRecipient {
  address: string;
  responseCode: number | undefined;
  response: string | undefined;
}

export interface PoolSendResult {
  /** `sent`: the server accepted it. `unknown`: the connection broke after the whole message was handed over. */
  status: 'sent' | 'unknown';
  server: string;
  messageId: string;
  accepted: string[];
  rejected: string[];
  rejectedReasons: RejectedRecipient[];
  /** The server's final reply, e.g. `250 2.0.0 Ok: queued as …`. */
  response: string | undefined;
  attempts: SmtpAttempt[];
  /** Why the outcome is `unknown`. */
  error?: SmtpError;
}

export interface VerifyResult {
  name: string;
  ok: boolean;
  latencyMs: number;
  error?: { code: string | undefined; message: string };
}

/**
 * Sends through several SMTP servers by priority, with one pooled nodemailer transport each.
 * nodemailer pools connections to one host; failing over between hosts is this class's job.
 */
export class SmtpPool {
  /** In configured order. */
  private servers: ServerState[];
  /** The order sends try them: preferred first, then by priority, then configured order. Kept current by reorder(). */
  private sendOrder: ServerState[] = [];
  private preferred: string | undefined;
  private closed = false;
  private readonly backoff: ResolvedBackoff;
  private readonly maxRetryWaitMs: number;
  private readonly maxRequeues: number;
  private readonly logger: Logger;

  constructor(options: SmtpPoolOptions) {
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.maxRetryWaitMs = options.maxRetryWaitMs ?? 5_000;
    this.maxRequeues = options.maxRequeues ?? 2;
    this.logger = options.logger ?? silentLogger;
    this.servers = this.build(resolveSmtpServerConfigs(options.servers), []);
    this.reorder();
  }

  /** Server names, in the order sends try them. */
  get serverNames(): string[] {
    return this.sendOrder.map((s) => s.name);
  }

  /** Sends one message, failing over between servers. Throws `SmtpError` when it definitely was not sent. */
  async send(message: PoolMessage): Promise<PoolSendResult> {
    this.assertOpen();
    const attempts: SmtpAttempt[] = [];
    const triesByServer = new Map<ServerState, number>();
    const waitUntil = Date.now() + this.maxRetryWaitMs;

    for (;;) {
      this.assertOpen();
      const now = Date.now();
      const withTriesLeft = this.sendOrder.filter((s) => (triesByServer.get(s) ?? 0) <= s.config.maxRetries);
      const server = withTriesLeft.find((s) => s.isAvailable(now));
      if (!server) {
        const wakeAt = Math.min(...withTriesLeft.map((s) => (s.probing ? now + 25 : s.nextAttemptAt)));
        if (withTriesLeft.length === 0 || wakeAt > waitUntil) throw this.unavailable(attempts, withTriesLeft);
        await sleep(Math.max(5, wakeAt - now));
        continue;
      }

      triesByServer.set(server, (triesByServer.get(server) ?? 0) + 1);
      const halfOpen = !server.isHealthy();
      if (halfOpen) server.probing = true;
      const generation = server.generation;
      const tracker: SendTracker = { bodySent: false };
      try {
        const info = await server.send(message, tracker);
        server.recordSuccess();
        server.messagesSent++;
        const rejectedReasons = rejectedDetails(info);
        return {
          status: 'sent',
          server: server.name,
          messageId: message.messageId,
          accepted: info.accepted.map(String),
          rejected: rejectedReasons.map((r) => r.address),
          rejectedReasons,
          response: info.response,
          attempts,
        };
      } catch (caught) {
        const err = caught as Error & NodemailerErrorLike & { response?: string; rejected?: string[] };
        const failure = classifySmtpError(err, tracker.bodySent);
        const attempt: SmtpAttempt = {
          server: server.name,
          failure,
          code: err.code,
          responseCode: err.responseCode || undefined,
          response: err.response,
          message: err.message,
        };
        attempts.push(attempt);
        this.logger.warn({ server: server.name, failure, code: err.code, responseCode: err.responseCode }, 'smtp attempt failed');

        if (failure === 'permanent') {
          // The server answered properly; it is the message that was refused.
          server.recordSuccess();
          throw new SmtpError('SMTP_REJECTED', `${server.name} refused the message: ${err.response ?? err.message}`, {
            server: server.name,
            smtpCode: err.code,
            responseCode: attempt.responseCode,
            response: err.response,
            command: err.command,
            attempts,
            rejected: err.rejected?.map(String),
          }, { cause: err });
        }
        server.recordFailure(failure, err.code, err.message, generation, Date.now());
        if (failure === 'ambiguous') {
          return {
            status: 'unknown',
            server: server.name,
            messageId: message.messageId,
            accepted: [],
            rejected: [],
            rejectedReasons: [],
            response: undefined,
            attempts,
            error: new SmtpError(
              'SMTP_TRANSIENT',
              `The connection to ${server.name} broke after the whole message was sent (${err.message}); it may have been delivered, so it is not sent again automatically.`,
              { server: server.name, smtpCode: err.code, attempts },
              { cause: err },
            ),
          };
        }
      } finally {
        if (halfOpen) server.probing = false;
      }
    }
  }

  /** Opens a connection to each server (and authenticates) without sending; a server that answers is marked healthy. */
  async verify(): Promise<VerifyResult[]> {
    this.assertOpen();
    return Promise.all(
      this.sendOrder.map(async (server): Promise<VerifyResult> => {
        const started = performance.now();
        try {
          await server.verify();
          server.markHealthy();
          return { name: server.name, ok: true, latencyMs: Math.round(performance.now() - started) };
        } catch (caught) {
          const err = caught as Error & NodemailerErrorLike;
          return {
            name: server.name,
            ok: false,
            latencyMs: Math.round(performance.now() - started),
            error: { code: err.code, message: err.message },
          };
        }
      }),
    );
  }

  /** Health and counters per server, in the order sends try them. Holds no credentials. */
  status(): ServerStatus[] {
    const now = Date.now();
    return this.sendOrder.map((s) => s.status(now, s.name === this.preferred));
  }

  /** Prefers one server for the sends that follow (it is tried first while healthy); `null` goes back to priority order. */
  use(name: string | null): void {
    this.assertOpen();
    if (name !== null && !this.servers.some((s) => s.name === name)) {
      throw ValidationError.of('server', `no server is named "${name}"; configured servers: ${this.serverNames.join(', ')}`);
    }
    this.preferred = name ?? undefined;
    this.reorder();
  }

  /**
   * Takes a new server list. Servers whose configuration is unchanged keep their connections and health;
   * removed or changed ones stop taking new sends and close once the sends they carry have settled.
   */
  reload(configs: readonly SmtpServerConfig[]): void {
    this.assertOpen();
    const resolved = resolveSmtpServerConfigs(configs);
    const previous = this.servers;
    this.servers = this.build(resolved, previous);
    for (const old of previous) if (!this.servers.includes(old)) old.retire();
    if (this.preferred && !this.servers.some((s) => s.name === this.preferred)) this.preferred = undefined;
    this.reorder();
    this.logger.info({ servers: this.serverNames }, 'smtp configuration reloaded');
  }

  /** Replaces every connection (e.g. after a network change) and clears every backoff. */
  reconnect(): void {
    this.assertOpen();
    for (const server of this.servers) server.reconnect();
  }

  /** Closes every connection once the sends in flight settle. Later sends fail with `CLOSED`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const server of this.servers) server.retire();
  }

  /** A server whose configuration is unchanged keeps its state (connections, health); any other starts afresh. */
  private build(configs: ResolvedSmtpServerConfig[], previous: readonly ServerState[]): ServerState[] {
    return configs.map(
      (config) =>
        previous.find((s) => s.name === config.name && sameConfig(s.config, config)) ??
        new ServerState(config, this.backoff, this.maxRequeues),
    );
  }

  private reorder(): void {
    const position = new Map(this.servers.map((s, i) => [s, i]));
    const order = [...this.servers].sort((a, b) => b.config.priority - a.config.priority || position.get(a)! - position.get(b)!);
    const preferred = order.findIndex((s) => s.name === this.preferred);
    if (preferred > 0) order.unshift(...order.splice(preferred, 1));
    this.sendOrder = order;
  }

  private unavailable(attempts: SmtpAttempt[], waiting: ServerState[]): SmtpError {
    const retryAt = waiting.length ? new Date(Math.min(...waiting.map((s) => s.nextAttemptAt))) : undefined;
    const last = attempts.at(-1);
    const authOnly = attempts.length > 0 && attempts.every((a) => a.failure === 'auth');
    const tried = attempts.length
      ? attempts.map((a) => `${a.server}: ${a.response ?? a.message}`).join('; ')
      : `every server is backing off after earlier failures (${this.servers.map((s) => s.name).join(', ')})`;
    return new SmtpError(
      authOnly ? 'SMTP_AUTH' : 'SMTP_UNAVAILABLE',
      `No SMTP server accepted the message (${tried}).${retryAt ? ` Try again after ${retryAt.toISOString()}.` : ''}`,
      { server: last?.server, smtpCode: last?.code, responseCode: last?.responseCode, response: last?.response, attempts, retryAt },
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new AgentSmtpError('CLOSED', 'The SMTP pool is closed; create a new mailer to send again.');
  }
}

function sameConfig(a: ResolvedSmtpServerConfig, b: ResolvedSmtpServerConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function rejectedDetails(info: { rejected: unknown[]; rejectedErrors?: unknown[] }): RejectedRecipient[] {
  const errors = (info.rejectedErrors ?? []) as (Error & { recipient?: string; responseCode?: number; response?: string })[];
  return info.rejected.map((address) => {
    const err = errors.find((e) => e.recipient === String(address));
    return { address: String(address), responseCode: err?.responseCode, response: err?.response };
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
