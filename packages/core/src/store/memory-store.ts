import type {
  ApprovalDecision,
  AuditEntry,
  AuditListOptions,
  ClaimOptions,
  AuditStore,
  CounterStore,
  CredentialStore,
  EnqueueResult,
  EventListOptions,
  EventStore,
  Lease,
  MailEvent,
  MailEventType,
  MailStats,
  MailStatsQuery,
  MailStore,
  NewOutboxRecord,
  OutboxRecord,
  OutboxStore,
  PolicyStore,
  Settlement,
  StatsStore,
  StoreCapabilities,
  SmtpConfigCursor,
  SmtpConfigWrite,
  StoredEmail,
  StoredPolicy,
  StoredSmtpConfig,
  Suppression,
  SuppressionStore,
} from './mail-store.js';
import { BURST_WINDOW_MS } from './mail-store.js';
import { checkApproval } from './check-approval.js';
import { ValidationError } from '../errors/validation-error.js';
import { RecordHeap, type HeapEntry } from './record-heap.js';
import { flatString, randomUuid } from './random-uuid.js';

export interface MemoryStoreOptions {
  /** Messages kept: past this, the oldest finished ones (and their events) are dropped. Default: 100000. */
  maxMessages?: number;
  /** Events kept: at least this many of the newest (the log is trimmed in batches). Default: 200000. */
  maxEvents?: number;
  /** Audit entries kept: at least this many of the newest (trimmed in batches). Default: 10000. */
  maxAuditEntries?: number;
  /**
   * Message content finished messages may keep, in bytes: text, HTML and attachments (counted as their base64
   * characters). Past it, the oldest finished messages lose their content (text and HTML removed, attachments
   * kept with their filename and type but empty `contentBase64`) and keep everything else: status, recipients,
   * subject, headers, server reply, idempotency key, events. A failed message that may be tried again under its
   * idempotency key is dropped whole instead, so that a retry sends it afresh. Queued and sending messages are never
   * touched, whatever their size. Default: 64 MiB (67108864).
   */
  maxRetainedBytes?: number;
  /**
   * Memory finished messages (sent, failed, unknown, cancelled, rejected, expired) may keep in all, in bytes:
   * `FINISHED_MESSAGE_BYTES` each (the record, its indexes and its events, as measured for a plain message) plus its
   * headers, references, addresses, tags and metadata, plus the content it still keeps. Past it, the oldest finished messages are dropped whole, as past `maxMessages`: the record, its idempotency
   * key (a later send with that key is a new message) and its events. Queued and sending messages are never dropped.
   * Default: 128 MiB (134217728).
   */
  maxFinishedBytes?: number;
  /**
   * How long a finished message is kept after it finished, in milliseconds; then it is dropped whole (as above).
   * Checked whenever a message is stored or finishes, so an idle store keeps what it has. Default: 24 hours.
   */
  maxFinishedAgeMs?: number;
}

/** Default of `MemoryStoreOptions.maxRetainedBytes`. */
export const DEFAULT_MAX_RETAINED_BYTES = 64 * 1024 * 1024;
/** Default of `MemoryStoreOptions.maxFinishedBytes`. */
export const DEFAULT_MAX_FINISHED_BYTES = 128 * 1024 * 1024;
/** Default of `MemoryStoreOptions.maxFinishedAgeMs`: a day. */
export const DEFAULT_MAX_FINISHED_AGE_MS = 24 * 60 * 60 * 1000;
/**
 * What a finished message costs besides its content, for `maxFinishedBytes`: its record, indexes and events, about
 * 3 KiB measured on Node 20 (a message with one recipient and its queued, claimed and sent events).
 */
export const FINISHED_MESSAGE_BYTES = 3 * 1024;

/**
 * Keeps everything in this process: the default store. Right for one process and for tests; lost when the
 * process exits, so a queued message does not survive a crash (use the Postgres store for that).
 */
export class MemoryStore implements MailStore {
  readonly capabilities: StoreCapabilities = { eventCursor: true, batchEnqueue: true, findByMessageId: true, multiProcess: false, durable: false };
  readonly events: MemoryEventStore;
  readonly outbox: OutboxStore;
  readonly suppressions: SuppressionStore;
  readonly audit: AuditStore;
  readonly counters: CounterStore;
  readonly credentials: CredentialStore;
  readonly policies: PolicyStore;
  readonly stats: StatsStore;
  readonly #outbox: MemoryOutboxStore;

  constructor(options: MemoryStoreOptions = {}) {
    this.events = new MemoryEventStore(options.maxEvents ?? 200_000);
    this.outbox = this.#outbox = new MemoryOutboxStore(this.events, {
      maxMessages: options.maxMessages ?? 100_000,
      maxRetainedBytes: options.maxRetainedBytes ?? DEFAULT_MAX_RETAINED_BYTES,
      maxFinishedBytes: options.maxFinishedBytes ?? DEFAULT_MAX_FINISHED_BYTES,
      maxFinishedAgeMs: options.maxFinishedAgeMs ?? DEFAULT_MAX_FINISHED_AGE_MS,
    });
    this.suppressions = new MemorySuppressionStore();
    this.audit = new MemoryAuditStore(options.maxAuditEntries ?? 10_000);
    this.counters = new MemoryCounterStore();
    this.credentials = new MemoryCredentialStore();
    this.policies = new MemoryPolicyStore();
    this.stats = new MemoryStatsStore(this.events, this.#outbox);
  }

  /** Bytes of message content finished messages keep now: at most `maxRetainedBytes`. */
  get retainedBytes(): number {
    return this.#outbox.retainedBytes;
  }

  /** What finished messages keep now, as `maxFinishedBytes` counts it: at most `maxFinishedBytes`. */
  get finishedBytes(): number {
    return this.#outbox.finishedBytes;
  }
}

interface RetentionLimits {
  maxMessages: number;
  maxRetainedBytes: number;
  maxFinishedBytes: number;
  maxFinishedAgeMs: number;
}

const key = (...parts: string[]): string => parts.join('\u0000');

/** Values by owner, then by a key of that owner's: no joined key string is made on each call and kept per record. */
class PerOwner<V> {
  private readonly owners = new Map<string, Map<string, V>>();

  get(ownerId: string, k: string): V | undefined {
    return this.owners.get(ownerId)?.get(k);
  }

  set(ownerId: string, k: string, value: V): void {
    const forOwner = this.owners.get(ownerId);
    if (forOwner) forOwner.set(k, value);
    else this.owners.set(ownerId, new Map([[k, value]]));
  }

  delete(ownerId: string, k: string): void {
    const forOwner = this.owners.get(ownerId);
    if (forOwner?.delete(k) && forOwner.size === 0) this.owners.delete(ownerId);
  }
}

/**
 * The size of what a finished record can do without, from string lengths alone (no serialising on the send path).
 * A character of ASCII text, HTML or base64 is one byte in V8's strings; other text counts low, which is fine for
 * a cap whose job is to stop 1 MiB bodies piling up.
 */
const contentBytes = (email: StoredEmail): number =>
  (email.text?.length ?? 0) + (email.html?.length ?? 0) + email.attachments.reduce((sum, a) => sum + a.contentBase64.length, 0);

/**
 * What a finished record keeps besides its content, from string lengths: `FINISHED_MESSAGE_BYTES` (the record, its
 * indexes and events as measured for a plain message) plus its headers, references, addresses, subject, tags,
 * metadata, attachment names, error and server answers, which a message may carry by the hundred kilobytes.
 */
