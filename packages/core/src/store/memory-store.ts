import { randomUUID } from 'node:crypto';
import type {
  AuditEntry,
  AuditStore,
  InsertResult,
  MailStore,
  MessageRecord,
  MessageStore,
  MessageUpdate,
  NewMessageRecord,
} from './mail-store.js';

export interface MemoryStoreOptions {
  /** Audit entries kept per store; the oldest are dropped past this. Default: 10000. */
  maxAuditEntries?: number;
}

/** Keeps everything in this process. The default store: fine for one process, lost when it exits. */
export class MemoryStore implements MailStore {
  readonly messages: MessageStore;
  readonly audit: AuditStore;

  constructor(options: MemoryStoreOptions = {}) {
    this.messages = new MemoryMessageStore();
    this.audit = new MemoryAuditStore(options.maxAuditEntries ?? 10_000);
  }
}

// Records are copied in and out so callers can never mutate what the store holds.
const copy = (r: MessageRecord): MessageRecord => ({
  ...r,
  to: [...r.to],
  accepted: [...r.accepted],
  rejected: [...r.rejected],
  metadata: { ...r.metadata },
  error: r.error ? { ...r.error } : undefined,
  history: r.history.map((h) => ({ ...h })),
});

class MemoryMessageStore implements MessageStore {
  private readonly byId = new Map<string, MessageRecord>();
  private readonly byKey = new Map<string, MessageRecord>();

  async insert(record: NewMessageRecord): Promise<InsertResult> {
    const key = record.idempotencyKey === undefined ? undefined : `${record.ownerId}\u0000${record.idempotencyKey}`;
    const existing = key === undefined ? undefined : this.byKey.get(key);
    if (existing) return { created: false, record: copy(existing) };
    const now = new Date();
    const stored: MessageRecord = { ...record, createdAt: now, updatedAt: now, history: [{ status: record.status, at: now }] };
    this.byId.set(record.id, stored);
    if (key !== undefined) this.byKey.set(key, stored);
    return { created: true, record: copy(stored) };
  }

  async update(ownerId: string, id: string, update: MessageUpdate): Promise<MessageRecord | undefined> {
    const record = this.byId.get(id);
    if (!record || record.ownerId !== ownerId) return undefined;
    const { detail, ...fields } = update;
    Object.assign(record, fields);
    record.updatedAt = new Date();
    if (update.status) record.history.push({ status: update.status, at: record.updatedAt, ...(detail ? { detail } : {}) });
    return copy(record);
  }

  async get(ownerId: string, id: string): Promise<MessageRecord | undefined> {
    const record = this.byId.get(id);
    return record && record.ownerId === ownerId ? copy(record) : undefined;
  }

  async findByIdempotencyKey(ownerId: string, key: string): Promise<MessageRecord | undefined> {
    const record = this.byKey.get(`${ownerId}\u0000${key}`);
    return record ? copy(record) : undefined;
  }
}

class MemoryAuditStore implements AuditStore {
  private entries: AuditEntry[] = [];

  constructor(private readonly max: number) {}

  async append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const stored: AuditEntry = { ...entry, id: randomUUID(), at: new Date() };
    this.entries.push(stored);
    if (this.entries.length > this.max) this.entries = this.entries.slice(-this.max);
    return { ...stored };
  }

  async list(ownerId: string, options: { limit?: number; action?: string } = {}): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for (let i = this.entries.length - 1; i >= 0 && out.length < (options.limit ?? 100); i--) {
      const entry = this.entries[i]!;
      if (entry.ownerId === ownerId && (!options.action || entry.action === options.action)) out.push({ ...entry });
    }
    return out;
  }
}
