import type { PoolMessage } from '../message/build-pool-message.js';
import {
  type ResolvedSmtpServerConfig,
  resolveSmtpServerConfigs,
  sameResolvedConfig,
  serverSecrets,
  type SmtpServerConfig,
} from '../config/smtp-server-config.js';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { SmtpError, type SmtpAttempt } from '../errors/smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { type Logger, silentLogger } from '../logger/logger.js';
import { SecretScrubber } from '../secrets/secret-scrubber.js';
import { type BackoffOptions, DEFAULT_BACKOFF, type ResolvedBackoff } from './backoff.js';
import { classifySmtpError, type NodemailerErrorLike } from './classify-smtp-error.js';
import { type SendTracker, ServerState, type ServerStatus } from './server-state.js';

export interface SmtpPoolOptions {
  servers: readonly SmtpServerConfig[];
  backoff?: BackoffOptions;
  /**
   * Longest one send spends waiting for backing-off servers to be tried again, summed over its waits. Time spent in
   * attempts does not count, so a slow attempt never uses up the retries `maxRetries` promises. Default: 5000 ms.
   */
  maxRetryWaitMs?: number;
  /** Messages nodemailer may requeue onto a new connection when one closes before a byte was sent. Default: 2. */
  maxRequeues?: number;
  logger?: Logger;
}

/** What the pool sends: nodemailer message fields with an explicit envelope. */
export type { PoolMessage } from '../message/build-pool-message.js';

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

export interface PoolSendOptions {
  /**
   * Aborts the send. Before the message was handed to a server (queued, connecting, waiting out a backoff, between
   * commands) the send rejects at once with an `SmtpError` coded `ABORTED`, `retryable`: nothing was sent. Once the
   * whole message was handed over it resolves with status `unknown`: it may have been delivered.
   */
  signal?: AbortSignal;
}

export interface PoolCloseOptions {
  /**
   * Close every connection now instead of once the sends in flight settle. Each of those sends settles at once:
   * `ABORTED` (retryable, nothing sent) if its message had not been handed over yet, else status `unknown`.
   */
  force?: boolean;
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
 *
 * Every text it returns or throws (replies, messages, attempts, status, causes) has the configured credentials
 * scrubbed out, and its state is in private fields, so `util.inspect(pool)` shows no password.
 */
export class SmtpPool {
  /** In configured order. */
  #servers: ServerState[];
  /** Servers removed by reload() whose sends may still run; a forced close must reach them. */
  readonly #retired = new Set<ServerState>();
  /** The order sends try them: preferred first, then by priority, then configured order. Kept current by reorder(). */
  #sendOrder: ServerState[] = [];
  #preferred: string | undefined;
  #closed = false;
  /** Set by close({ force: true }): connection failures from then on are ours, not the servers'. */
  #forceClosed = false;
  /** Aborted by close(): wakes every send waiting out a backoff. */
  readonly #closing = new AbortController();
  /** The credentials of every configured server, removed from whatever any server says. */
  #scrubber: SecretScrubber;
  /** Per server, its own scrubber merged with #scrubber: built once per reload, not once per reply or error. */
  #serverScrubbers = new WeakMap<ServerState, SecretScrubber>();
  readonly #backoff: ResolvedBackoff;
  readonly #maxRetryWaitMs: number;
  readonly #maxRequeues: number;
  readonly #logger: Logger;

  constructor(options: SmtpPoolOptions) {
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#maxRetryWaitMs = options.maxRetryWaitMs ?? 5_000;
    this.#maxRequeues = options.maxRequeues ?? 2;
    this.#logger = options.logger ?? silentLogger;
    this.#servers = this.#build(resolveSmtpServerConfigs(options.servers), []);
    this.#scrubber = SecretScrubber.for(this.#servers.flatMap((s) => serverSecrets(s.config)));
    this.#reorder();
  }

  /** Server names, in the order sends try them. */
  get serverNames(): string[] {
    return this.#sendOrder.map((s) => s.name);
  }

