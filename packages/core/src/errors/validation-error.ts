import { AgentSmtpError, hasErrorMarker } from './agent-smtp-error.js';

export interface ValidationIssue {
  /** Dotted path of the offending field, e.g. `to[1]` or `headers.X-Campaign`. */
  field: string;
  message: string;
}

// Its own marker: `AgentSmtpError.isInstance` is true for every subclass, `ValidationError.isInstance` only for this one.
const MARKER = 'agent-smtp.error.ValidationError';
const marker = Symbol.for(MARKER);

/** Input was refused before anything was sent. `field` names the first offending field; `issues` lists all. */
export class ValidationError extends AgentSmtpError {
  private readonly [marker] = true;
  readonly field: string;
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[], options: { cause?: unknown } = {}) {
    const first = issues[0] ?? { field: '(input)', message: 'is invalid' };
    const rest = issues.length > 1 ? ` (and ${issues.length - 1} more: ${issues.slice(1).map((i) => i.field).join(', ')})` : '';
    super('VALIDATION_ERROR', `${first.field}: ${first.message}${rest}`, { retryable: false, cause: options.cause });
    this.name = 'ValidationError';
    this.field = first.field;
    this.issues = issues;
  }

  static of(field: string, message: string): ValidationError {
    return new ValidationError([{ field, message }]);
  }

  static override isInstance(error: unknown): error is ValidationError {
    return hasErrorMarker(error, MARKER);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field, issues: this.issues };
  }
}