function shellBytes(record: OutboxRecord): number {
  const { email } = record;
  let bytes = FINISHED_MESSAGE_BYTES + email.subject.length + (record.response?.length ?? 0) + (email.inReplyTo?.length ?? 0);
  for (const list of [email.to, email.cc, email.bcc, email.replyTo]) for (const a of list) bytes += a.address.length + (a.name?.length ?? 0);
  for (const [name, value] of Object.entries(email.headers)) bytes += name.length + value.length;
  for (const reference of email.references) bytes += reference.length;
  for (const tag of record.tags) bytes += tag.length;
  for (const [key, value] of Object.entries(record.metadata)) bytes += key.length + (typeof value === 'string' ? value.length : 8);
  for (const address of [...record.accepted, ...record.rejected, ...(email.envelopeTo ?? [])]) bytes += address.length;
  for (const attachment of email.attachments) bytes += attachment.filename.length + (attachment.contentType?.length ?? 0) + (attachment.cid?.length ?? 0);
  bytes += email.from.address.length + (email.from.name?.length ?? 0) + (record.error?.message.length ?? 0);
  return bytes;
}

const withoutContent = (email: StoredEmail): StoredEmail =>
  keptEmail(email, { text: undefined, html: undefined, attachments: email.attachments.map((a) => ({ filename: a.filename, contentBase64: '', contentType: a.contentType, cid: a.cid })) });

/** One frozen empty list for every empty list a record keeps: most messages have no cc, bcc, attachments, tags… */
const NONE = Object.freeze([]) as unknown as never[];
const listOf = <T>(list: T[]): T[] => (list.length === 0 ? NONE : list);

/**
 * The email a record keeps: its own top-level object, field by field (see above `snapshot`), frozen, with the
 * caller's parts (addresses, attachments, headers) frozen and shared rather than copied.
 */
function keptEmail(e: StoredEmail, content: Pick<StoredEmail, 'text' | 'html' | 'attachments'> = e): StoredEmail {
  return freezeData({
    from: e.from,
    to: listOf(e.to),
    cc: listOf(e.cc),
    bcc: listOf(e.bcc),
    replyTo: listOf(e.replyTo),
    subject: e.subject,
    text: content.text,
    html: content.html,
    attachments: listOf(content.attachments),
    headers: e.headers,
    inReplyTo: e.inReplyTo,
    references: listOf(e.references),
    envelopeTo: e.envelopeTo,
  });
}


/**
 * Deep-freezes plain data the store keeps (an email, tags, metadata, an error, recipient lists), so the store can
 * hand the same objects out instead of copying them on every call: nobody can change a stored record through them.
 */
function freezeData<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof Date)) {
    Object.freeze(value);
    // Walked without `Object.values`, which made an array per object on every send.
    if (Array.isArray(value)) for (let i = 0; i < value.length; i++) freezeInner(value[i]);
    else for (const name in value) if (Object.hasOwn(value, name)) freezeInner((value as Record<string, unknown>)[name]);
  }
  return value;
}

function freezeInner(value: unknown): void {
  if (value !== null && typeof value === 'object') freezeData(value);
}


/*
 * Records, events and audit entries are built field by field, never as `{ ...source, more }`: on Node 20 (V8 11.3),
 * optimised code gives every object made that way a hidden class of its own. Each kept record then carried about
 * 1.4 KB of class data, and every read of a record anywhere went through V8's slowest property lookup.
 */

/** A record as handed out: its data frozen and shared, its own fields and dates copied (a Date is mutable). */
function snapshot(r: OutboxRecord): OutboxRecord {
  freezeData(r.email);
  freezeData(r.tags);
  freezeData(r.metadata);
  freezeData(r.accepted);
  freezeData(r.rejected);
  freezeData(r.error);
  return {
    id: r.id,
    ownerId: r.ownerId,
    agentId: r.agentId,
    idempotencyKey: r.idempotencyKey,
    fingerprint: r.fingerprint,
    status: r.status,
    messageId: r.messageId,
    email: r.email,
    sendAt: new Date(r.sendAt),
    nextAttemptAt: new Date(r.nextAttemptAt),
    attempt: r.attempt,
    maxAttempts: r.maxAttempts,
    leaseOwner: r.leaseOwner,
    leaseExpiresAt: r.leaseExpiresAt && new Date(r.leaseExpiresAt),
    possibleDuplicate: r.possibleDuplicate,
    server: r.server,
    accepted: r.accepted,
    rejected: r.rejected,
    response: r.response,
    error: r.error,
    tags: r.tags,
    metadata: r.metadata,
    approval: r.approval && {
      reason: r.approval.reason,
      expiresAt: new Date(r.approval.expiresAt),
      decidedBy: r.approval.decidedBy,
      decidedAt: r.approval.decidedAt && new Date(r.approval.decidedAt),
    },
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
  };
}

/** An event as handed out: frozen detail, a copied date. */
function snapshotEvent(e: MailEvent): MailEvent {
  return { id: e.id, ownerId: e.ownerId, messageId: e.messageId, type: e.type, at: new Date(e.at), attempt: e.attempt, detail: freezeData(e.detail) };
}

/** An audit entry as handed out: frozen detail, a copied date. */
function snapshotAudit(a: AuditEntry): AuditEntry {
  return auditEntry(a, a.id, new Date(a.at), freezeData(a.detail));
}

function auditEntry(a: Omit<AuditEntry, 'id' | 'at' | 'detail'>, id: string, at: Date, detail: Record<string, unknown>): AuditEntry {
  return {
    id,
    ownerId: a.ownerId,
    agentId: a.agentId,
    action: a.action,
    outcome: a.outcome,
    at,
    messageId: a.messageId,
    tool: a.tool,
    actor: a.actor,
    recipientCount: a.recipientCount,
    durationMs: a.durationMs,
    errorCode: a.errorCode,
    detail,
  };
}

/** Oldest first, ties by id in code-unit order (as Postgres compares them under the "C" collation). */
const byCreation = (a: OutboxRecord, b: OutboxRecord): number =>
  a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** A queued record's place in line, its due time and creation taken when it joined the queue. */
interface QueueEntry extends HeapEntry {
  readonly record: OutboxRecord;
  readonly due: number;
  readonly created: number;
  /** Order of insertion: the last tie-break, as the claim's sort over every record in insertion order always had. */
  readonly seq: number;
}

/** A sending record's lease at the time the entry was made: never later than the lease it has now. */
interface LeaseEntry extends HeapEntry {
  readonly record: OutboxRecord;
  readonly expires: number;
}

const queueOrder = (a: QueueEntry, b: QueueEntry): boolean =>
  a.due !== b.due ? a.due < b.due : a.created !== b.created ? a.created < b.created : a.seq < b.seq;

const leaseOrder = (a: LeaseEntry, b: LeaseEntry): boolean => a.expires < b.expires;

const leaseExpiredError = (attempt: number) => ({
  code: 'LEASE_EXPIRED',
  message: `The worker sending attempt ${attempt} stopped before recording the outcome; it may have been delivered, so it is not sent again.`,
  retryable: false,
});

class MemoryOutboxStore implements OutboxStore {
  private readonly byId = new Map<string, OutboxRecord>();
  private readonly byKey = new PerOwner<string>();
  /** Ids by owner and Message-ID header, oldest first (bounce matching). */
  private readonly byMessageId = new PerOwner<string[]>();
  /** Finished records' ids, oldest first, with when they finished: pruning drops from here, never scanning the rest. */
  private readonly finished = new Map<string, number>();
  /**
   * Finished records that still keep their content, oldest first, with its size: the byte cap strips from here,
   * so it never walks records already stripped.
   */
  private readonly withContent = new Map<string, number>();
  private keptBytes = 0;
  /** `shellBytes` of every finished record kept. */
  private shellBytes = 0;
  /** Ids of each owner's `pending_approval` records: `listPending` never walks the rest of the outbox. */
  private readonly pending = new Map<string, Set<string>>();
  /**
   * Queued records by due time and sending ones by lease expiry, per owner and overall: a claim reads the top of
   * the queue and the expired leases, never the whole outbox (at 100,000 queued a scan took 300-450 ms).
   */
  private readonly queue = new RecordHeap<QueueEntry>(queueOrder);
  private readonly leases = new RecordHeap<LeaseEntry>(leaseOrder);
  private readonly insertionOrder = new WeakMap<OutboxRecord, number>();
  private nextSeq = 0;