  /**
   * Sends one message, failing over between servers. Throws `SmtpError` when it definitely was not sent
   * (`ABORTED` when `options.signal` aborted it or the pool closed under it first).
   */
  async send(message: PoolMessage, options: PoolSendOptions = {}): Promise<PoolSendResult> {
    // A closed pool refuses with ABORTED (retryable), not CLOSED: a message that reaches it as it closes (a worker's
    // claim that returned late, a retired owner pool) was not sent and must go back to the queue, not fail for good.
    const { signal } = options;
    const attempts: SmtpAttempt[] = [];
    const triesByServer = new Map<ServerState, number>();
    // Only waiting for a backoff spends this; attempts, however slow, do not (a slow greeting used to use it all).
    let waitBudgetMs = this.#maxRetryWaitMs;

    for (;;) {
      if (signal?.aborted || this.#closed) throw this.#cutOff(attempts, signal?.aborted ? 'aborted' : 'closed', undefined);
      const now = Date.now();
      const withTriesLeft = this.#sendOrder.filter((s) => (triesByServer.get(s) ?? 0) <= s.config.maxRetries);
      const server = withTriesLeft.find((s) => s.isAvailable(now));
      if (!server) {
        const wakeAt = Math.min(...withTriesLeft.map((s) => (s.probing ? now + 25 : s.nextAttemptAt)));
        if (withTriesLeft.length === 0 || wakeAt - now > waitBudgetMs) throw this.#unavailable(attempts, withTriesLeft);
        const sleptFrom = Date.now();
        await this.#sleep(Math.max(5, wakeAt - now), signal);
        waitBudgetMs -= Date.now() - sleptFrom;
        continue;
      }

      triesByServer.set(server, (triesByServer.get(server) ?? 0) + 1);
      const outcome = await this.#attempt(server, message, attempts, signal);
      if (outcome) return outcome;
    }
  }

  /** One try of one server: the result, or undefined after a failure worth trying elsewhere or again (in `attempts`). */
  async #attempt(server: ServerState, message: PoolMessage, attempts: SmtpAttempt[], signal: AbortSignal | undefined): Promise<PoolSendResult | undefined> {
    const halfOpen = !server.isHealthy();
    if (halfOpen) server.probing = true;
    const generation = server.generation;
    const tracker: SendTracker = { bodySent: false };
    const scrubber = this.#scrubberFor(server);
    const scrub = (text: string | undefined): string | undefined => scrubber.scrub(text);
    try {
      const info = await server.send(message, tracker, signal);
      server.recordSuccess();
      server.messagesSent++;
      const rejectedReasons = rejectedDetails(info).map((r) => ({ ...r, response: scrub(r.response) }));
      return {
        status: 'sent',
        server: server.name,
        messageId: message.messageId,
        accepted: info.accepted.map(String),
        rejected: rejectedReasons.map((r) => r.address),
        rejectedReasons,
        response: scrub(info.response),
        attempts,
      };
    } catch (caught) {
      const raw = caught as Error & NodemailerErrorLike & { response?: string; rejected?: string[] };
      const cause = scrubber.scrubError(raw);
      // Only failures we caused count as interruptions: a server's own refusal that races an abort stays what it is.
      const interruption = raw.code === 'EABORT' ? 'aborted' : this.#forceClosed && !raw.responseCode ? 'closed' : undefined;
      if (interruption) {
        // We cut the send short, the server did nothing wrong: its health is left as it was.
        if (!tracker.bodySent) throw this.#cutOff(attempts, interruption, cause);
        return this.#ambiguous(server, message, attempts, cause, interruption);
      }
      const failure = classifySmtpError(raw, tracker.bodySent);
      const attempt: SmtpAttempt = {
        server: server.name,
        failure,
        code: raw.code,
        responseCode: raw.responseCode || undefined,
        response: scrub(raw.response),
        message: scrub(raw.message) ?? '',
        at: new Date(),
      };
      attempts.push(attempt);
      this.#logger.warn({ server: server.name, failure, code: raw.code, responseCode: raw.responseCode }, 'smtp attempt failed');

      if (failure === 'permanent') {
        // The server answered properly; it is the message that was refused.
        server.recordSuccess();
        throw new SmtpError('SMTP_REJECTED', `${server.name} refused the message: ${attempt.response ?? attempt.message}`, {
          server: server.name,
          smtpCode: raw.code,
          responseCode: attempt.responseCode,
          response: attempt.response,
          command: scrub(raw.command),
          attempts,
          rejected: raw.rejected?.map(String),
        }, { cause });
      }
      server.recordFailure(failure, raw.code, attempt.message, generation, Date.now());
      if (failure === 'ambiguous') return this.#ambiguous(server, message, attempts, cause, undefined);
      return undefined;
    } finally {
      if (halfOpen) server.probing = false;
    }
  }

