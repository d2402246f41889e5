import type {
  ApprovalDecision,
  ClaimOptions,
  OutboxEnqueueResult as EnqueueResult,
  Lease,
  NewOutboxRecord,
  OutboxRecord,
  OutboxStore,
  Settlement,
} from '@agent-smtp/core';
import { checkApproval, toBatchRecord, wholeMs } from './outbox-args.js';
import type { PostgresClient } from './postgres-client.js';
import { iso, json, nullable, toOutboxRecord, type Row } from './row-mappers.js';

/**
 * `enqueue_many`'s columns as `enqueueMany` reads them: a created record's email, tags and metadata are what the
 * caller just sent, so they do not travel back (at 1,000 records a batch, sending them back and parsing them again
 * was a third of the client's time). An existing record (an idempotency key seen before) comes back whole.
 */
const ENQUEUE_MANY_COLUMNS = [
  'f.created',
  ...['email', 'tags', 'metadata'].map((c) => `case when f.created then null else f.${c} end as ${c}`),
  ...['id', 'owner_id', 'agent_id', 'idempotency_key', 'fingerprint', 'status', 'message_id', 'send_at', 'next_attempt_at', 'attempt',
    'max_attempts', 'lease_owner', 'lease_expires_at', 'possible_duplicate', 'server', 'accepted', 'rejected', 'response', 'error',
    'created_at', 'updated_at', 'approval_reason', 'approval_expires_at', 'approval_decided_by', 'approval_decided_at'].map((c) => `f.${c}`),
].join(', ');

/**
 * The outbox over the schema's SQL functions: each transition and its event is one call of one function, so it
 * is atomic on any client, a pool included.
 */
export class PostgresOutboxStore implements OutboxStore {
  constructor(
    private readonly client: PostgresClient,
    private readonly schema: string,
  ) {}

  async enqueue(input: NewOutboxRecord, options: { claim?: Lease } = {}): Promise<EnqueueResult> {
    checkApproval(input, options.claim);
    const rows = await this.rows(
      `select * from ${this.schema}.enqueue($1, $2, $3, $4, $5, $6, $7::jsonb, $8::timestamptz, $9, $10::text[], $11::jsonb, $12, $13, $14, $15, $16::bigint)`,
      [
        input.id,
        input.ownerId,
        nullable(input.agentId),
        nullable(input.idempotencyKey),
        nullable(input.fingerprint),
        input.messageId,
        json(input.email),
        iso(input.sendAt),
        input.maxAttempts,
        input.tags,
        json(input.metadata ?? {}),
        options.claim ? options.claim.workerId : null,
        options.claim ? wholeMs(options.claim.leaseMs) : null,
        input.delayMs ? wholeMs(input.delayMs) : null,
        input.approval ? input.approval.reason : null,
        input.approval ? wholeMs(input.approval.ttlMs) : null,
      ],
    );
    const row = rows[0]!;
    return { created: row.created === true, record: toOutboxRecord(row) };
  }

  async enqueueMany(records: readonly NewOutboxRecord[]): Promise<EnqueueResult[]> {
    if (records.length === 0) return [];
    for (const r of records) checkApproval(r, undefined);
    // One jsonb parameter: one round trip and one transaction whatever the batch size (the caller chunks).
    const batch = records.map(toBatchRecord);
    const rows = await this.rows(`select ${ENQUEUE_MANY_COLUMNS} from ${this.schema}.enqueue_many($1::jsonb) f`, [json(batch)]);
    return rows.map((row, i) => {
      if (row.created !== true) return { created: false, record: toOutboxRecord(row) };
      const input = records[i]!;
      return { created: true, record: toOutboxRecord({ ...row, email: input.email, tags: input.tags, metadata: input.metadata ?? {} }) };
    });
  }

  async claim(options: ClaimOptions): Promise<OutboxRecord[]> {
    if (options.limit <= 0 || options.ids?.length === 0) return [];
    const rows = await this.rows(`select * from ${this.schema}.claim($1, $2, $3, $4::timestamptz, $5, $6::text[])`, [
      options.workerId,
      Math.floor(options.limit),
      wholeMs(options.leaseMs),
      iso(options.now),
      options.ownerId ?? null,
      options.ids ? [...options.ids] : null,
    ]);
    return rows.map(toOutboxRecord);
  }

  async extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    const rows = await this.rows(`select ${this.schema}.extend_lease($1, $2, $3) as extended`, [id, attempt, wholeMs(leaseMs)]);
    return rows[0]?.extended === true;
  }

  async settle(id: string, attempt: number, settlement: Settlement): Promise<OutboxRecord | undefined> {
    const sent = settlement.status === 'sent' ? settlement : undefined;
    const rows = await this.rows(
      `select * from ${this.schema}.settle($1, $2, $3, $4, $5::text[], $6::text[], $7, $8::jsonb, $9::bigint)`,
      [
        id,
        attempt,
        settlement.status,
        nullable(settlement.server),
        sent ? sent.accepted : null,
        sent ? sent.rejected : null,
        sent ? nullable(sent.response) : null,
        settlement.status === 'sent' ? null : json(settlement.error),
        settlement.status === 'retry' ? wholeMs(settlement.delayMs) : null,
      ],
    );
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async reclaim(ownerId: string, id: string, lease: Lease): Promise<OutboxRecord | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.reclaim($1, $2, $3, $4)`, [ownerId, id, lease.workerId, wholeMs(lease.leaseMs)]);
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async cancel(ownerId: string, id: string): Promise<{ cancelled: boolean; record: OutboxRecord } | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.cancel($1, $2)`, [ownerId, id]);
    const row = rows[0];
    return row ? { cancelled: row.cancelled === true, record: toOutboxRecord(row) } : undefined;
  }

  async get(ownerId: string, id: string): Promise<OutboxRecord | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.outbox_get($1, $2)`, [ownerId, id]);
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async findByIdempotencyKey(ownerId: string, key: string): Promise<OutboxRecord | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.outbox_find_by_idempotency_key($1, $2)`, [ownerId, key]);
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async findByMessageId(ownerId: string, messageIdHeader: string, options: { limit?: number } = {}): Promise<OutboxRecord[]> {
    const rows = await this.rows(`select * from ${this.schema}.outbox_find_by_message_id($1, $2, $3)`, [ownerId, messageIdHeader, Math.floor(options.limit ?? 100)]);
    return rows.map(toOutboxRecord);
  }

  async decide(ownerId: string, id: string, decision: { approve: boolean; by: string; now?: Date | undefined }): Promise<ApprovalDecision | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.outbox_decide($1, $2, $3, $4, $5::timestamptz)`, [
      ownerId,
      id,
      decision.approve,
      decision.by,
      iso(decision.now),
    ]);
    const row = rows[0];
    return row ? { outcome: row.outcome as ApprovalDecision['outcome'], record: toOutboxRecord(row) } : undefined;
  }

  async listPending(
    ownerId: string,
    options: { agentId?: string | undefined; after?: string | undefined; limit?: number | undefined; now?: Date | undefined } = {},
  ): Promise<OutboxRecord[]> {
    const rows = await this.rows(`select * from ${this.schema}.outbox_list_pending($1, $2, $3, $4, $5::timestamptz)`, [
      ownerId,
      nullable(options.agentId),
      nullable(options.after),
      Math.floor(options.limit ?? 100),
      iso(options.now),
    ]);
    return rows.map(toOutboxRecord);
  }

  private async rows(text: string, params: unknown[]): Promise<Row[]> {
    return (await this.client.query(text, params)).rows as Row[];
  }
}