  constructor(
    private readonly events: MemoryEventStore,
    private readonly limits: RetentionLimits,
  ) {}

  get retainedBytes(): number {
    return this.keptBytes;
  }

  get finishedBytes(): number {
    return this.shellBytes + this.keptBytes;
  }

  /**
   * Keeps the data it is given (the email's parts, tags, metadata) frozen rather than copying it: a copy of every
   * message was a fifth of the SDK's own work per send. The caller's record and email objects themselves are not kept.
   */
  async enqueue(input: NewOutboxRecord, options: { claim?: Lease } = {}): Promise<EnqueueResult> {
    checkApproval(input, options.claim);
    return this.insert(input, options.claim);
  }

  /**
   * Keeps each record's data frozen, as `enqueue` does. Every record is checked before any is stored, so a batch with
   * one bad record stores none of it. (A structured clone of every record made each queued message cost twice the
   * memory: every string of it copied.)
   */
  async enqueueMany(records: readonly NewOutboxRecord[]): Promise<EnqueueResult[]> {
    for (const r of records) checkApproval(r, undefined);
    // All built before any is stored: a record that cannot be built leaves none of the batch stored (all or nothing).
    const built = records.map((input) => this.build(input, undefined));
    return built.map((record) => this.add(record, undefined));
  }

  /** Synchronous, so a batch is never interleaved with another call. */
  private insert(input: NewOutboxRecord, claim: Lease | undefined): EnqueueResult {
    return this.add(this.build(input, claim), claim);
  }

  /** The record a new message becomes; nothing is stored yet (throws for an input it cannot keep). */
  private build(input: NewOutboxRecord, claim: Lease | undefined): OutboxRecord {
    const now = new Date();
    const { delayMs, approval } = input;
    const sendAt = input.sendAt ? new Date(input.sendAt) : now;
    // Field by field, in the order `snapshot` writes them (see above `snapshot`).
    // Ids flattened: a caller's `msg_${randomUUID()}` is a tree of some 30 string pieces (see `flatString`).
    const record: OutboxRecord = {
      id: flatString(input.id),
      ownerId: input.ownerId,
      agentId: input.agentId,
      idempotencyKey: input.idempotencyKey,
      fingerprint: input.fingerprint,
      status: approval ? 'pending_approval' : claim ? 'sending' : 'queued',
      messageId: flatString(input.messageId),
      email: keptEmail(input.email),
      sendAt,
      nextAttemptAt: delayMs ? new Date(sendAt.getTime() + delayMs) : sendAt,
      attempt: claim ? 1 : 0,
      maxAttempts: input.maxAttempts,
      leaseOwner: claim?.workerId,
      leaseExpiresAt: claim ? new Date(now.getTime() + claim.leaseMs) : undefined,
      possibleDuplicate: false,
      server: undefined,
      accepted: NONE,
      rejected: NONE,
      response: undefined,
      error: undefined,
      tags: freezeData(listOf(input.tags)),
      metadata: freezeData(input.metadata),
      approval: approval && { reason: approval.reason, expiresAt: new Date(now.getTime() + approval.ttlMs), decidedBy: undefined, decidedAt: undefined },
      createdAt: now,
      updatedAt: now,
    };
    return record;
  }

  /** Stores a built record, unless its owner's idempotency key is taken: then the record under that key. */
  private add(record: OutboxRecord, claim: Lease | undefined): EnqueueResult {
    const existingId = record.idempotencyKey === undefined ? undefined : this.byKey.get(record.ownerId, record.idempotencyKey);
    if (existingId !== undefined) return { created: false, record: snapshot(this.byId.get(existingId)!) };
    this.byId.set(record.id, record);
    this.insertionOrder.set(record, this.nextSeq++);
    if (record.status === 'queued') this.enterQueue(record);
    else if (record.status === 'sending') this.indexLease(record);
    if (record.idempotencyKey !== undefined) this.byKey.set(record.ownerId, record.idempotencyKey, record.id);
    const sameMessageId = this.byMessageId.get(record.ownerId, record.messageId);
    if (sameMessageId) sameMessageId.push(record.id);
    else this.byMessageId.set(record.ownerId, record.messageId, [record.id]);
    if (record.approval) {
      this.listAsPending(record);
      this.events.record(record, 'pending_approval', {
        sendAt: record.sendAt.toISOString(),
        reason: record.approval.reason,
        expiresAt: record.approval.expiresAt.toISOString(),
      });
    } else this.events.record(record, 'queued', { sendAt: record.sendAt.toISOString() });
    if (claim) this.events.record(record, 'claimed', { worker: claim.workerId });
    this.prune();
    return { created: true, record: snapshot(record) };
  }

  /**
   * Due queued records and expired leases, oldest first by (nextAttemptAt, createdAt, insertion): the queue's heap
   * is read from the top, the expired leases (few: only crashed workers leave them) are all taken out and sorted,
   * and the two are merged. Work is the claimed and expired records (times log n), not the size of the queue.
   */
  async claim(options: ClaimOptions): Promise<OutboxRecord[]> {
    const now = options.now ?? new Date();
    if (options.ids) return this.claimIds(options, now);
    const expired = this.expiredLeases(options.ownerId, now.getTime()).sort(this.dueOrder);
    const claimed: OutboxRecord[] = [];
    let next = 0;
    while (claimed.length < options.limit) {
      const queued = this.queue.first(options.ownerId);
      const due = queued && queued.due <= now.getTime() ? queued.record : undefined;
      const takeover = expired[next];
      if (!due && !takeover) break;
      const record = takeover && (!due || this.dueOrder(takeover, due) < 0) ? expired[next++]! : due!;
      const taken = this.take(record, options, now);
      if (taken) claimed.push(taken);
    }
    // Not reached this time: still sending under an expired lease, found again by the next claim.
    for (const record of expired.slice(next)) this.indexLease(record);
    return claimed;
  }

