import { AgentSmtpError, hasErrorMarker, type AgentSmtpErrorCode } from './agent-smtp-error.js';

export type SmtpFailureClass = 'transient' | 'auth' | 'permanent' | 'ambiguous';

/** One try of one server during a send. */
export interface SmtpAttempt {
  server: string;
  failure: SmtpFailureClass;
  /** nodemailer's code (ECONNECTION, EAUTH, EENVELOPE, …) when there is one. */
  code: string | undefined;
  responseCode: number | undefined;
  /** The server's own words, e.g. `550 5.1.1 No such user`. */
  response: string | undefined;
  message: string;
  /** When the attempt ended. */
  at: Date;
}

export interface SmtpErrorDetails {
  server?: string | undefined;
  smtpCode?: string | undefined;
  responseCode?: number | undefined;
  response?: string | undefined;
  command?: string | undefined;
  attempts?: readonly SmtpAttempt[];
  /** Recipients the server refused, when it refused all of them. */
  rejected?: readonly string[];
  /** When a later try may succeed (the earliest moment a server leaves its backoff). */
  retryAt?: Date | undefined;
}

// Its own marker: `AgentSmtpError.isInstance` is true for every subclass, `SmtpError.isInstance` only for this one.
const MARKER = 'agent-smtp.error.SmtpError';
const marker = Symbol.for(MARKER);

/** A send failed at an SMTP server, or no server could take it. Carries the server's reply without secrets. */
export class SmtpError extends AgentSmtpError {
  private readonly [marker] = true;
  readonly server: string | undefined;
  readonly smtpCode: string | undefined;
  readonly responseCode: number | undefined;
  readonly response: string | undefined;
  readonly command: string | undefined;
  readonly attempts: readonly SmtpAttempt[];
  readonly rejected: readonly string[];
  readonly retryAt: Date | undefined;

  constructor(code: AgentSmtpErrorCode, message: string, details: SmtpErrorDetails = {}, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, { retryable: options.retryable ?? code !== 'SMTP_REJECTED', cause: options.cause });
    this.name = 'SmtpError';
    this.server = details.server;
    this.smtpCode = details.smtpCode;
    this.responseCode = details.responseCode;
    this.response = details.response;
    this.command = details.command;
    this.attempts = details.attempts ?? [];
    this.rejected = details.rejected ?? [];
    this.retryAt = details.retryAt;
  }

  static override isInstance(error: unknown): error is SmtpError {
    return hasErrorMarker(error, MARKER);
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      server: this.server,
      smtpCode: this.smtpCode,
      responseCode: this.responseCode,
      response: this.response,
      rejected: this.rejected.length ? this.rejected : undefined,
      retryAt: this.retryAt?.toISOString(),
      attempts: this.attempts,
    };
  }
}
