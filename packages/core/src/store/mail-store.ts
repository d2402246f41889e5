import type { Metadata, StoredEmail } from '../message/stored-email.js';

// The outbox keeps the email in the form `message/` builds; re-exported so importers of the store types keep working.
export type { Metadata, StoredAttachment, StoredEmail } from '../message/stored-email.js';

/**
 * Where the SDK keeps its state: one interface with cohesive parts, each scoped by `ownerId` (the user). No
 * method that takes an `ownerId` ever returns another owner's rows. `MemoryStore` is the default; the Postgres
 * and Supabase stores implement the same interface and pass the same contract suite (`runStoreContract`).
 */
export interface MailStore {
  /** What this store can do beyond the parts it has; callers and `runStoreContract` read it rather than guess. */
  readonly capabilities: StoreCapabilities;
  readonly outbox: OutboxStore;
  readonly events: EventStore;
  readonly suppressions: SuppressionStore;
  readonly audit: AuditStore;
  readonly counters: CounterStore;
  readonly credentials: CredentialStore;
  /** Counts of what happened to an owner's mail (sends, deliveries, opens, clicks, bounces, unsubscribes), aggregated in the store. */
  readonly stats: StatsStore;
  /** Per-agent policies edited through the service (`service.policies`); a store without it keeps policies in code only. */
  readonly policies?: PolicyStore;
  // Parts added later (templates, contacts, campaigns, webhooks) join as optional properties: a store declares a
  // part by having it, and code that needs one checks for it (`runStoreContract` runs a part's suite only then).
  close?(): Promise<void>;
}

/**
 * What a store declares about itself. The first three name methods every store of this version has: they are
 * literal `true` so that a store written against an older `MailStore` (without them) fails to compile rather than
 * fail at run time, and so a caller can tell a store that has them from one that predates them (`capabilities`
 * absent). The others differ between stores.
 */
export interface StoreCapabilities {
  /** `events.list(ownerId, { after })` pages through an owner's events in one fixed order, each exactly once. */
  readonly eventCursor: true;
  /** `outbox.enqueueMany(records)`: one call (one round trip, one transaction where the store has them). */
  readonly batchEnqueue: true;
  /** `outbox.findByMessageId(ownerId, messageIdHeader)`, indexed. */
  readonly findByMessageId: true;
  /**
   * Several processes can share the store's data: claims, idempotency keys and counters hold across them, so a
   * worker fleet on several machines can drain one outbox. False for a store that lives in one process's memory.
   */
  readonly multiProcess: boolean;
  /** What the store accepted survives the process ending (a crash, a deploy): queued mail is not lost with it. */
  readonly durable: boolean;
}

// ─── outbox ──────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * `queued` (waiting for `nextAttemptAt`) → `sending` (claimed under a lease) → `sent` | `failed` | `unknown`,
 * or back to `queued` for a retry. `cancelled` only from `queued` or `pending_approval`. `unknown` (the outcome of
 * the last attempt is ambiguous) is final: never resent automatically.
 *
 * A message that needs a human's approval starts as `pending_approval` and is never claimed in that state:
 * `decide` makes it `queued` (approved), `rejected`, or `expired` (its `approval.expiresAt` passed, by the store's
 * clock, before anyone approved it). `rejected` and `expired` are final.
 */
export type OutboxStatus = 'queued' | 'sending' | 'sent' | 'failed' | 'unknown' | 'cancelled' | 'pending_approval' | 'rejected' | 'expired';

/** A message's approval: why it needed one, until when, and who decided. */
export interface ApprovalState {
  /** Why the policy asked for approval, e.g. `recipient outside approval.outside: eve@example.net`. Secret-free. */
  reason: string;
  expiresAt: Date;
  decidedBy?: string | undefined;
  decidedAt?: Date | undefined;
}

export interface MessageError {
  code: string;
  message: string;
  responseCode?: number | undefined;
  response?: string | undefined;
  retryable: boolean;
}

