import { AgentSmtpError, hasErrorMarker } from './agent-smtp-error.js';

// Its own marker: `AgentSmtpError.isInstance` is true for every subclass, `ConfigError.isInstance` only for this one.
const MARKER = 'agent-smtp.error.ConfigError';
const marker = Symbol.for(MARKER);

/** Configuration is wrong. `setting` names the option or environment variable to fix. */
export class ConfigError extends AgentSmtpError {
  private readonly [marker] = true;
  readonly setting: string | undefined;
  /**
   * A stored secret (an SMTP password) exists but may not be read with this process's access (a user's client over
   * Supabase Vault, which only the service role reads): what needs no secret, such as queueing, may go on.
   */
  readonly secretNotReadableHere: boolean;

  constructor(message: string, options: { setting?: string; cause?: unknown; secretNotReadableHere?: boolean } = {}) {
    super('CONFIG_ERROR', message, { retryable: false, cause: options.cause });
    this.name = 'ConfigError';
    this.setting = options.setting;
    this.secretNotReadableHere = options.secretNotReadableHere ?? false;
  }

  static override isInstance(error: unknown): error is ConfigError {
    return hasErrorMarker(error, MARKER);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), setting: this.setting };
  }
}
