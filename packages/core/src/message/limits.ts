/** Bounds every message is checked against before anything is sent. */
export interface MessageLimits {
  /**
   * Largest message as it goes out, in bytes: header lines, rendered bodies and decoded attachments together,
   * checked before and again after templates are rendered. Default: 10 MiB.
   */
  maxMessageBytes: number;
  /** Most recipients (to + cc + bcc) in one message. Default: 100. */
  maxRecipients: number;
  /**
   * Largest Markdown converted to HTML, in bytes (after rendering). The converter's work grows faster than the
   * input on some shapes of text, so this is kept well below `maxMessageBytes`; send larger bodies as `html`.
   * Default: 256 KiB.
   */
  maxMarkdownBytes?: number;
}

export const DEFAULT_MAX_MARKDOWN_BYTES = 256 * 1024;

export const DEFAULT_LIMITS: MessageLimits = { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxMarkdownBytes: DEFAULT_MAX_MARKDOWN_BYTES };
