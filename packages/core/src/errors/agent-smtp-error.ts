const MARKER = 'agent-smtp.error';
const marker = Symbol.for(MARKER);

/** Every code an agent-smtp error can carry. Tools hand these to models, so they are stable API. */
export type AgentSmtpErrorCode =
  /** Input failed validation; `field` names what to fix. */
  | 'VALIDATION_ERROR'
  /** Configuration is wrong or missing (a server list, an env variable, an option). */
  | 'CONFIG_ERROR'
  /** A template could not be parsed or rendered (strict mode names every missing variable). */
  | 'TEMPLATE_ERROR'
  /** The same idempotency key was used with a different message. */
  | 'IDEMPOTENCY_CONFLICT'
  /** The SMTP server refused the message or every recipient for good (5xx on RCPT or DATA). */
  | 'SMTP_REJECTED'
  /** A server failed for a reason that may pass (connection, timeout, 4xx). */
  | 'SMTP_TRANSIENT'
  /** A server refused our credentials or TLS settings. */
  | 'SMTP_AUTH'
  /** No configured server could take the message (all failed, or all are backing off). */
  | 'SMTP_UNAVAILABLE'
  /** A record asked for does not exist (for this owner). */
  | 'NOT_FOUND'
  /** The mailer or pool was closed. */
  | 'CLOSED'
  /**
   * The caller's signal aborted the send, or the pool was closed while it ran, before the message was handed to a
   * server: nothing was sent, so the same message may be sent again (`retryable` is true).
   */
  | 'ABORTED'
  /** A message's lease expired with the outcome of its send unrecorded; it may have been delivered (records only). */
  | 'LEASE_EXPIRED'
  /** Something failed inside the service (its storage, a dependency), not because of the request. */
  | 'INTERNAL_ERROR'
  /** A recipient is on the owner's suppression list (unsubscribed, bounced, complained, or added by hand). */
  | 'SUPPRESSED'
  /**
   * The caller may not act for this owner: a call that names no owner where tools serve many, or one that names
   * another owner than the mailer's. Nothing was done.
   */
  | 'FORBIDDEN'
  /** The agent's policy does not let it send at all. */
  | 'POLICY_SEND_DISABLED'
  /** A recipient is outside the agent's allowed recipients, or on its blocked list. */
  | 'POLICY_RECIPIENT_NOT_ALLOWED'
  /** More recipients in one message than the agent's policy allows. */
  | 'POLICY_TOO_MANY_RECIPIENTS'
  /** The agent used its messages for today; `retryAt` says when the day's quota resets. */
  | 'POLICY_DAILY_LIMIT'
  /** The agent sent its messages for this minute; `retryAt` says when it may send again. */
  | 'POLICY_RATE_LIMIT'
  /** The agent may not send from this address (or may not choose a sender at all). */
  | 'POLICY_FROM_NOT_ALLOWED'
  /** Attachments are not allowed, too many, too large, or a file path the agent may not read. */
  | 'POLICY_ATTACHMENT_NOT_ALLOWED'
  /** The message waited for approval past its expiry; it was not and will not be sent. */
  | 'APPROVAL_EXPIRED'
  /** The message is not waiting for approval (already decided, cancelled, or never needed it). */
  | 'APPROVAL_NOT_PENDING';

export interface AgentSmtpErrorOptions {
  retryable?: boolean;
  cause?: unknown;
}

/**
 * True when `error` carries `Symbol.for(marker)`. Each error class sets its own marker, and `Symbol.for` is shared by
 * every copy of this package loaded in one process, so a check holds across copies where `instanceof` does not.
 */
export function hasErrorMarker(error: unknown, marker: string): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[Symbol.for(marker)] === true;
}

/**
 * The one base class of every error agent-smtp throws. Use `AgentSmtpError.isInstance(err)` (or a subclass's own
 * `isInstance`) rather than `instanceof`: it holds across duplicated copies of the package in one process.
 */
export class AgentSmtpError extends Error {
  private readonly [marker] = true;
  readonly code: AgentSmtpErrorCode;
  readonly retryable: boolean;

  constructor(code: AgentSmtpErrorCode, message: string, options: AgentSmtpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentSmtpError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }

  static isInstance(error: unknown): error is AgentSmtpError {
    return hasErrorMarker(error, MARKER);
  }

  /** A plain object safe to log or return to a model: code, message, retryable and the subclass's fields. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable };
  }
}