  /** The connection ended (or we ended it) after the whole message was handed over: it may have been delivered. */
  #ambiguous(
    server: ServerState,
    message: PoolMessage,
    attempts: SmtpAttempt[],
    cause: Error & NodemailerErrorLike,
    interruption: 'aborted' | 'closed' | undefined,
  ): PoolSendResult {
    if (interruption) {
      attempts.push({ server: server.name, failure: 'ambiguous', code: cause.code, responseCode: undefined, response: undefined, message: cause.message, at: new Date() });
    }
    const why =
      interruption === 'aborted'
        ? `The send to ${server.name} was aborted after the whole message was handed over`
        : interruption === 'closed'
          ? `The SMTP pool was closed while ${server.name} had the whole message`
          : `The connection to ${server.name} broke after the whole message was sent (${cause.message})`;
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
        interruption ? 'ABORTED' : 'SMTP_TRANSIENT',
        `${why}; it may have been delivered, so it is not sent again automatically.`,
        { server: server.name, smtpCode: cause.code, attempts },
        { cause, retryable: false },
      ),
    };
  }

  /** Opens a connection to each server (and authenticates) without sending; a server that answers is marked healthy. */
  async verify(): Promise<VerifyResult[]> {
    this.#assertOpen();
    return Promise.all(
      this.#sendOrder.map(async (server): Promise<VerifyResult> => {
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
            error: { code: err.code, message: this.#scrubberFor(server).scrub(err.message) },
          };
        }
      }),
    );
  }

  /** Health and counters per server, in the order sends try them. Holds no credentials. */
  status(): ServerStatus[] {
    const now = Date.now();
    return this.#sendOrder.map((s) => s.status(now, s.name === this.#preferred));
  }

  /** Prefers one server for the sends that follow (it is tried first while healthy); `null` goes back to priority order. */
  use(name: string | null): void {
    this.#assertOpen();
    if (name !== null && !this.#servers.some((s) => s.name === name)) {
      throw ValidationError.of('server', `no server is named "${name}"; configured servers: ${this.serverNames.join(', ')}`);
    }
    this.#preferred = name ?? undefined;
    this.#reorder();
  }

  /**
   * Takes a new server list. Servers whose configuration is unchanged keep their connections and health;
   * removed or changed ones stop taking new sends and close once the sends they carry have settled.
   */
  reload(configs: readonly SmtpServerConfig[]): void {
    this.#assertOpen();
    const resolved = resolveSmtpServerConfigs(configs);
    const previous = this.#servers;
    this.#servers = this.#build(resolved, previous);
    for (const old of this.#retired) if (old.inFlight === 0) this.#retired.delete(old);
    for (const old of previous) {
      if (this.#servers.includes(old)) continue;
      old.retire();
      if (old.inFlight > 0) this.#retired.add(old);
    }
    // Retired servers' sends may still fail with their replies, so their secrets stay scrubbed too.
    this.#scrubber = SecretScrubber.for([...this.#servers, ...this.#retired].flatMap((s) => serverSecrets(s.config)));
    this.#serverScrubbers = new WeakMap();
    if (this.#preferred && !this.#servers.some((s) => s.name === this.#preferred)) this.#preferred = undefined;
    this.#reorder();
    this.#logger.info({ servers: this.serverNames }, 'smtp configuration reloaded');
  }

  /** Replaces every connection (e.g. after a network change) and clears every backoff. */
  reconnect(): void {
    this.#assertOpen();
    for (const server of this.#servers) server.reconnect();
  }

  /**
   * Closes the pool; later sends fail with `CLOSED`. Sends waiting out a backoff end at once with `ABORTED`. Without
   * `force`, connections close with QUIT once the sends in flight settle; with it, every connection closes now and
   * every send settles at once, so no socket or timer of the pool keeps the process alive.
   */
  async close(options: PoolCloseOptions = {}): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closing.abort();
      for (const server of this.#servers) server.retire();
    }
    if (options.force) {
      this.#forceClosed = true;
      for (const server of [...this.#servers, ...this.#retired]) server.forceClose();
      this.#retired.clear();
    }
  }

  /** Shows what a reader of a log needs, never the configuration behind it. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SmtpPool { servers: [${this.serverNames.join(', ')}]${this.#closed ? ', closed' : ''} }`;
  }

  toJSON(): { servers: string[]; closed: boolean } {
    return { servers: this.serverNames, closed: this.#closed };
  }

  /** A server whose configuration is unchanged keeps its state (connections, health); any other starts afresh. */
  #build(configs: ResolvedSmtpServerConfig[], previous: readonly ServerState[]): ServerState[] {
    return configs.map(
      (config) =>
        previous.find((s) => s.name === config.name && sameResolvedConfig(s.config, config)) ??
        new ServerState(config, this.#backoff, this.#maxRequeues),
    );
  }

  #reorder(): void {
    const position = new Map(this.#servers.map((s, i) => [s, i]));
    const order = [...this.#servers].sort((a, b) => b.config.priority - a.config.priority || position.get(a)! - position.get(b)!);
    const preferred = order.findIndex((s) => s.name === this.#preferred);
    if (preferred > 0) order.unshift(...order.splice(preferred, 1));
    this.#sendOrder = order;
  }

  /** The server's own secrets and every configured server's, in one scrubber, so each text is scanned once. */
  #scrubberFor(server: ServerState): SecretScrubber {
    let scrubber = this.#serverScrubbers.get(server);
    if (!scrubber) {
      scrubber = server.scrubber.merge(this.#scrubber);
      this.#serverScrubbers.set(server, scrubber);
    }
    return scrubber;
  }

  /** Waits `ms`, or less when `signal` aborts or the pool closes; leaves no timer behind either way. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const closing = this.#closing.signal;
    if (signal?.aborted || closing.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', wake);
        closing.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      signal?.addEventListener('abort', wake, { once: true });
      closing.addEventListener('abort', wake, { once: true });
    });
  }

  /** The send was cut short by the caller or by close() before the message was handed over: nothing was sent. */
  #cutOff(attempts: SmtpAttempt[], reason: 'aborted' | 'closed', cause: Error | undefined): SmtpError {
    const last = attempts.at(-1);
    const message =
      reason === 'aborted'
        ? 'The send was aborted before the message was handed to an SMTP server; nothing was sent, so it may be sent again.'
        : 'The SMTP pool was closed before the message was handed to a server; nothing was sent, so it may be sent again.';
    return new SmtpError('ABORTED', message, { server: last?.server, attempts }, { retryable: true, ...(cause ? { cause } : {}) });
  }

  #unavailable(attempts: SmtpAttempt[], waiting: ServerState[]): SmtpError {
    const retryAt = waiting.length ? new Date(Math.min(...waiting.map((s) => s.nextAttemptAt))) : undefined;
    const last = attempts.at(-1);
    // A server skipped for its backoff is named with the failure that put it there: the first send after a wrong
    // password must not be the only one that says so.
    const skipped = this.#sendOrder.filter((s) => !attempts.some((a) => a.server === s.name) && s.lastError && !s.isHealthy());
    const failures = [...attempts.map((a) => a.failure), ...skipped.map((s) => s.lastError!.failure)];
    // Every server refused the login or TLS: waiting changes nothing until someone fixes the configuration.
    const authOnly = failures.length > 0 && failures.every((f) => f === 'auth');
    const tried = [
      ...distinctFailures(attempts),
      ...skipped.map((s) => `${s.name}: ${s.lastError!.message}, backing off`),
    ];
    const cause = tried.length ? tried.join('; ') : `every server is backing off after earlier failures (${this.#servers.map((s) => s.name).join(', ')})`;
    const lastCode = last ? { smtpCode: last.code, responseCode: last.responseCode, response: last.response } : { smtpCode: skipped.at(-1)?.lastError?.code };
    return new SmtpError(
      authOnly ? 'SMTP_AUTH' : 'SMTP_UNAVAILABLE',
      authOnly
        ? `${this.#servers.length > 1 ? 'Every SMTP server' : 'The SMTP server'} refused the configured login or TLS settings (${cause}). ` +
          'The SMTP configuration (username, password, port or TLS) must be corrected; sending fails until it is.'
        : `No SMTP server accepted the message (${cause}).${retryAt ? ` Try again after ${retryAt.toISOString()}.` : ''}`,
      { server: last?.server ?? skipped.at(-1)?.name, ...lastCode, attempts, retryAt },
    );
  }

  #assertOpen(): void {
    if (this.#closed) throw new AgentSmtpError('CLOSED', 'The SMTP pool is closed; create a new mailer to send again.');
  }
}

/**
 * Each server's failures once per distinct reply, in the order they first happened: `primary (2 tries): connect
 * ECONNREFUSED …` rather than the same sentence once per retry.
 */
function distinctFailures(attempts: readonly SmtpAttempt[]): string[] {
  const seen = new Map<string, { server: string; text: string; tries: number }>();
  for (const attempt of attempts) {
    const text = attempt.response ?? attempt.message;
    const key = `${attempt.server}\u0000${text}`;
    const entry = seen.get(key);
    if (entry) entry.tries++;
    else seen.set(key, { server: attempt.server, text, tries: 1 });
  }
  return [...seen.values()].map(({ server, text, tries }) => `${server}${tries > 1 ? ` (${tries} tries)` : ''}: ${text}`);
}

function rejectedDetails(info: { rejected: unknown[]; rejectedErrors?: unknown[] }): RejectedRecipient[] {
  const errors = (info.rejectedErrors ?? []) as (Error & { recipient?: string; responseCode?: number; response?: string })[];
  return info.rejected.map((address) => {
    const err = errors.find((e) => e.recipient === String(address));
    return { address: String(address), responseCode: err?.responseCode, response: err?.response };
  });
}
