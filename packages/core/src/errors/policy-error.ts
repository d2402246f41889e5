import { AgentSmtpError, type AgentSmtpErrorCode, hasErrorMarker } from './agent-smtp-error.js';

export type PolicyErrorCode = Extract<AgentSmtpErrorCode, `POLICY_${string}`>;

// Its own marker: `AgentSmtpError.isInstance` is true for every subclass, `PolicyError.isInstance` only for this one.
const MARKER = 'agent-smtp.error.PolicyError';
const marker = Symbol.for(MARKER);

/**
 * The agent's policy refused the message; nothing was sent and no quota was used. The message says what the agent
 * may do instead (whom it may write to, when its quota resets).
 */
export class PolicyError extends AgentSmtpError {
  private readonly [marker] = true;
  /** The input field the refusal is about (`to`, `cc[1]`, `from`, `attachments`), when there is one. */
  readonly field: string | undefined;
  /** When the same message may be accepted (a quota's reset), for the limits that pass. */
  readonly retryAt: Date | undefined;

  constructor(code: PolicyErrorCode, message: string, details: { field?: string | undefined; retryAt?: Date | undefined } = {}) {
    // Only a quota passes by itself; every other refusal stays until the message or the policy changes.
    super(code, message, { retryable: details.retryAt !== undefined });
    this.name = 'PolicyError';
    this.field = details.field;
    this.retryAt = details.retryAt;
  }

  static override isInstance(error: unknown): error is PolicyError {
    return hasErrorMarker(error, MARKER);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field, ...(this.retryAt ? { retryAt: this.retryAt.toISOString() } : {}) };
  }
}
