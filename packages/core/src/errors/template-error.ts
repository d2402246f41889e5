import { AgentSmtpError, hasErrorMarker } from './agent-smtp-error.js';

// Its own marker: `AgentSmtpError.isInstance` is true for every subclass, `TemplateError.isInstance` only for this one.
const MARKER = 'agent-smtp.error.TemplateError';
const marker = Symbol.for(MARKER);

/** A template failed to parse, or (in strict mode) to render; `missing` lists every variable that had no value. */
export class TemplateError extends AgentSmtpError {
  private readonly [marker] = true;
  readonly missing: readonly string[];
  /** Where in the template source the fault is, when it is a parse error. */
  readonly position: number | undefined;

  constructor(message: string, options: { missing?: readonly string[]; position?: number; cause?: unknown } = {}) {
    super('TEMPLATE_ERROR', message, { retryable: false, cause: options.cause });
    this.name = 'TemplateError';
    this.missing = options.missing ?? [];
    this.position = options.position;
  }

  static override isInstance(error: unknown): error is TemplateError {
    return hasErrorMarker(error, MARKER);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), missing: this.missing, position: this.position };
  }
}
