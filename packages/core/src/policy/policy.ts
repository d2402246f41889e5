/**
 * A recipient (or sender) rule, compared with the wire form of an address (what goes into RCPT TO / MAIL FROM):
 * - `ada@example.com`: that address (the domain compared as its ASCII A-label, case-insensitively; the local part
 *   case-insensitively too, so `Ada@` and `ada@` are one rule);
 * - `@example.com`: every address at that domain, not its subdomains;
 * - `*.example.com`: every address at a subdomain of it (`eu.example.com`), not `example.com` itself (list both for both).
 * Unicode domains may be written either way (`bücher.example` or `xn--bcher-kva.example`).
 */
export type AddressRule = string;

/** When a message waits for a human's approval before it is sent. */
export interface ApprovalRule {
  /** Every message. */
  always?: boolean;
  /** A message with any recipient (to, cc or bcc) outside these rules. */
  outside?: readonly AddressRule[];
  /** A message to more than this many recipients in all. */
  aboveRecipients?: number;
  /** Code-given policies only (not stored): true when this message needs approval. */
  when?: (email: PolicyEmailView) => boolean;
  /** How long a pending message waits for a decision before it expires and is never sent. Default 24 h. */
  expiresAfterMs?: number;
}

/** What an approval predicate sees: the composed message's envelope and headers, never attachments' content. */
export interface PolicyEmailView {
  from: string;
  /** Every envelope recipient in wire form (to, cc, bcc). */
  recipients: readonly string[];
  subject: string;
  attachmentCount: number;
}

/**
 * What one agent may do. Every key is optional; a missing key imposes nothing, so `{}` allows everything (the
 * single-developer default of `createMailer`). A service gives agents without a policy `DEFAULT_AGENT_POLICY`.
 * Enforced in the pipeline on the wire-form envelope, and again (all but the counters) when the message is sent.
 */
export interface Policy {
  /** False: the agent may send nothing (`POLICY_SEND_DISABLED`). Default true. */
  maySend?: boolean;
  recipients?: {
    /** Only these recipients. `[]` allows none; no `allow` key allows every address not blocked. */
    allow?: readonly AddressRule[];
    /** Never these, even when `allow` matches. */
    block?: readonly AddressRule[];
  };
  /** Most envelope recipients (to + cc + bcc) in one message. */
  maxRecipientsPerMessage?: number;
  /** Most messages accepted per UTC day (resets at 00:00 UTC), counted in the store: holds across processes. */
  dailyLimit?: number;
  /** Most messages accepted per minute, counted in the store. */
  perMinuteLimit?: number;
  /** The owner's stored SMTP configs (ids) the agent sends through, first one first; others are failovers. Default: the owner's default. */
  smtpConfigs?: readonly string[];
  /**
   * `from` addresses the agent may set (rules as for recipients). Without it, the agent may not set `from` at all:
   * its mail goes out as the configured sender (`POLICY_FROM_NOT_ALLOWED` otherwise).
   */
  from?: readonly AddressRule[];
  /** False: no attachments. Otherwise caps (defaults: 10 files, 10 MiB in all) and a folder files may come from. */
  attachments?:
    | false
    | {
        maxCount?: number;
        maxTotalBytes?: number;
        /**
         * Attachments given as `{ path }` are read from inside this folder only (no `..`, no absolute path outside,
         * no symlink leaving it). Without it, attachments must carry their content.
         */
        directory?: string;
      };
  /** Which messages wait for a human (`pending_approval`) instead of going out. */
  approval?: ApprovalRule;
}

/**
 * The policy of an agent created through a service that has none of its own, stated here so it can be read and
 * documented: it bounds what a prompt-injected agent can do (50 messages a day, 10 a minute, 10 recipients each, no
 * `from` of its own, no files from disk) without choosing its recipients for it. Give `recipients.allow` to do that.
 */
export const DEFAULT_AGENT_POLICY: Readonly<Policy> = Object.freeze({
  maySend: true,
  maxRecipientsPerMessage: 10,
  dailyLimit: 50,
  perMinuteLimit: 10,
  attachments: Object.freeze({ maxCount: 10, maxTotalBytes: 10 * 1024 * 1024 }),
});

/** Who a policy is for: one agent of one owner, or (`agentId` undefined) the owner's agents without one of their own. */
export interface PolicyScope {
  ownerId: string;
  agentId: string | undefined;
}
