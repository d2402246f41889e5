/**
 * Where the SDK keeps its state. One interface with cohesive parts, each scoped by `ownerId` (the user):
 * no method ever returns another owner's rows. `MemoryStore` is the default; Postgres and Supabase
 * stores implement the same interface in their packages and pass the same contract suite.
 */

export type MessageStatus = 'sending' | 'sent' | 'failed' | 'unknown';

export interface StatusChange {
  status: MessageStatus;
  at: Date;
  /** Why: the server's reply, or the error. */
  detail?: string;
}

export interface MessageError {
  code: string;
  message: string;
  responseCode?: number | undefined;
  response?: string | undefined;
  retryable: boolean;
}

/** A message the SDK was asked to send, and what became of it. */
export interface MessageRecord {
  id: string;
  ownerId: string;
  agentId: string | undefined;
  idempotencyKey: string | undefined;
  /** Hash of the message content, to tell a retry (same content) from a conflict (same key, other content). */
  fingerprint: string | undefined;
  status: MessageStatus;
  /** The Message-ID header. */
  messageId: string;
  from: string;
  to: string[];
  subject: string;
  server: string | undefined;
  accepted: string[];
  rejected: string[];
  response: string | undefined;
  error: MessageError | undefined;
  metadata: Record<string, string | number | boolean | null>;
  createdAt: Date;
  updatedAt: Date;
  history: StatusChange[];
}

export type NewMessageRecord = Omit<MessageRecord, 'createdAt' | 'updatedAt' | 'history'>;

export type MessageUpdate = Partial<Pick<MessageRecord, 'status' | 'server' | 'accepted' | 'rejected' | 'response' | 'error'>> & {
  detail?: string;
};

export type InsertResult = { created: true; record: MessageRecord } | { created: false; record: MessageRecord };

export interface MessageStore {
  /**
   * Inserts a record, or, when one with the same `(ownerId, idempotencyKey)` exists, returns that one
   * and inserts nothing. Atomic: two concurrent inserts with one key create one row.
   */
  insert(record: NewMessageRecord): Promise<InsertResult>;
  /** Applies an update and appends the status change to the history. Returns the updated record. */
  update(ownerId: string, id: string, update: MessageUpdate): Promise<MessageRecord | undefined>;
  get(ownerId: string, id: string): Promise<MessageRecord | undefined>;
  findByIdempotencyKey(ownerId: string, key: string): Promise<MessageRecord | undefined>;
}

export interface AuditEntry {
  id: string;
  ownerId: string;
  agentId: string | undefined;
  /** What was done, e.g. `send`, `reload`, `use_server`. */
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

export interface MailStore {
  readonly messages: MessageStore;
  readonly audit: AuditStore;
  close?(): Promise<void>;
}