  /** A claim of some ids: a direct lookup, sorted like any claim. */
  private claimIds(options: ClaimOptions, now: Date): OutboxRecord[] {
    const due: OutboxRecord[] = [];
    for (const record of options.ids!.flatMap((id) => this.byId.get(id) ?? [])) {
      if (options.ownerId !== undefined && record.ownerId !== options.ownerId) continue;
      if (
        (record.status === 'queued' && record.nextAttemptAt <= now) ||
        (record.status === 'sending' && record.leaseExpiresAt !== undefined && record.leaseExpiresAt <= now)
      ) {
        due.push(record);
      }
    }
    // The sort is stable: records tied on both keys stay in the order asked for.
    due.sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || a.createdAt.getTime() - b.createdAt.getTime());
    const claimed: OutboxRecord[] = [];
    for (const record of due) {
      if (claimed.length >= options.limit) break;
      const taken = this.take(record, options, now);
      if (taken) claimed.push(taken);
    }
    return claimed;
  }

  /** Claims one due record, or ends one whose lease expired when it may not be sent again (then undefined). */
  private take(record: OutboxRecord, options: ClaimOptions, now: Date): OutboxRecord | undefined {
    const expired = record.status === 'sending';
    if (expired && (record.possibleDuplicate || record.attempt >= record.maxAttempts)) {
      // Taken over once already, or out of attempts, with the last outcome unknown: stop rather than send again.
      this.finish(record, 'unknown', now, { error: leaseExpiredError(record.attempt) });
      return undefined;
    }
    this.queue.remove(record.id);
    record.attempt += 1;
    record.status = 'sending';
    record.leaseOwner = options.workerId;
    record.leaseExpiresAt = new Date(now.getTime() + options.leaseMs);
    if (expired) record.possibleDuplicate = true;
    record.updatedAt = now;
    this.indexLease(record);
    this.events.record(record, expired ? 'reclaimed' : 'claimed', { worker: options.workerId });
    return snapshot(record);
  }

  /**
   * Takes every sending record (of `ownerId`, or of anyone) whose lease has expired out of the lease index. An entry
   * can be older than its lease (a heartbeat moved the lease later without a new entry): such a record goes back
   * in at its lease.
   */
  private expiredLeases(ownerId: string | undefined, now: number): OutboxRecord[] {
    const expired: OutboxRecord[] = [];
    for (let entry = this.leases.first(ownerId); entry && entry.expires <= now; entry = this.leases.first(ownerId)) {
      const { record } = entry;
      this.leases.remove(record.id);
      if (record.leaseExpiresAt!.getTime() <= now) expired.push(record);
      else this.indexLease(record);
    }
    return expired;
  }

  /** The claim's order: nextAttemptAt, then createdAt, then insertion. */
  private readonly dueOrder = (a: OutboxRecord, b: OutboxRecord): number =>
    a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() ||
    a.createdAt.getTime() - b.createdAt.getTime() ||
    this.insertionOrder.get(a)! - this.insertionOrder.get(b)!;

  private enterQueue(record: OutboxRecord): void {
    this.queue.add({
      id: record.id,
      ownerId: record.ownerId,
      record,
      due: record.nextAttemptAt.getTime(),
      created: record.createdAt.getTime(),
      seq: this.insertionOrder.get(record)!,
    });
  }

  private indexLease(record: OutboxRecord): void {
    this.leases.add({ id: record.id, ownerId: record.ownerId, record, expires: record.leaseExpiresAt!.getTime() });
  }

  async extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    const record = this.byId.get(id);
    if (!record || record.status !== 'sending' || record.attempt !== attempt) return false;
    record.leaseExpiresAt = new Date(Date.now() + leaseMs);
    // A later lease keeps its entry (a claim finds it early and puts it back at its lease); only an earlier one,
    // from a shorter leaseMs, needs a new entry. So heartbeats do not grow the index.
    if (record.leaseExpiresAt.getTime() < (this.leases.entry(id)?.expires ?? Infinity)) this.indexLease(record);
    return true;
  }

  async settle(id: string, attempt: number, settlement: Settlement): Promise<OutboxRecord | undefined> {
    const record = this.byId.get(id);
    if (!record || record.status !== 'sending' || record.attempt !== attempt) return undefined;
    const now = new Date();
    if (settlement.status === 'sent') {
      Object.assign(record, {
        server: settlement.server,
        accepted: listOf([...settlement.accepted]),
        rejected: listOf([...settlement.rejected]),
        response: settlement.response,
        error: undefined,
      });
      this.finish(record, 'sent', now, {});
    } else if (settlement.status === 'retry') {
      const at = new Date(now.getTime() + settlement.delayMs);
      Object.assign(record, { status: 'queued', nextAttemptAt: at, error: { ...settlement.error }, server: settlement.server });
      this.release(record, now);
      this.enterQueue(record);
      this.events.record(record, 'retry', { at: at.toISOString(), code: settlement.error.code, server: settlement.server });
    } else {
      this.finish(record, settlement.status, now, { error: { ...settlement.error }, server: settlement.server });
    }
    return snapshot(record);
  }

  async reclaim(ownerId: string, id: string, lease: Lease): Promise<OutboxRecord | undefined> {
    const record = this.byId.get(id);
    if (!record || record.ownerId !== ownerId || record.status !== 'failed' || !record.error?.retryable) return undefined;
    this.unfinish(record);
    this.forgetContent(record.id);
    const now = new Date();
    Object.assign(record, {
      status: 'sending',
      attempt: record.attempt + 1,
      leaseOwner: lease.workerId,
      leaseExpiresAt: new Date(now.getTime() + lease.leaseMs),
      updatedAt: now,
    });
    this.indexLease(record);
    this.events.record(record, 'claimed', { worker: lease.workerId, retry: true });
    return snapshot(record);
  }

  async cancel(ownerId: string, id: string): Promise<{ cancelled: boolean; record: OutboxRecord } | undefined> {
    const record = this.byId.get(id);
    if (!record || record.ownerId !== ownerId) return undefined;
    if (record.status !== 'queued' && record.status !== 'pending_approval') return { cancelled: false, record: snapshot(record) };
    this.finish(record, 'cancelled', new Date(), {});
    return { cancelled: true, record: snapshot(record) };
  }

  /** Synchronous from check to change, so of two deciders one wins and the other finds it no longer pending. */
  async decide(ownerId: string, id: string, decision: { approve: boolean; by: string; now?: Date | undefined }): Promise<ApprovalDecision | undefined> {
    const record = this.byId.get(id);
    if (!record || record.ownerId !== ownerId) return undefined;
    if (record.status !== 'pending_approval' || !record.approval) return { outcome: 'not_pending', record: snapshot(record) };
    const now = decision.now ?? new Date();
    record.approval = { ...record.approval, decidedBy: decision.by, decidedAt: now };
    const detail = { by: decision.by };
    if (record.approval.expiresAt <= now) {
      this.finish(record, 'expired', now, {}, detail);
      return { outcome: 'expired', record: snapshot(record) };
    }
    if (!decision.approve) {
      this.finish(record, 'rejected', now, {}, detail);
      return { outcome: 'rejected', record: snapshot(record) };
    }
    this.unlistPending(record);
    record.status = 'queued';
    // Due at its own time (sendAt, plus any delay) or now, whichever is later.
    if (record.nextAttemptAt < now) record.nextAttemptAt = now;
    record.updatedAt = now;
    this.enterQueue(record);
    this.events.record(record, 'approved', detail);
    return { outcome: 'approved', record: snapshot(record) };
  }

  async listPending(
    ownerId: string,
    options: { agentId?: string | undefined; after?: string | undefined; limit?: number | undefined; now?: Date | undefined } = {},
  ): Promise<OutboxRecord[]> {
    const now = options.now ?? new Date();
    const waiting: OutboxRecord[] = [];
    // A copy: expiring one removes it from the set being walked.
    for (const id of [...(this.pending.get(ownerId) ?? [])]) {
      const record = this.byId.get(id)!;
      if (record.approval!.expiresAt <= now) this.finish(record, 'expired', now, {});
      else waiting.push(record);
    }
    let cursor: OutboxRecord | undefined;
    if (options.after !== undefined) {
      cursor = this.byId.get(options.after);
      // Not one of this owner's messages: an empty page, as for an unknown event cursor.
      if (!cursor || cursor.ownerId !== ownerId) return [];
    }
    return waiting
      .filter((r) => options.agentId === undefined || r.agentId === options.agentId)
      .filter((r) => !cursor || byCreation(r, cursor) > 0)
      .sort(byCreation)
      .slice(0, Math.max(0, options.limit ?? 100))
      .map(snapshot);
  }

  async get(ownerId: string, id: string): Promise<OutboxRecord | undefined> {
    const record = this.byId.get(id);
    return record && record.ownerId === ownerId ? snapshot(record) : undefined;
  }

  /** The record itself, not a copy, for the stats scan (which reads `accepted` and `tags` of every event's record). */
  peek(ownerId: string, id: string): OutboxRecord | undefined {
    const record = this.byId.get(id);
    return record && record.ownerId === ownerId ? record : undefined;
  }

  async findByIdempotencyKey(ownerId: string, idempotencyKey: string): Promise<OutboxRecord | undefined> {
    const id = this.byKey.get(ownerId, idempotencyKey);
    return id === undefined ? undefined : snapshot(this.byId.get(id)!);
  }

  async findByMessageId(ownerId: string, messageIdHeader: string, options: { limit?: number } = {}): Promise<OutboxRecord[]> {
    const ids = this.byMessageId.get(ownerId, messageIdHeader) ?? [];
    return ids.slice(0, Math.max(0, options.limit ?? 100)).map((id) => snapshot(this.byId.get(id)!));
  }

  private finish(
    record: OutboxRecord,
    status: 'sent' | 'failed' | 'unknown' | 'cancelled' | 'rejected' | 'expired',
    now: Date,
    fields: Partial<OutboxRecord>,
    detail: Record<string, unknown> = {},
  ): void {
    if (record.status === 'pending_approval') this.unlistPending(record);
    this.queue.remove(record.id);
    Object.assign(record, fields, { status });
    this.release(record, now);
    this.finished.set(record.id, now.getTime());
    this.shellBytes += shellBytes(record);
    this.retainContent(record);
    const eventDetail: Record<string, unknown> = {};
    if (record.server) eventDetail.server = record.server;
    if (record.error && status !== 'sent') eventDetail.code = record.error.code;
    if (record.response && status === 'sent') eventDetail.response = record.response;
    this.events.record(record, status, Object.assign(eventDetail, detail));
    this.prune();
  }

  private listAsPending(record: OutboxRecord): void {
    const ids = this.pending.get(record.ownerId);
    if (ids) ids.add(record.id);
    else this.pending.set(record.ownerId, new Set([record.id]));
  }

  /** Drops an owner's set once it is empty, so owners who once waited for approval cost nothing. */
  private unlistPending(record: OutboxRecord): void {
    const ids = this.pending.get(record.ownerId);
    if (ids?.delete(record.id) && ids.size === 0) this.pending.delete(record.ownerId);
  }

  private release(record: OutboxRecord, now: Date): void {
    record.leaseOwner = undefined;
    record.leaseExpiresAt = undefined;
    record.updatedAt = now;
    this.leases.remove(record.id);
  }

  /** Drops the oldest finished records while there are too many, they keep too much, or the oldest is too old. */
  private prune(): void {
    const { maxMessages, maxFinishedBytes, maxFinishedAgeMs } = this.limits;
    const oldestKept = Date.now() - maxFinishedAgeMs;
    for (const [id, finishedAt] of this.finished) {
      if (this.byId.size <= maxMessages && this.finishedBytes <= maxFinishedBytes && finishedAt >= oldestKept) break;
      this.drop(this.byId.get(id)!);
    }
  }

  /** Forgets a finished record entirely: it, its idempotency key and its events. */
  private drop(record: OutboxRecord): void {
    this.unfinish(record);
    this.forgetContent(record.id);
    this.byId.delete(record.id);
    if (record.idempotencyKey !== undefined) this.byKey.delete(record.ownerId, record.idempotencyKey);
    const remaining = (this.byMessageId.get(record.ownerId, record.messageId) ?? []).filter((id) => id !== record.id);
    if (remaining.length) this.byMessageId.set(record.ownerId, record.messageId, remaining);
    else this.byMessageId.delete(record.ownerId, record.messageId);
    this.events.forget(record.id);
  }

  /** No longer finished (reclaimed for another try) or no longer kept: out of the finished list and its byte count. */
  private unfinish(record: OutboxRecord): void {
    if (this.finished.delete(record.id)) this.shellBytes -= shellBytes(record);
  }

  /** Counts a newly finished record's content, then strips the oldest until the total fits `maxRetainedBytes`. */
  private retainContent(record: OutboxRecord): void {
    const size = contentBytes(record.email);
    if (size === 0) return;
    this.withContent.set(record.id, size);
    this.keptBytes += size;
    for (const id of this.withContent.keys()) {
      if (this.keptBytes <= this.limits.maxRetainedBytes) break;
      const oldest = this.byId.get(id)!;
      // A retryable failure is reclaimed with its content under the same key: without it a retry would send an
      // empty message, so it goes whole and a retry starts afresh.
      if (oldest.status === 'failed' && oldest.error?.retryable) this.drop(oldest);
      else {
        this.forgetContent(id);
        oldest.email = withoutContent(oldest.email);
      }
    }
  }

  private forgetContent(id: string): void {
    const size = this.withContent.get(id);
    if (size === undefined) return;
    this.withContent.delete(id);
    this.keptBytes -= size;
  }
}

