import { AgentSmtpError } from './agent-smtp-error.js';

/** Configuration is wrong. `setting` names the option or environment variable to fix. */
export class ConfigError extends AgentSmtpError {
  readonly setting: string | undefined;

  constructor(message: string, options: { setting?: string; cause?: unknown } = {}) {
    super('CONFIG_ERROR', message, { retryable: false, cause: options.cause });
    this.name = 'ConfigError';
    this.setting = options.setting;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), setting: this.setting };
  }
}
