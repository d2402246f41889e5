import type { EventEmitter } from 'node:events';
import nodemailer, { type SendMailOptions, type SMTPPoolSentMessageInfo, type Transporter } from 'nodemailer';
import { toNodemailerDkim } from '../config/dkim-config.js';
import { type ResolvedSmtpServerConfig, revealTlsOptions, serverSecrets } from '../config/smtp-server-config.js';
import type { SmtpFailureClass } from '../errors/smtp-error.js';
import { SecretScrubber } from '../secrets/secret-scrubber.js';
import { backoffDelay, type ResolvedBackoff } from './backoff.js';
import { explainConnectionError, IMPLICIT_TLS_PROBE_TIMEOUT_MS, probeImplicitTls } from './explain-tls-failure.js';

/** Marks, per message, that nodemailer has read the whole body: any failure after that is ambiguous. */
export interface SendTracker {
  bodySent: boolean;
}
const TRACKER_KEY = 'agentSmtpTracker';

/** How long a closing connection waits for the server's answer to QUIT before it is cut. */
const QUIT_TIMEOUT_MS = 2_000;

/** The parts of nodemailer's pool (lib/smtp-pool) this file reaches into to say QUIT on close. */
interface PoolResourceInternals extends EventEmitter {
  available: boolean;
  _closed: boolean;
  connection?: { quit(): void; _destroyed?: boolean; _closing?: boolean } | false;
  _stopIdleTimer?(): void;
  close(): void;
}
interface SmtpPoolInternals {
  _connections?: PoolResourceInternals[];
  close(options?: { force?: boolean }): void;
}

/** One pooled nodemailer transport, counted so that a retired one is closed only once it is idle. */
class TransportHandle {
  readonly transport: Transporter<SMTPPoolSentMessageInfo>;
  inFlight = 0;
  private retired = false;
  private closedPolitely = false;

  constructor(config: ResolvedSmtpServerConfig, maxRequeues: number) {
    this.transport = nodemailer.createTransport({
      pool: true,
      host: config.host,
      port: config.port,
      secure: config.secure,
      requireTLS: !config.secure && config.starttls === 'required',
      ignoreTLS: !config.secure && config.starttls === 'disabled',
      auth: config.auth ? { user: config.auth.user, pass: config.auth.pass } : undefined,
      ...(config.auth?.method ? { authMethod: config.auth.method } : {}),
      maxConnections: config.poolSize,
      maxMessages: 1_000,
      // nodemailer requeues only messages of which no byte was sent, so a bounded requeue never duplicates.
      maxRequeues,
      ...(config.rateLimit ? { rateLimit: config.rateLimit.messages, rateDelta: config.rateLimit.perMs } : {}),
      connectionTimeout: config.timeouts.connectionMs,
      greetingTimeout: config.timeouts.greetingMs,
      socketTimeout: config.timeouts.socketMs,
      // A closed connection is destroyed rather than half-closed and waited on: a polite close has already said QUIT
      // and had its 221, and a forced one must not leave a socket holding the process open for seconds.
      socketCloseTimeout: 0,
      tls: revealTlsOptions(config.tls),
      ...(config.dkim ? { dkim: toNodemailerDkim(config.dkim) } : {}),
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
      debug: false,
    } as Parameters<typeof nodemailer.createTransport>[0]) as Transporter<SMTPPoolSentMessageInfo>;
    this.transport.use('stream', (mail, done) => {
      const tracker = (mail.data as Record<string, unknown>)[TRACKER_KEY] as SendTracker | undefined;
      if (tracker) {
        mail.message.processFunc((input) => {
          // An 'end' listener does not change the stream's flow, so this adds no copy to the send path.
          input.once('end', () => {
            tracker.bodySent = true;
          });
          return input;
        });
      }
      done();
    });
  }