/** An event with its place in the log: `seq` only grows, so a cursor can be found again by binary search. */
interface LoggedEvent {
  seq: number;
  /** Once `gone`, only its owner is kept (the rest is freed): a reader's cursor still marks its place. */
  event: MailEvent;
  /**
   * 0 while its message is kept. Its message was dropped: 1, skipped by every read; 2 once the next compaction took it
   * out of the per-owner lists (the log keeps it until the count cap trims it).
   */
  gone: 0 | 1 | 2;
}

/** The index of the first entry of `log` (ordered by seq) whose seq is above `seq`. */
function firstAfter(log: readonly { seq: number }[], seq: number): number {
  let low = 0;
  let high = log.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (log[mid]!.seq <= seq) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Ids for the entries of one log, in the form of a UUID: a random prefix drawn once per log, then the entry's place in
 * the log (12 hex digits). A cursor is found again from its place by binary search: no map of every id is kept, and no
 * random UUID is drawn per entry (both were a measurable part of each send).
 */
class LogIds {
  private readonly prefix = randomUuid().slice(0, 24);

  idOf(seq: number): string {
    return this.prefix + seq.toString(16).padStart(12, '0');
  }

  /** The place `id` names in this log, or undefined for an id this log never gave. */
  seqOf(id: string): number | undefined {
    if (id.length !== 36 || !id.startsWith(this.prefix)) return undefined;
    const place = id.slice(24);
    return /^[0-9a-f]{12}$/.test(place) ? Number.parseInt(place, 16) : undefined;
  }

  /** The kept entry `id` names in `log` (ordered by seq), if any. */
  find<T extends { seq: number }>(log: readonly T[], id: string): T | undefined {
    const seq = this.seqOf(id);
    if (seq === undefined) return undefined;
    const entry = log[firstAfter(log, seq - 1)];
    return entry?.seq === seq ? entry : undefined;
  }
}

class MemoryEventStore implements EventStore {
  private entries: LoggedEvent[] = [];
  private byMessage = new Map<string, LoggedEvent[]>();
  /** Each owner's kept events in append order: stats scan one owner's events, never the whole log. */
  private byOwner = new Map<string, LoggedEvent[]>();
  private readonly ids = new LogIds();
  private nextSeq = 1;
  /** The seq of the oldest event the count cap (`maxEvents`) has left; older ones are gone from every index. */
  private oldestSeq = 1;
  /** Entries whose message was dropped, still in the per-owner lists (`gone` 1). */
  private goneCount = 0;
  /** Kept events whose message is kept too. */
  private liveCount = 0;

  constructor(private readonly max: number) {}

  record(record: OutboxRecord, type: MailEventType, detail: Record<string, unknown>): void {
    const seq = this.nextSeq++;
    this.push(seq, { id: this.ids.idOf(seq), ownerId: record.ownerId, messageId: record.id, type, at: new Date(), attempt: record.attempt, detail });
  }

  async append(event: Omit<MailEvent, 'id' | 'at'> & { at?: Date }): Promise<MailEvent> {
    const at = event.at ? new Date(event.at) : new Date();
    const seq = this.nextSeq++;
    const stored: MailEvent = { id: this.ids.idOf(seq), ownerId: event.ownerId, messageId: event.messageId, type: event.type, at, attempt: event.attempt, detail: freezeData(event.detail ?? {}) };
    this.push(seq, stored);
    return snapshotEvent(stored);
  }

  /**
   * One process appends one event at a time, so append order is final the moment `list` can see an event: paging
   * with `after` has no gaps. A cursor older than what the log keeps (`maxEvents`) gives an empty page.
   */
  async list(ownerId: string, options: EventListOptions = {}): Promise<MailEvent[]> {
    const source = options.messageId === undefined ? this.entries : (this.byMessage.get(options.messageId) ?? []);
    let start = 0;
    if (options.after !== undefined) {
      // A cursor whose message was dropped since still marks a place (its entry keeps the owner); one the count cap
      // trimmed, or another owner's, gives nothing.
      const cursor = this.ids.find(this.entries, options.after);
      if (!cursor || cursor.event.ownerId !== ownerId) return [];
      start = firstAfter(source, cursor.seq);
    }
    const limit = options.limit ?? 1_000;
    const out: MailEvent[] = [];
    for (let i = start; i < source.length && out.length < limit; i++) {
      const { event, gone } = source[i]!;
      if (gone || event.ownerId !== ownerId) continue;
      if (options.type !== undefined && event.type !== options.type) continue;
      out.push(snapshotEvent(event));
    }
    return out;
  }

  /** The owner's kept events, oldest first (as `list` sees them owner-wide); skip those marked `gone`. */
  ofOwner(ownerId: string): readonly LoggedEvent[] {
    return this.byOwner.get(ownerId) ?? [];
  }

  /** The events of one message (the outbox record's id), of any owner: the caller checks the owner. */
  ofMessage(messageId: string): readonly LoggedEvent[] {
    return this.byMessage.get(messageId) ?? [];
  }

  /**
   * Drops the events of a message the outbox no longer keeps, so that a dropped message frees all its memory. They
   * are marked and skipped at once, and taken out of the log when half of it is such (amortised O(1) per event).
   */
  forget(messageId: string): void {
    const events = this.byMessage.get(messageId);
    if (!events) return;
    this.byMessage.delete(messageId);
    for (const logged of events) {
      if (logged.gone || logged.seq < this.oldestSeq) continue;
      logged.gone = 1;
      // The log keeps the entry (a tail whose cursor is this event must go on from here, and only for its owner), not
      // the event: its detail and the rest are freed now. The count cap (`maxEvents`) trims entries as before.
      logged.event = { ownerId: logged.event.ownerId } as MailEvent;
      this.goneCount++;
      this.liveCount--;
    }
    if (this.goneCount > 1_024 && this.goneCount > this.liveCount) this.compact();
  }

  private compact(): void {
    for (const [ownerId, events] of this.byOwner) {
      for (const logged of events) if (logged.gone) logged.gone = 2;
      const remaining = events.filter((logged) => !logged.gone);
      if (remaining.length) this.byOwner.set(ownerId, remaining);
      else this.byOwner.delete(ownerId);
    }
    this.goneCount = 0;
  }

  private push(seq: number, event: MailEvent): void {
    const logged: LoggedEvent = { seq, event, gone: 0 };
    this.entries.push(logged);
    this.liveCount++;
    const forMessage = this.byMessage.get(event.messageId);
    if (forMessage) forMessage.push(logged);
    else this.byMessage.set(event.messageId, [logged]);
    const forOwner = this.byOwner.get(event.ownerId);
    if (forOwner) forOwner.push(logged);
    else this.byOwner.set(event.ownerId, [logged]);
    // Trim in batches: copying the whole log on every append past the cap would make each append O(n).
    if (this.entries.length > this.max * 2) {
      const dropped = this.entries.slice(0, -this.max);
      this.entries = this.entries.slice(-this.max);
      for (const logged of dropped) {
        if (logged.gone === 1) this.goneCount--;
        else if (logged.gone === 0) this.liveCount--;
      }
      const oldestKept = (this.oldestSeq = this.entries[0]!.seq);
      for (const index of [this.byMessage, this.byOwner]) {
        for (const [id, events] of index) {
          const remaining = events.slice(firstAfter(events, oldestKept - 1));
          if (remaining.length) index.set(id, remaining);
          else index.delete(id);
        }
      }
    }
  }
}

/** The event types stats count; the others (queued, claimed, retry, …) are skipped without a look at their record. */
const STATS_EVENT_TYPES: ReadonlySet<MailEventType> = new Set<MailEventType>(['sent', 'opened', 'clicked', 'unsubscribed', 'bounced', 'complained']);

/** Opens or clicks being counted: totals, and the messages seen, for the unique counts. */
class EngagementTally {
  readonly human = { messages: new Set<string>(), total: 0 };
  readonly machine = { messages: new Set<string>(), total: 0 };

  add(messageId: string, human: boolean): void {
    const side = human ? this.human : this.machine;
    side.total += 1;
    side.messages.add(messageId);
  }

  counts(): MailStats['opened'] {
    return {
      human: { unique: this.human.messages.size, total: this.human.total },
      machine: { unique: this.machine.messages.size, total: this.machine.total },
    };
  }
}

/** Code-unit order, as Postgres compares under the "C" collation. */
const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The counts of one `summary`, event by event. */
class StatsTally {
  private sent = 0;
  private delivered = 0;
  private bounced = 0;
  private unsubscribed = 0;
  private complained = 0;
  private readonly opened = new EngagementTally();
  private readonly clicked = new EngagementTally();
  private readonly links = new Map<string, { link: number; url: string; human: number; machine: number }>();

  /** `record` is the event's outbox record when the store still keeps it; `inBurst` from `clicksInBursts`. */
  add(event: MailEvent, record: OutboxRecord | undefined, inBurst: boolean): void {
    // A person only when the tracking handler said so: a missing or odd `machine` is not counted as one.
    const human = event.detail.machine === false && !inBurst;
    switch (event.type) {
      case 'sent':
        this.sent += 1;
        this.delivered += record?.accepted.length ?? 0;
        break;
      case 'opened':
        this.opened.add(event.messageId, human);
        break;
      case 'clicked':
        this.clicked.add(event.messageId, human);
        this.addLink(event.detail, human);
        break;
      case 'bounced':
        this.bounced += 1;
        break;
      case 'unsubscribed':
        this.unsubscribed += 1;
        break;
      case 'complained':
        this.complained += 1;
        break;
    }
  }

  toStats(): MailStats {
    const opened = this.opened.counts();
    const clicked = this.clicked.counts();
    const share = (n: number): number => (this.sent === 0 ? 0 : n / this.sent);
    return {
      sent: this.sent,
      delivered: this.delivered,
      opened,
      clicked: {
        ...clicked,
        links: [...this.links.values()]
          .sort((a, b) => b.human - a.human || b.machine - a.machine || a.link - b.link || byCodeUnit(a.url, b.url))
          .slice(0, 100),
      },
      bounced: this.bounced,
      unsubscribed: this.unsubscribed,
      complained: this.complained,
      rates: { open: share(opened.human.unique), click: share(clicked.human.unique), bounce: share(this.bounced), unsubscribe: share(this.unsubscribed) },
    };
  }

  /** A click counts per link only when it names one: an integer `link` and a string `url`. */
  private addLink({ link, url }: Record<string, unknown>, human: boolean): void {
    if (typeof link !== 'number' || !Number.isInteger(link) || typeof url !== 'string') return;
    const k = key(String(link), url);
    let counts = this.links.get(k);
    if (!counts) this.links.set(k, (counts = { link, url, human: 0, machine: 0 }));
    if (human) counts.human += 1;
    else counts.machine += 1;
  }
}

/**
 * The clicks that have another, on a different link of the same message, less than `BURST_WINDOW_MS` away (before or
 * after). Per message, sorted by time, a window of neighbours slides over the clicks with a count per link: a click is
 * in a burst when the window holds a click of another link. O(n log n), however many clicks share a link.
 */
function clicksInBursts(clicks: readonly MailEvent[]): Set<MailEvent> {
  const byMessage = new Map<string, { at: number; link: number; event: MailEvent }[]>();
  for (const event of clicks) {
    const { link } = event.detail;
    // Only a click naming a link has a different one (a JSON number: what Postgres can hold).
    if (typeof link !== 'number' || !Number.isFinite(link)) continue;
    let list = byMessage.get(event.messageId);
    if (!list) byMessage.set(event.messageId, (list = []));
    list.push({ at: event.at.getTime(), link, event });
  }
  const inBursts = new Set<MailEvent>();
  for (const list of byMessage.values()) {
    list.sort((a, b) => a.at - b.at);
    const perLink = new Map<number, number>();
    let inWindow = 0;
    let start = 0;
    let end = 0;
    for (const click of list) {
      for (; end < list.length && list[end]!.at < click.at + BURST_WINDOW_MS; end++, inWindow++) {
        perLink.set(list[end]!.link, (perLink.get(list[end]!.link) ?? 0) + 1);
      }
      for (; list[start]!.at <= click.at - BURST_WINDOW_MS; start++, inWindow--) {
        perLink.set(list[start]!.link, perLink.get(list[start]!.link)! - 1);
      }
      if (inWindow > perLink.get(click.link)!) inBursts.add(click.event);
    }
  }
  return inBursts;
}

/**
 * Two scans of the owner's kept events (or of one message's): the clicks first, for the bursts (over every kept click
 * of a message, also outside `from`/`to`), then each counted event joined to its record for `accepted` and `tags`:
 * O(the owner's events). A message the store has dropped (`maxMessages`, `maxFinishedBytes`, `maxFinishedAgeMs`) no
 * longer counts: its events went with it. Events for a message it never kept, or appended after it was dropped (a
 * late open), count as `events.list` shows them, but add no recipients to `delivered` and match no tag.
 */
class MemoryStatsStore implements StatsStore {
  constructor(
    private readonly events: MemoryEventStore,
    private readonly outbox: MemoryOutboxStore,
  ) {}

  async summary(ownerId: string, query: MailStatsQuery = {}): Promise<MailStats> {
    const source = query.messageId === undefined ? this.events.ofOwner(ownerId) : this.events.ofMessage(query.messageId);
    const inBursts = clicksInBursts(source.filter(({ event, gone }) => !gone && event.ownerId === ownerId && event.type === 'clicked').map(({ event }) => event));
    const tally = new StatsTally();
    for (const { event, gone } of source) {
      if (gone || event.ownerId !== ownerId || !STATS_EVENT_TYPES.has(event.type)) continue;
      if ((query.from && event.at < query.from) || (query.to && event.at >= query.to)) continue;
      const record = this.outbox.peek(ownerId, event.messageId);
      if (query.tag !== undefined && !record?.tags.includes(query.tag)) continue;
      tally.add(event, record, inBursts.has(event));
    }
    return tally.toStats();
  }
}

class MemorySuppressionStore implements SuppressionStore {
  private readonly entries = new Map<string, Suppression>();

  async add(input: Omit<Suppression, 'createdAt' | 'detail'> & { detail?: Record<string, unknown> }): Promise<Suppression> {
    const address = input.address.toLowerCase();
    const stored: Suppression = { ownerId: input.ownerId, address, reason: input.reason, detail: input.detail ?? {}, createdAt: new Date() };
    this.entries.set(key(input.ownerId, address), stored);
    return structuredClone(stored);
  }

  async find(ownerId: string, addresses: readonly string[]): Promise<Suppression[]> {
    const out: Suppression[] = [];
    for (const address of new Set(addresses.map((a) => a.toLowerCase()))) {
      const hit = this.entries.get(key(ownerId, address));
      if (hit) out.push(structuredClone(hit));
    }
    return out;
  }

  async remove(ownerId: string, address: string): Promise<boolean> {
    return this.entries.delete(key(ownerId, address.toLowerCase()));
  }

  async list(ownerId: string, options: { limit?: number } = {}): Promise<Suppression[]> {
    return [...this.entries.values()].filter((s) => s.ownerId === ownerId).slice(0, options.limit ?? 1_000).map((s) => structuredClone(s));
  }
}

/** An audit entry with its place in the log, found again by binary search (`firstAfter`) for a `before` cursor. */
interface LoggedAudit {
  seq: number;
  entry: AuditEntry;
}

class MemoryAuditStore implements AuditStore {
  private entries: LoggedAudit[] = [];
  private readonly ids = new LogIds();
  private nextSeq = 1;

  constructor(private readonly max: number) {}

  async append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const seq = this.nextSeq++;
    const stored = auditEntry(entry, this.ids.idOf(seq), new Date(), freezeData(entry.detail ?? {}));
    this.entries.push({ seq, entry: stored });
    // Trimmed in batches, as the event log is, so an append stays O(1).
    if (this.entries.length > this.max * 2) this.entries = this.entries.slice(-this.max);
    return snapshotAudit(stored);
  }

  /** Newest first. A cursor that is not one of the owner's kept entries gives an empty page. */
  async list(ownerId: string, options: AuditListOptions = {}): Promise<AuditEntry[]> {
    let end = this.entries.length;
    if (options.before !== undefined) {
      const cursor = this.ids.find(this.entries, options.before);
      if (!cursor || cursor.entry.ownerId !== ownerId) return [];
      end = firstAfter(this.entries, cursor.seq - 1);
    }
    const limit = auditLimit(options.limit);
    const out: AuditEntry[] = [];
    for (let i = end - 1; i >= 0 && out.length < limit; i--) {
      const { entry } = this.entries[i]!;
      if (entry.ownerId !== ownerId) continue;
      // An empty action or agent id means any, as in Postgres.
      if (options.action && entry.action !== options.action) continue;
      if (options.agentId && entry.agentId !== options.agentId) continue;
      if (options.from && entry.at < options.from) continue;
      if (options.to && entry.at >= options.to) continue;
      out.push(snapshotAudit(entry));
    }
    return out;
  }
}

