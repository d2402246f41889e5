import type { ParsedAddress } from '../message/address.js';

/**
 * Where the SDK keeps its state: one interface with cohesive parts, each scoped by `ownerId` (the user). No
 * method that takes an `ownerId` ever returns another owner's rows. `MemoryStore` is the default; the Postgres
 * and Supabase stores implement the same interface and pass the same contract suite (`runStoreContract`).
 */
export interface MailStore {
  readonly outbox: OutboxStore;
  readonly events: EventStore;
  readonly suppressions: SuppressionStore;
  readonly audit: AuditStore;
  readonly counters: CounterStore;
  readonly credentials: CredentialStore;
  close?(): Promise<void>;
}

// ─── outbox ──────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * `queued` (waiting for `nextAttemptAt`) → `sending` (claimed under a lease) → `sent` | `failed` | `unknown`,
 * or back to `queued` for a retry. `cancelled` only from `queued`. `unknown` (the outcome of the last attempt is
 * ambiguous) is final: never resent automatically.
 */
export type OutboxStatus = 'queued' | 'sending' | 'sent' | 'failed' | 'unknown' | 'cancelled';

export interface StoredAttachment {
  filename: string;
  contentBase64: string;
  contentType?: string | undefined;
  cid?: string | undefined;
}

/** The validated, rendered email as kept in the outbox: JSON-safe, so every store can keep it as it is. */
export interface StoredEmail {
  from: ParsedAddress;
  to: ParsedAddress[];
  cc: ParsedAddress[];
  bcc: ParsedAddress[];
  replyTo: ParsedAddress[];
  subject: string;
  text?: string | undefined;
  html?: string | undefined;
  attachments: StoredAttachment[];
  headers: Record<string, string>;
  inReplyTo?: string | undefined;
  references: string[];
  /**
   * When set, the envelope goes to these recipients only while the headers still show `to` and `cc` as written:
   * a follow-up for recipients a server deferred (4xx) while it accepted the others.
   */
  envelopeTo?: string[] | undefined;
}

export interface MessageError {
  code: string;
  message: string;
  responseCode?: number | undefined;
  response?: string | undefined;
  retryable: boolean;
}

export type Metadata = Record<string, string | number | boolean | null>;

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
}

// ─── events ──────────────────────────────────────────────────────────────────────────────────────────────────

/** What happened to a message. The outbox writes its own transitions; tracking and bounces add more later. */
export type MailEventType =
  | 'queued'
  | 'claimed'
  | 'reclaimed'
  /** One SMTP server's refusal or failure within an attempt (a failover's earlier tries included). */
  | 'attempt_failed'
  | 'sent'
  | 'retry'
  | 'failed'
  | 'unknown'
  | 'cancelled';

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

export interface EventStore {
  append(event: Omit<MailEvent, 'id' | 'at'> & { at?: Date }): Promise<MailEvent>;
  /** Oldest first. */
  list(ownerId: string, options?: { messageId?: string; type?: MailEventType; limit?: number }): Promise<MailEvent[]>;
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
  /** What was done, e.g. `send`, `enqueue`, `cancel`, `reload`, `use_server`. */
  action: string;
  outcome: 'ok' | 'error';
  at: Date;
  messageId?: string | undefined;
  /** Secret-free details: recipients, server, error code. */
  detail: Record<string, unknown>;
}

export interface AuditStore {
  append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry>;
  /** Newest first. */
  list(ownerId: string, options?: { limit?: number; action?: string }): Promise<AuditEntry[]>;
}

// ─── counters ────────────────────────────────────────────────────────────────────────────────────────────────

export interface CounterStore {
  /**
   * Adds `by` to the counter `(ownerId, key, window)` only if the result stays within `limit`, atomically across
   * processes (daily limits: `window` is the day, e.g. `2026-11-21`). Returns whether it was added and the value.
   */
  increment(ownerId: string, key: string, window: string, by: number, limit: number): Promise<{ allowed: boolean; value: number }>;
  get(ownerId: string, key: string, window: string): Promise<number>;
}

// ─── credentials ─────────────────────────────────────────────────────────────────────────────────────────────

/** An encrypted secret (e.g. SMTP servers) as stored: the store never sees plaintext. */
export interface StoredCredential {
  ownerId: string;
  name: string;
  /** Which key of the key ring encrypted it. */
  keyId: string;
  /** Opaque, e.g. base64 of IV + ciphertext + tag. */
  ciphertext: string;
  updatedAt: Date;
}

export interface CredentialStore {
  put(credential: Omit<StoredCredential, 'updatedAt'>): Promise<StoredCredential>;
  get(ownerId: string, name: string): Promise<StoredCredential | undefined>;
  /** Names and key ids only. */
  list(ownerId: string): Promise<{ name: string; keyId: string; updatedAt: Date }[]>;
  delete(ownerId: string, name: string): Promise<boolean>;
}
