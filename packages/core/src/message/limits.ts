/** Bounds every message is checked against before anything is sent. */
export interface MessageLimits {
  /** Largest total of the bodies and decoded attachments, in bytes. Default: 10 MiB. */
  maxMessageBytes: number;
  /** Most recipients (to + cc + bcc) in one message. Default: 100. */
  maxRecipients: number;
}

export const DEFAULT_LIMITS: MessageLimits = { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100 };