/** `AuditListOptions.limit`: default 100, at most 1000. */
const auditLimit = (limit: number | undefined): number => Math.min(Math.max(0, Math.floor(limit ?? 100)), 1_000);

/** Windows kept per counter: the current one and the one before (a refund may name it); older ones are dropped. */
const COUNTER_WINDOWS_KEPT = 2;

class MemoryCounterStore implements CounterStore {
  private readonly values = new Map<string, number>();
  /** Each counter's windows, oldest first: a per-minute quota opens a new one every minute, so old ones must go. */
  private readonly windows = new Map<string, string[]>();

  async increment(ownerId: string, name: string, window: string, by: number, limit: number): Promise<{ allowed: boolean; value: number }> {
    const k = key(ownerId, name, window);
    const value = this.values.get(k) ?? 0;
    if (by < 0) {
      // Quota given back: always allowed, never below 0.
      const refunded = Math.max(0, value + by);
      if (this.values.has(k)) this.values.set(k, refunded);
      return { allowed: true, value: refunded };
    }
    if (value + by > limit) return { allowed: false, value };
    if (!this.values.has(k)) this.opened(ownerId, name, window);
    this.values.set(k, value + by);
    return { allowed: true, value: value + by };
  }

  private opened(ownerId: string, name: string, window: string): void {
    const counter = key(ownerId, name);
    const list = this.windows.get(counter) ?? [];
    list.push(window);
    while (list.length > COUNTER_WINDOWS_KEPT) this.values.delete(key(ownerId, name, list.shift()!));
    this.windows.set(counter, list);
  }