export interface OutboxRecord {
  id: string;
  ownerId: string;
  agentId: string | undefined;
  /** Unique per owner (up to 256 characters). */
  idempotencyKey: string | undefined;
  /** Hash of the content (with a key only), to tell a retry (same content) from a conflict (other content). */
  fingerprint: string | undefined;
  status: OutboxStatus;
  /** The Message-ID header; every attempt of one message uses the same one. */
  messageId: string;
  email: StoredEmail;
  /** When the message may go out first. */
  sendAt: Date;
  /** When a worker may claim it next: `sendAt`, then the time of the next retry. */
  nextAttemptAt: Date;
  /** Claims so far. Also the fencing token: a settle names the attempt it belongs to. */
  attempt: number;
  maxAttempts: number;
  leaseOwner: string | undefined;
  leaseExpiresAt: Date | undefined;
  /** A lease expired while the message was being sent, so an earlier attempt may have delivered it. */
  possibleDuplicate: boolean;
  server: string | undefined;
  accepted: string[];
  rejected: string[];
  response: string | undefined;
  error: MessageError | undefined;
  tags: string[];
  metadata: Metadata;
  /** Set for a message that needed approval (whether still pending or decided). */
  approval: ApprovalState | undefined;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewOutboxRecord {
  id: string;
  ownerId: string;
  agentId: string | undefined;
  idempotencyKey: string | undefined;
  fingerprint: string | undefined;
  messageId: string;
  email: StoredEmail;
  /**
   * When the message may go out first. Undefined means now by the store's clock: the app's clock may be off, and
   * every due time the SDK computes is measured on the store's.
   */
  sendAt?: Date | undefined;
  /** Holds the first try back this long after `sendAt` (a follow-up for deferred recipients waits out a backoff). */
  delayMs?: number | undefined;
  maxAttempts: number;
  tags: string[];
  metadata: Metadata;
  /**
   * The message waits for a human: stored as `pending_approval`, expiring `ttlMs` after the store's now, never
   * claimed until `decide` approves it. Not combinable with `enqueue`'s `claim`.
   */
  approval?: { reason: string; ttlMs: number } | undefined;
}

/** What `OutboxStore.decide` did. */
export interface ApprovalDecision {
  /**
   * `approved` (now `queued`, due at `sendAt` or now, whichever is later), `rejected`, `expired` (asked to approve
   * after `approval.expiresAt`: it is now `expired` and will never be sent), or `not_pending` (it was no longer
   * pending: decided before, cancelled; nothing changed). `record` is the record as it now is.
   */
  outcome: 'approved' | 'rejected' | 'expired' | 'not_pending';
  record: OutboxRecord;
}

export interface Lease {
  workerId: string;
  leaseMs: number;
}

export interface ClaimOptions extends Lease {
  limit: number;
  ownerId?: string | undefined;
  /** Only these messages (a process delivering the follow-ups it queued itself). */
  ids?: readonly string[] | undefined;
  /** The store's clock by default; tests may pass a time. */
  now?: Date | undefined;
}

export interface EnqueueResult {
  /** False when a record with the same `(ownerId, idempotencyKey)` existed; `record` is that one, unchanged. */
  created: boolean;
  record: OutboxRecord;
}

/**
 * How an attempt ended. `retry` puts the message back in the queue `delayMs` from now by the store's clock (never
 * the app's: a skewed app clock would otherwise delay mail or burn every retry at once).
 */
export type Settlement =
  | { status: 'sent'; server: string; accepted: string[]; rejected: string[]; response: string | undefined }
  | { status: 'retry'; delayMs: number; error: MessageError; server?: string | undefined }
  | { status: 'failed'; error: MessageError; server?: string | undefined }
  | { status: 'unknown'; error: MessageError; server?: string | undefined };

export interface OutboxStore {
  /**
   * Inserts a message, atomically unique per `(ownerId, idempotencyKey)`: with a key seen before, inserts
   * nothing and returns the existing record. With `claim`, the new record starts as `sending`, attempt 1, under
   * that lease (a direct send): if the process dies mid-send, a worker takes it over once the lease expires.
   */
  enqueue(record: NewOutboxRecord, options?: { claim?: Lease }): Promise<EnqueueResult>;
  /**
   * Enqueues many messages in one call, each exactly as `enqueue` would (idempotent per `(ownerId,
   * idempotencyKey)`, also between two records of one batch: the second gets the first's record), and returns a
   * result per record in input order. All or nothing: an error leaves none of the batch stored, except one with
   * `stored: true`, which says the whole batch was stored and only its answer was lost. The records may
   * belong to several owners. The caller chunks a large send (a few hundred to a few thousand per call), so memory
   * stays flat however many recipients there are. No `claim`: a batch is for the queue, not for a direct send.
   */
  enqueueMany(records: readonly NewOutboxRecord[]): Promise<EnqueueResult[]>;
  /**
   * Claims up to `limit` due messages, oldest first, for `leaseMs`: `queued` ones whose `nextAttemptAt` has
   * come, and `sending` ones whose lease expired (their earlier attempt may have delivered them, so they are
   * marked `possibleDuplicate`). Each claim increments `attempt`. Safe with many workers in many processes:
   * no message is held by two leases at once. With `ownerId`, only that owner's messages: a worker sends
   * through one owner's servers, so it must never take another owner's mail. With `ids`, only those messages.
   *
   * Takeovers are bounded: an expired one that was taken over once already (`possibleDuplicate`), or that used its
   * last attempt, is not sent again but becomes `unknown` (`LEASE_EXPIRED`), so whatever keeps a worker from
   * recording an outcome, a message reaches a server at most one extra time in its life.
   */
  claim(options: ClaimOptions): Promise<OutboxRecord[]>;
  /**
   * Extends the lease of attempt `attempt` by `leaseMs` from now, while its send is still running. Returns false
   * when the message is no longer `sending` under that attempt. A worker calls it as a heartbeat, so a slow send
   * is never taken over (and sent twice) while its worker is alive.
   */
  extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean>;
  /**
   * Records how attempt `attempt` ended. Changes nothing and returns undefined when the message is no longer
   * `sending` under that attempt (its lease was taken over): a stale worker cannot overwrite a newer attempt.
   */
  settle(id: string, attempt: number, settlement: Settlement): Promise<OutboxRecord | undefined>;
  /** Claims a `failed` message with a retryable error again (attempt + 1), for a retry under the same key. */
  reclaim(ownerId: string, id: string, lease: Lease): Promise<OutboxRecord | undefined>;
  /** Cancels a `queued` message. Returns the record as it now is, or undefined when there is none. */
  cancel(ownerId: string, id: string): Promise<{ cancelled: boolean; record: OutboxRecord } | undefined>;
  get(ownerId: string, id: string): Promise<OutboxRecord | undefined>;
  findByIdempotencyKey(ownerId: string, key: string): Promise<OutboxRecord | undefined>;
  /**
   * The owner's records whose Message-ID header is `messageIdHeader`, exactly as stored (with its angle brackets),
   * oldest first, at most `limit` (default 100): what a bounce or a reply names. Usually one, but a follow-up for
   * deferred recipients reuses its message's Message-ID, so a bounce may match the original and its follow-ups;
   * the caller decides by the recipient the bounce names (`accepted`, `email.envelopeTo`).
   */
  findByMessageId(ownerId: string, messageIdHeader: string, options?: { limit?: number }): Promise<OutboxRecord[]>;
  /**
   * Approves or rejects a `pending_approval` message, atomically (two deciders at once: one wins, the other gets
   * `not_pending`). Approving after `approval.expiresAt` (store clock) makes it `expired` instead. Records `by` and
   * the time in `approval`. Undefined when the owner has no such message.
   */
  decide(ownerId: string, id: string, decision: { approve: boolean; by: string; now?: Date | undefined }): Promise<ApprovalDecision | undefined>;
  /**
   * The owner's messages still waiting for approval, oldest first (optionally one agent's), after the message id
   * `after` (a cursor from the previous page), at most `limit` (default 100). Messages whose approval expired are
   * marked `expired` and left out.
   */
  listPending(ownerId: string, options?: { agentId?: string | undefined; after?: string | undefined; limit?: number | undefined; now?: Date | undefined }): Promise<OutboxRecord[]>;
}

// ─── events ──────────────────────────────────────────────────────────────────────────────────────────────────

/** The events the outbox writes for its own transitions. */
export type OutboxEventType =
  | 'queued'
  | 'claimed'
  | 'reclaimed'
  /** One SMTP server's refusal or failure within an attempt (a failover's earlier tries included). */
  | 'attempt_failed'
  | 'sent'
  | 'retry'
  | 'failed'
  | 'unknown'
  | 'cancelled'
  /** Stored waiting for a human (instead of `queued`); then one of the three that follow. */
  | 'pending_approval'
  | 'approved'
  | 'rejected'
  | 'expired';

/** What recipients did with a message and what their servers reported later: tracking, bounce and complaint handling. */
export type DeliveryEventType = 'opened' | 'clicked' | 'unsubscribed' | 'bounced' | 'delayed' | 'complained' | 'replied';

/**
 * What happened to a message. Stores keep the type as text, so a new kind is a new name here and nothing else
 * (no migration); a closed union keeps `switch (event.type)` exhaustive for webhooks and dashboards.
 */
export type MailEventType = OutboxEventType | DeliveryEventType;

export interface MailEvent {
  id: string;
  ownerId: string;
  /** The outbox record's id. */
  messageId: string;
  type: MailEventType;
  at: Date;
  attempt: number;
  detail: Record<string, unknown>;
}

export interface EventListOptions {
  /** Only this message's events (the outbox record's id). */
  messageId?: string | undefined;
  type?: MailEventType | undefined;
  /**
   * Only events after this one (an event id from an earlier page): a cursor for tailing. An id that is not one of
   * this owner's events (another owner's, or one the store no longer keeps) gives an empty page.
   */
  after?: string | undefined;
  /** Default 1000. */
  limit?: number | undefined;
}

/**
 * Append-only. An owner's events have one fixed order (append order: `seq` in Postgres), and `list` returns them
 * oldest first in that order. Paging with `after` (the last event of the previous page) reads each event exactly
 * once, with no gaps, for a single reader, also while other processes append: a store where appends commit
 * concurrently (Postgres) holds an owner-wide page back at the oldest write still in flight, so an event that
 * commits late never lands behind a cursor that has moved on. Lists of one message (`messageId`) are not held
 * back: one message's transitions happen one after another.
 */
export interface EventStore {
  append(event: Omit<MailEvent, 'id' | 'at'> & { at?: Date }): Promise<MailEvent>;
  list(ownerId: string, options?: EventListOptions): Promise<MailEvent[]>;
}

// ─── suppressions ────────────────────────────────────────────────────────────────────────────────────────────

export interface Suppression {
  ownerId: string;
  /** Lower-cased. */
  address: string;
  reason: 'unsubscribe' | 'bounce' | 'complaint' | 'manual';
  createdAt: Date;
  detail: Record<string, unknown>;
}

export interface SuppressionStore {
  /** Adds or replaces the suppression of `address` for this owner. */
  add(suppression: Omit<Suppression, 'createdAt' | 'detail'> & { detail?: Record<string, unknown> }): Promise<Suppression>;
  /** The suppressions among `addresses` (compared case-insensitively). */
  find(ownerId: string, addresses: readonly string[]): Promise<Suppression[]>;
  remove(ownerId: string, address: string): Promise<boolean>;
  list(ownerId: string, options?: { limit?: number }): Promise<Suppression[]>;
}

// ─── audit ───────────────────────────────────────────────────────────────────────────────────────────────────

export interface AuditEntry {
  id: string;
  ownerId: string;
  agentId: string | undefined;
  /**
   * What was done: `send`, `enqueue`, `cancel`, `approve`, `reject`, `policy_save`, `policy_delete`,
   * `smtp_config_save`, `tool_call`, `refused` (a policy or validation refusal), `reload`, `use_server`, …
   */
  action: string;
  outcome: 'ok' | 'error';
  at: Date;
  messageId?: string | undefined;
  /** The tool that was called, for entries written on a tool call. */
  tool?: string | undefined;
  /** Who did it when it was not the agent: a human approving (`approvedBy`), an operator, `system`. */
  actor?: string | undefined;
  recipientCount?: number | undefined;
  durationMs?: number | undefined;
  /** The error's code when `outcome` is `error` (`POLICY_DAILY_LIMIT`, `SMTP_REJECTED`, …). */
  errorCode?: string | undefined;
  /** Secret-free details: recipients, server, status. Never a body, an attachment or a secret. */
  detail: Record<string, unknown>;
}

export interface AuditListOptions {
  agentId?: string | undefined;
  action?: string | undefined;
  /** Entries at or after this time. */
  from?: Date | undefined;
  /** Entries before this time. */
  to?: Date | undefined;
  /** Entries older than this one (an entry id from the previous page): newest-first paging. */
  before?: string | undefined;
  /** Default 100, at most 1000. */
  limit?: number | undefined;
}

export interface AuditStore {
  append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry>;
  /** Newest first, in append order; `before` pages back through an owner's entries, each exactly once. */
  list(ownerId: string, options?: AuditListOptions): Promise<AuditEntry[]>;
}

// ─── counters ────────────────────────────────────────────────────────────────────────────────────────────────

export interface CounterStore {
  /**
   * Adds `by` to the counter `(ownerId, key, window)` only if the result stays within `limit`, atomically across
   * processes (daily limits: `window` is the day, e.g. `2026-11-21`). Returns whether it was added and the value.
   * A negative `by` gives quota back (a send refused after its quota was taken); the value never goes below 0.
   */
  increment(ownerId: string, key: string, window: string, by: number, limit: number): Promise<{ allowed: boolean; value: number }>;
  get(ownerId: string, key: string, window: string): Promise<number>;
}

// ─── stats ───────────────────────────────────────────────────────────────────────────────────────────────────

export interface MailStatsQuery {
  /** One message (the outbox record's id) and its follow-ups are not merged: only this record's events. */
  messageId?: string | undefined;
  /**
   * Messages carrying this tag: each event is joined to its outbox record (same owner) and counts when the record's
   * `tags` include it. An event whose record the store does not have matches no tag.
   */
  tag?: string | undefined;
  /** Events at or after this time (sends: when the `sent` event was written). Each event counts by its own time. */
  from?: Date | undefined;
  /** Events before this time. */
  to?: Date | undefined;
}

/**
 * Opens or clicks, people and machines apart: `unique` counts messages with at least one, `total` every event.
 * `human` holds only events whose `detail.machine` is `false`; `machine` every other one (true, missing, not a
 * boolean), so a hit nobody classified never inflates what people did. A click in a burst (`BURST_WINDOW_MS`) is a
 * machine's too, whatever its `detail.machine` says.
 */
/**
 * Two clicks of one message (same owner) on different links less than this many milliseconds apart, in either order,
 * are a scanner following every link: stats count both as machines, in the totals and per link. The tracking handler
 * labels a click `all_links_at_once` as it arrives, only when an earlier click is already stored within
 * `machine.burstWindowMs`, so the first click of a burst, and clicks fetched concurrently, are written as people's;
 * stats apply the rule symmetrically, with this fixed window, over every click of the message the store holds (also
 * those outside `from`/`to`). "Different links" means both clicks name a `detail.link` number and the numbers
 * differ: two clicks on the same link (a double click) are no burst, and a click naming no link is nobody's partner.
 * The Postgres `mail_stats` function writes the same window as `interval '2 seconds'`.
 */
export const BURST_WINDOW_MS = 2_000;

export interface EngagementCounts {
  human: { unique: number; total: number };
  machine: { unique: number; total: number };
}

export interface MailStats {
  /**
   * `sent` events: messages whose send succeeded. A follow-up for recipients a server deferred is a record of its
   * own, so its successful send counts too.
   */
  sent: number;
  /**
   * Recipients the servers accepted on those sends: the sum of each sent record's `accepted` (what the `sent`
   * settlement stored; the `sent` event's detail holds no recipients). A follow-up's record holds only the recipients
   * it delivered itself and a record is settled `sent` once, so no recipient counts twice across retries and follow-ups.
   */
  delivered: number;
  opened: EngagementCounts;
  clicked: EngagementCounts & {
    /**
     * Per link (its index in the HTML and its URL), most human clicks first, then most machine clicks, then by link
     * and URL (code-unit order), at most 100 links. Only clicks whose detail has an integer `link` and a string
     * `url` are listed here; every click counts in the totals.
     */
    links: { link: number; url: string; human: number; machine: number }[];
  };
  /** `bounced` events, each once. */
  bounced: number;
  /** `unsubscribed` events, each once, people and machines alike (an unsubscribe is honoured whoever sent it). */
  unsubscribed: number;
  /** `complained` events, each once. */
  complained: number;
  /**
   * Shares of `sent` (0 when nothing was sent): human unique opens and clicks, bounces, unsubscribes. Not capped at
   * 1: with a time range, opens in the range may belong to mail sent before it.
   */
  rates: { open: number; click: number; bounce: number; unsubscribe: number };
}

/**
 * Aggregates in the store (SQL in Postgres, never every row pulled into the app). Opens, clicks and unsubscribes are
 * the `opened`, `clicked`, `unsubscribed` events the tracking handler writes, with `detail.machine` telling machines
 * from people (`TrackingEventDetail`), and clicks in a burst on different links counted as machines whatever they
 * say (`BURST_WINDOW_MS`); `bounced` and `complained` events count once each. Only the owner's events count, also
 * when another owner's event names the same message id.
 */
export interface StatsStore {
  summary(ownerId: string, query?: MailStatsQuery): Promise<MailStats>;
}

// ─── policies ────────────────────────────────────────────────────────────────────────────────────────────────

/** A policy as stored: JSON-safe (`Policy` without an `approval.when` function). */
export interface StoredPolicy {
  ownerId: string;
  /** The agent it is for, or undefined: the owner's policy for agents without one of their own. */
  agentId: string | undefined;
  policy: Record<string, unknown>;
  updatedAt: Date;
}

export interface PolicyStore {
  /** Inserts or replaces the policy of `(ownerId, agentId)`. */
  save(entry: { ownerId: string; agentId: string | undefined; policy: Record<string, unknown> }): Promise<StoredPolicy>;
  /** Exactly this scope's policy (`agentId` undefined: the owner's default), with no fallback. */
  get(ownerId: string, agentId: string | undefined): Promise<StoredPolicy | undefined>;
  delete(ownerId: string, agentId: string | undefined): Promise<boolean>;
  /** The owner's policies, the owner's default first, then by agent id. */
  list(ownerId: string): Promise<StoredPolicy[]>;
}

// ─── credentials ─────────────────────────────────────────────────────────────────────────────────────────────

/**
 * How a stored SMTP config connects: `tls` is TLS from the first byte (usually port 465), `starttls` a plain
 * connection that must upgrade (usually 587), `none` no TLS at all (a relay on a trusted network).
 */
export type SmtpSecurity = 'tls' | 'starttls' | 'none';

/**
 * One named SMTP account of an owner, as stored. Only the password is secret, and the store never sees it: it holds
 * the AES-256-GCM ciphertext (see `KeyRing`), bound to `ownerId` and `id`.
 */
export interface StoredSmtpConfig {
  ownerId: string;
  id: string;
  /** Unique per owner. */
  name: string;
  host: string;
  port: number;
  security: SmtpSecurity;
  username: string | undefined;
  /** Base64 of IV ‖ ciphertext ‖ tag; undefined when the account has no password. */
  passwordCiphertext: string | undefined;
  /** The key ring key that encrypted the password; set exactly when `passwordCiphertext` is. */
  keyId: string | undefined;
  /** DKIM signing domain (`d=`); the three `dkim…` fields and `dkimKeyCiphertext` are all set or all unset. */
  dkimDomain?: string | undefined;
  /** DKIM selector (`s=`). */
  dkimSelector?: string | undefined;
  /** The DKIM private key (PEM), encrypted like the password but with its own additional data. */
  dkimKeyCiphertext?: string | undefined;
  /** The key ring key that encrypted the DKIM key: its own, since a kept password may be under an older key. */
  dkimKeyId?: string | undefined;
  fromAddress: string | undefined;
  fromName: string | undefined;
  /** At most one per owner. */
  isDefault: boolean;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** What `CredentialStore.save` writes. */
export interface SmtpConfigWrite extends Omit<StoredSmtpConfig, 'createdAt' | 'updatedAt'> {
  /** Keep the stored password (ciphertext and key id) and ignore the two fields here: an edit that leaves it as is. */
  keepPassword?: boolean | undefined;
  /** Keep the stored DKIM key (ciphertext and key id); the domain and selector are still written. */
  keepDkimKey?: boolean | undefined;
}

/** Where to continue a listing that runs across owners, ordered by `(ownerId, id)`. */
export interface SmtpConfigCursor {
  ownerId: string;
  id: string;
}

/** Each owner's named SMTP configs (the `credentials` part of a store). */
export interface CredentialStore {
  /**
   * Inserts the config, or replaces the owner's config with this `id` (its `createdAt` stays). `isDefault` makes it
   * the owner's only default, and an active config saved while the owner has no other default becomes the default,
   * so an owner with configs always has one unless it was deleted. Throws `ValidationError` (field `name`) when
   * another config of the owner has this name.
   */
  save(config: SmtpConfigWrite): Promise<StoredSmtpConfig>;
  get(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined>;
  /** Oldest first. */
  list(ownerId: string): Promise<StoredSmtpConfig[]>;
  /** Deleting the default makes the oldest remaining active config the default. */
  delete(ownerId: string, id: string): Promise<boolean>;
  /** Makes the config the owner's only default. Undefined (and nothing changed) when the owner has no such config. */
  setDefault(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined>;
  /**
   * For key rotation: configs whose password or DKIM key is under a key other than `keyId`, of every owner (or of
   * `ownerId`), ordered by `(ownerId, id)` and starting after `after`.
   */
  listForRotation(options: { keyId: string; ownerId?: string | undefined; after?: SmtpConfigCursor | undefined; limit: number }): Promise<StoredSmtpConfig[]>;
  /**
   * Replaces the password's ciphertext and key id, only while the stored ciphertext is still `expected`: a password
   * saved meanwhile is never overwritten by a rotation of the old one. Leaves `updatedAt` alone (the config did not
   * change). Returns whether it replaced.
   */
  replacePassword(ownerId: string, id: string, expected: string, next: { keyId: string; passwordCiphertext: string }): Promise<boolean>;
  /** `replacePassword` for the DKIM key: only while the stored DKIM ciphertext is still `expected`. */
  replaceDkimKey(ownerId: string, id: string, expected: string, next: { dkimKeyId: string; dkimKeyCiphertext: string }): Promise<boolean>;
}