  async send(mail: SendMailOptions, tracker: SendTracker, signal: AbortSignal | undefined): Promise<SMTPPoolSentMessageInfo> {
    this.inFlight++;
    try {
      // A copy (a failover sends the same message with another tracker); `Object.assign` rather than a spread plus
      // fields, which on Node 20 gives every message a hidden class of its own and slows nodemailer's reads of it.
      const options: Record<string, unknown> = Object.assign({}, mail as Record<string, unknown>);
      options[TRACKER_KEY] = tracker;
      if (signal) options.signal = signal;
      return await this.transport.sendMail(options as SendMailOptions);
    } finally {
      this.inFlight--;
      if (this.retired && this.inFlight === 0) this.closePolitely();
    }
  }

  /** Closes now if idle, else once the sends it carries have settled; each connection says QUIT first. */
  retire(): void {
    this.retired = true;
    if (this.inFlight === 0) this.closePolitely();
  }

  /** Closes every connection now, busy ones included: their sends fail at once, the pool queue is emptied. */
  forceClose(): void {
    this.retired = true;
    this.closedPolitely = true;
    (this.transport.transporter as unknown as SmtpPoolInternals).close({ force: true });
  }

  /**
   * nodemailer's pool close() ends idle sockets without QUIT. Each idle connection is sent QUIT here instead (and is
   * cut if the server does not answer); one that becomes idle later (a send just settling, a rate limit releasing it)
   * says QUIT when it does, before the closed pool would end it bare.
   */
  private closePolitely(): void {
    if (this.closedPolitely) return;
    this.closedPolitely = true;
    const pool = this.transport.transporter as unknown as SmtpPoolInternals;
    for (const resource of pool._connections ?? []) {
      if (resource.available) sayQuit(resource);
      else resource.prependListener('available', () => sayQuit(resource));
    }
    this.transport.close();
  }
}

function sayQuit(resource: PoolResourceInternals): void {
  const connection = resource.connection;
  if (resource._closed || !connection || connection._destroyed || connection._closing) return;
  // Not available: the closing pool leaves it alone, and it is handed no other message.
  resource.available = false;
  resource._stopIdleTimer?.();
  // nodemailer closes the socket itself when the 221 arrives.
  connection.quit();
  const timer = setTimeout(() => resource.close(), QUIT_TIMEOUT_MS);
  timer.unref();
  resource.once('close', () => clearTimeout(timer));
}

export interface ServerStatus {
  name: string;
  host: string;
  port: number;
  secure: boolean;
  priority: number;
  /** `healthy`; `backoff` (failing, waiting until `nextRetryAt`); `half-open` (its backoff is over, the next send probes it). */
  state: 'healthy' | 'backoff' | 'half-open';
  healthy: boolean;
  preferred: boolean;
  consecutiveFailures: number;
  totalFailures: number;
  messagesSent: number;
  inFlight: number;
  nextRetryAt: Date | null;
  lastError: { failure: SmtpFailureClass; code: string | undefined; message: string; at: Date } | null;
}

/** The pool's view of one server: its transport, health and counters. */
export class ServerState {
  readonly config: ResolvedSmtpServerConfig;
  private handle: TransportHandle;
  /** Transports replaced by reconnect() that may still carry sends; a forced close must reach them too. */
  private readonly replaced = new Set<TransportHandle>();
  consecutiveFailures = 0;
  totalFailures = 0;
  messagesSent = 0;
  nextAttemptAt = 0;
  /** Set while a half-open probe is out, so one send probes a recovering server and the rest go elsewhere. */
  probing = false;
  /** Bumped on every failure; a failure of an attempt that began before the last bump does not escalate. */
  generation = 0;
  lastError: ServerStatus['lastError'] = null;
  /** Removes this server's credentials (password, DKIM key) from what it says. */
  readonly scrubber: SecretScrubber;
  /**
   * Whether the port answers a TLS handshake, asked once per configuration after a plain connection got no greeting:
   * a server that is merely slow costs one probe, not one per failed send.
   */
  private implicitTlsProbe: Promise<boolean> | undefined;

