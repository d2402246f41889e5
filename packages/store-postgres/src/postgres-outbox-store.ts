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
import { ValidationError } from '@agent-smtp/core';
import type { PostgresClient } from './postgres-client.js';
import { iso, json, nullable, toOutboxRecord, type Row } from './row-mappers.js';

/** Lease lengths go to SQL as whole milliseconds (an integer parameter). */
const ms = (leaseMs: number): number => Math.max(0, Math.ceil(leaseMs));

/**
 * A message waits for a human or is sent directly, never both. Checked here, before the call, so a batch with one
 * bad record stores none of it and the caller gets the field name (the SQL functions refuse the same, for `rpc()`).
 */
function checkApproval(input: NewOutboxRecord, claim: Lease | undefined): void {
  if (!input.approval) return;
  if (claim) throw ValidationError.of('approval', 'a message that waits for approval cannot be claimed for a direct send; enqueue it without claim');
  if (!(input.approval.ttlMs > 0) || !Number.isFinite(input.approval.ttlMs)) {
    throw ValidationError.of('approval.ttlMs', `is ${input.approval.ttlMs} but must be a positive number of milliseconds`);
  }
}

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
        options.claim ? ms(options.claim.leaseMs) : null,
        input.delayMs ? ms(input.delayMs) : null,
        input.approval ? input.approval.reason : null,
        input.approval ? ms(input.approval.ttlMs) : null,
      ],
    );
    const row = rows[0]!;
    return { created: row.created === true, record: toOutboxRecord(row) };
  }

  async enqueueMany(records: readonly NewOutboxRecord[]): Promise<EnqueueResult[]> {
    if (records.length === 0) return [];
    for (const r of records) checkApproval(r, undefined);
    // One jsonb parameter: one round trip and one transaction whatever the batch size (the caller chunks).
    const batch = records.map((r) => ({
      id: r.id,
      ownerId: r.ownerId,
      agentId: r.agentId,
      idempotencyKey: r.idempotencyKey,
      fingerprint: r.fingerprint,
      messageId: r.messageId,
      email: r.email,
      sendAt: iso(r.sendAt),
      delayMs: r.delayMs ? ms(r.delayMs) : undefined,
      maxAttempts: r.maxAttempts,
      tags: r.tags,
      metadata: r.metadata ?? {},
      approval: r.approval && { reason: r.approval.reason, ttlMs: ms(r.approval.ttlMs) },
    }));
    const rows = await this.rows(`select * from ${this.schema}.enqueue_many($1::jsonb)`, [json(batch)]);
    return rows.map((row) => ({ created: row.created === true, record: toOutboxRecord(row) }));
  }

  async claim(options: ClaimOptions): Promise<OutboxRecord[]> {
    if (options.limit <= 0 || options.ids?.length === 0) return [];
    const rows = await this.rows(`select * from ${this.schema}.claim($1, $2, $3, $4::timestamptz, $5, $6::text[])`, [
      options.workerId,
      Math.floor(options.limit),
      ms(options.leaseMs),
      iso(options.now),
      options.ownerId ?? null,
      options.ids ? [...options.ids] : null,
    ]);
    return rows.map(toOutboxRecord);
  }

  async extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    const rows = await this.rows(`select ${this.schema}.extend_lease($1, $2, $3) as extended`, [id, attempt, ms(leaseMs)]);
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
        settlement.status === 'retry' ? ms(settlement.delayMs) : null,
      ],
    );
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async reclaim(ownerId: string, id: string, lease: Lease): Promise<OutboxRecord | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.reclaim($1, $2, $3, $4)`, [ownerId, id, lease.workerId, ms(lease.leaseMs)]);
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