  async get(ownerId: string, name: string, window: string): Promise<number> {
    return this.values.get(key(ownerId, name, window)) ?? 0;
  }
}

class MemoryCredentialStore implements CredentialStore {
  /** By owner and id; a Map keeps insertion order, which is creation order (a replace keeps its place). */
  private readonly configs = new Map<string, StoredSmtpConfig>();

  async save(config: SmtpConfigWrite): Promise<StoredSmtpConfig> {
    const k = key(config.ownerId, config.id);
    const existing = this.configs.get(k);
    const mine = this.#owned(config.ownerId);
    if (mine.some((c) => c.name === config.name && c.id !== config.id)) {
      throw ValidationError.of('name', `"${config.name}" is already the name of another SMTP config of this owner; choose another name`);
    }
    const otherDefault = mine.some((c) => c.isDefault && c.id !== config.id);
    const isDefault = config.isDefault || (config.active && !otherDefault);
    if (config.isDefault) for (const c of mine) if (c.id !== config.id) c.isDefault = false;
    const now = new Date();
    const { keepPassword, keepDkimKey, ...fields } = config;
    // A config without a DKIM domain keeps no DKIM key, as the Postgres function does.
    const dkim = config.dkimDomain === undefined ? undefined : keepDkimKey ? existing : config;
    const stored: StoredSmtpConfig = {
      ...fields,
      isDefault,
      passwordCiphertext: keepPassword ? existing?.passwordCiphertext : config.passwordCiphertext,
      keyId: keepPassword ? existing?.keyId : config.keyId,
      dkimDomain: config.dkimDomain,
      dkimSelector: config.dkimDomain === undefined ? undefined : config.dkimSelector,
      dkimKeyCiphertext: dkim?.dkimKeyCiphertext,
      dkimKeyId: dkim?.dkimKeyId,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    this.configs.set(k, stored);
    return { ...stored };
  }

  async get(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined> {
    const hit = this.configs.get(key(ownerId, id));
    return hit ? { ...hit } : undefined;
  }

  async list(ownerId: string): Promise<StoredSmtpConfig[]> {
    return this.#owned(ownerId).map((c) => ({ ...c }));
  }

  async delete(ownerId: string, id: string): Promise<boolean> {
    const hit = this.configs.get(key(ownerId, id));
    if (!hit) return false;
    this.configs.delete(key(ownerId, id));
    if (hit.isDefault) {
      const next = this.#owned(ownerId).find((c) => c.active);
      if (next) next.isDefault = true;
    }
    return true;
  }

  async setDefault(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined> {
    const hit = this.configs.get(key(ownerId, id));
    if (!hit) return undefined;
    for (const c of this.#owned(ownerId)) c.isDefault = c.id === id;
    return { ...hit };
  }

  async listForRotation(options: { keyId: string; ownerId?: string | undefined; after?: SmtpConfigCursor | undefined; limit: number }): Promise<StoredSmtpConfig[]> {
    const { after } = options;
    // Compared by code unit, like Postgres under the "C" collation the SQL function asks for.
    const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    return [...this.configs.values()]
      .filter((c) => (c.keyId !== undefined && c.keyId !== options.keyId) || (c.dkimKeyId !== undefined && c.dkimKeyId !== options.keyId))
      .filter((c) => options.ownerId === undefined || c.ownerId === options.ownerId)
      .filter((c) => !after || cmp(c.ownerId, after.ownerId) > 0 || (c.ownerId === after.ownerId && cmp(c.id, after.id) > 0))
      .sort((a, b) => cmp(a.ownerId, b.ownerId) || cmp(a.id, b.id))
      .slice(0, options.limit)
      .map((c) => ({ ...c }));
  }

  async replacePassword(ownerId: string, id: string, expected: string, next: { keyId: string; passwordCiphertext: string }): Promise<boolean> {
    const hit = this.configs.get(key(ownerId, id));
    if (!hit || hit.passwordCiphertext !== expected) return false;
    hit.keyId = next.keyId;
    hit.passwordCiphertext = next.passwordCiphertext;
    return true;
  }

  async replaceDkimKey(ownerId: string, id: string, expected: string, next: { dkimKeyId: string; dkimKeyCiphertext: string }): Promise<boolean> {
    const hit = this.configs.get(key(ownerId, id));
    if (!hit || hit.dkimKeyCiphertext !== expected) return false;
    hit.dkimKeyId = next.dkimKeyId;
    hit.dkimKeyCiphertext = next.dkimKeyCiphertext;
    return true;
  }

  #owned(ownerId: string): StoredSmtpConfig[] {
    return [...this.configs.values()].filter((c) => c.ownerId === ownerId);
  }
}

/** Policies by owner, then by agent id (undefined: the owner's default). */
class MemoryPolicyStore implements PolicyStore {
  private readonly byOwner = new Map<string, Map<string | undefined, StoredPolicy>>();

  /** Kept as JSON, as Postgres keeps it (jsonb): what a later `get` returns does not depend on the store. */
  async save(entry: { ownerId: string; agentId: string | undefined; policy: Record<string, unknown> }): Promise<StoredPolicy> {
    if (entry.agentId === '') throw ValidationError.of('agentId', 'is empty; pass undefined for the owner\'s default policy, or an agent id');
    const stored: StoredPolicy = {
      ownerId: entry.ownerId,
      agentId: entry.agentId,
      policy: freezeData(JSON.parse(JSON.stringify(entry.policy)) as Record<string, unknown>),
      updatedAt: new Date(),
    };
    const policies = this.byOwner.get(entry.ownerId);
    if (policies) policies.set(entry.agentId, stored);
    else this.byOwner.set(entry.ownerId, new Map([[entry.agentId, stored]]));
    return { ...stored, updatedAt: new Date(stored.updatedAt) };
  }

  async get(ownerId: string, agentId: string | undefined): Promise<StoredPolicy | undefined> {
    const hit = this.byOwner.get(ownerId)?.get(agentId);
    return hit && { ...hit, updatedAt: new Date(hit.updatedAt) };
  }

  async delete(ownerId: string, agentId: string | undefined): Promise<boolean> {
    const policies = this.byOwner.get(ownerId);
    if (!policies?.delete(agentId)) return false;
    if (policies.size === 0) this.byOwner.delete(ownerId);
    return true;
  }

  async list(ownerId: string): Promise<StoredPolicy[]> {
    // The default first, then agent ids in code-unit order (Postgres: the "C" collation).
    const byScope = ({ agentId: a }: StoredPolicy, { agentId: b }: StoredPolicy): number =>
      a === b ? 0 : a === undefined ? -1 : b === undefined ? 1 : a < b ? -1 : 1;
    return [...(this.byOwner.get(ownerId)?.values() ?? [])]
      .sort(byScope)
      .map((p) => ({ ...p, updatedAt: new Date(p.updatedAt) }));
  }
}