  constructor(
    config: ResolvedSmtpServerConfig,
    private readonly backoff: ResolvedBackoff,
    private readonly maxRequeues: number,
  ) {
    this.config = config;
    this.scrubber = SecretScrubber.for(serverSecrets(config));
    this.handle = new TransportHandle(config, maxRequeues);
  }

  get name(): string {
    return this.config.name;
  }

  get inFlight(): number {
    let count = this.handle.inFlight;
    for (const old of this.replaced) count += old.inFlight;
    return count;
  }

  isHealthy(): boolean {
    return this.consecutiveFailures === 0;
  }

  /** May a send use this server now? Healthy, or out of backoff with no probe already out. */
  isAvailable(now: number): boolean {
    if (this.isHealthy()) return true;
    return now >= this.nextAttemptAt && !this.probing;
  }

  /** Rejects with nodemailer's error, or, for a TLS mistake (a mismatch, a certificate), one that says what to set. */
  async send(mail: SendMailOptions, tracker: SendTracker, signal?: AbortSignal): Promise<SMTPPoolSentMessageInfo> {
    try {
      return await this.handle.send(mail, tracker, signal);
    } catch (error) {
      throw await explainConnectionError(error, this.config, () => this.speaksImplicitTls());
    }
  }

  private speaksImplicitTls(): Promise<boolean> {
    this.implicitTlsProbe ??= probeImplicitTls(this.config, Math.min(this.config.timeouts.greetingMs, IMPLICIT_TLS_PROBE_TIMEOUT_MS));
    return this.implicitTlsProbe;
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
    this.nextAttemptAt = 0;
  }

  /** `message` must already be scrubbed: status() hands it out. */
  recordFailure(failure: SmtpFailureClass, code: string | undefined, message: string, startedGeneration: number, now: number): void {
    this.totalFailures++;
    this.lastError = { failure, code, message, at: new Date(now) };
    // Many sends in flight fail together when a server goes down; count that as one failure, not fifty.
    if (startedGeneration !== this.generation && !this.isHealthy()) return;
    this.generation++;
    this.consecutiveFailures++;
    const auth = failure === 'auth';
    this.nextAttemptAt =
      now +
      backoffDelay(
        this.consecutiveFailures,
        auth ? this.backoff.authBaseMs : this.backoff.baseMs,
        auth ? this.backoff.authMaxMs : this.backoff.maxMs,
      );
  }

  /** Clears failures, e.g. after a successful `verify()`. */
  markHealthy(): void {
    this.recordSuccess();
    this.lastError = null;
  }

  /** Replaces the transport; the old one closes once its in-flight sends settle. */
  reconnect(): void {
    const old = this.handle;
    this.handle = new TransportHandle(this.config, this.maxRequeues);
    old.retire();
    for (const handle of this.replaced) if (handle.inFlight === 0) this.replaced.delete(handle);
    if (old.inFlight > 0) this.replaced.add(old);
    this.markHealthy();
  }

  async verify(): Promise<void> {
    try {
      await this.handle.transport.verify();
    } catch (error) {
      throw await explainConnectionError(error, this.config, () => this.speaksImplicitTls());
    }
  }

  /** Takes no new sends; closes with QUIT once the sends in flight settle. */
  retire(): void {
    this.handle.retire();
  }

  /** Closes every connection now; sends in flight fail at once. */
  forceClose(): void {
    this.handle.forceClose();
    for (const handle of this.replaced) handle.forceClose();
    this.replaced.clear();
  }

  status(now: number, preferred: boolean): ServerStatus {
    const healthy = this.isHealthy();
    return {
      name: this.name,
      host: this.config.host,
      port: this.config.port,
      secure: this.config.secure,
      priority: this.config.priority,
      state: healthy ? 'healthy' : now >= this.nextAttemptAt ? 'half-open' : 'backoff',
      healthy,
      preferred,
      consecutiveFailures: this.consecutiveFailures,
      totalFailures: this.totalFailures,
      messagesSent: this.messagesSent,
      inFlight: this.inFlight,
      nextRetryAt: healthy ? null : new Date(this.nextAttemptAt),
      lastError: this.lastError,
    };
  }
}
