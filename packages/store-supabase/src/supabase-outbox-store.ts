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
import { checkApproval, iso, nullable, toBatchRecord, toOutboxRecord, wholeMs } from '@agent-smtp/store-postgres';
import type { SchemaRpc } from './supabase-rpc.js';


/** The outbox over the Postgres store's SQL functions, each transition one `rpc()` call (one transaction). */
export class SupabaseOutboxStore implements OutboxStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async enqueue(input: NewOutboxRecord, options: { claim?: Lease } = {}): Promise<EnqueueResult> {
    checkApproval(input, options.claim);
    const rows = await this.rpc.rows('enqueue', {
      p_id: input.id,
      p_owner_id: input.ownerId,
      p_agent_id: nullable(input.agentId),
      p_idempotency_key: nullable(input.idempotencyKey),
      p_fingerprint: nullable(input.fingerprint),
      p_message_id: input.messageId,
      p_email: input.email,
      p_send_at: iso(input.sendAt),
      p_max_attempts: input.maxAttempts,
      p_tags: input.tags,
      p_metadata: input.metadata ?? {},
      p_lease_owner: options.claim ? options.claim.workerId : null,
      p_lease_ms: options.claim ? wholeMs(options.claim.leaseMs) : null,
      p_delay_ms: input.delayMs ? wholeMs(input.delayMs) : null,
      p_approval_reason: input.approval ? input.approval.reason : null,
      p_approval_ttl_ms: input.approval ? wholeMs(input.approval.ttlMs) : null,
    });
    const row = rows[0]!;
    return { created: row.created === true, record: toOutboxRecord(row) };
  }

  async enqueueMany(records: readonly NewOutboxRecord[]): Promise<EnqueueResult[]> {
    if (records.length === 0) return [];
    for (const r of records) checkApproval(r, undefined);
    const batch = records.map(toBatchRecord);
    const rows = await this.rpc.rows('enqueue_many', { p_records: batch });
    const results = rows.map((row) => ({ created: row.created === true, record: toOutboxRecord(row) }));
    // PostgREST cuts every answer at the API's "Max rows" (db-max-rows, 1,000 by default on Supabase), functions'
    // included: the batch was stored whole (one transaction), but the results past the cut did not come back. They
    // are read back one by one: the record under its own id was created by this call, one under its key was there before.
    try {
      for (const record of records.slice(results.length)) {
        const created = await this.get(record.ownerId, record.id);
        const existing = created ?? (record.idempotencyKey === undefined ? undefined : await this.findByIdempotencyKey(record.ownerId, record.idempotencyKey));
        if (!existing) throw new Error(`record ${record.id} cannot be read back`);
        results.push({ created: created !== undefined, record: existing });
      }
    } catch (err) {
      // The batch is stored (committed) whatever this read-back says: `stored: true` tells the caller so.
      throw Object.assign(
        new Error(`enqueueMany stored all ${records.length} records, but reading back the results the API's "Max rows" cut failed: ${(err as Error).message}. Keep batches within Max rows.`, { cause: err }),
        { stored: true },
      );
    }
    return results;
  }

  async claim(options: ClaimOptions): Promise<OutboxRecord[]> {
    if (options.limit <= 0 || options.ids?.length === 0) return [];
    const rows = await this.rpc.rows('claim', {
      p_worker: options.workerId,
      p_limit: Math.floor(options.limit),
      p_lease_ms: wholeMs(options.leaseMs),
      p_now: iso(options.now),
      p_owner_id: options.ownerId ?? null,
      p_ids: options.ids ? [...options.ids] : null,
    });
    return rows.map(toOutboxRecord);
  }

  async extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    return (await this.rpc.call('extend_lease', { p_id: id, p_attempt: attempt, p_lease_ms: wholeMs(leaseMs) })) === true;
  }

  async settle(id: string, attempt: number, settlement: Settlement): Promise<OutboxRecord | undefined> {
    const sent = settlement.status === 'sent' ? settlement : undefined;
    const rows = await this.rpc.rows('settle', {
      p_id: id,
      p_attempt: attempt,
      p_status: settlement.status,
      p_server: nullable(settlement.server),
      p_accepted: sent ? sent.accepted : null,
      p_rejected: sent ? sent.rejected : null,
      p_response: sent ? nullable(sent.response) : null,
      p_error: settlement.status === 'sent' ? null : settlement.error,
      p_retry_delay_ms: settlement.status === 'retry' ? wholeMs(settlement.delayMs) : null,
    });
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async reclaim(ownerId: string, id: string, lease: Lease): Promise<OutboxRecord | undefined> {
    const rows = await this.rpc.rows('reclaim', { p_owner_id: ownerId, p_id: id, p_worker: lease.workerId, p_lease_ms: wholeMs(lease.leaseMs) });
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async cancel(ownerId: string, id: string): Promise<{ cancelled: boolean; record: OutboxRecord } | undefined> {
    const row = (await this.rpc.rows('cancel', { p_owner_id: ownerId, p_id: id }))[0];
    return row ? { cancelled: row.cancelled === true, record: toOutboxRecord(row) } : undefined;
  }

  async get(ownerId: string, id: string): Promise<OutboxRecord | undefined> {
    const row = (await this.rpc.rows('outbox_get', { p_owner_id: ownerId, p_id: id }))[0];
    return row ? toOutboxRecord(row) : undefined;
  }

  async findByIdempotencyKey(ownerId: string, key: string): Promise<OutboxRecord | undefined> {
    const row = (await this.rpc.rows('outbox_find_by_idempotency_key', { p_owner_id: ownerId, p_idempotency_key: key }))[0];
    return row ? toOutboxRecord(row) : undefined;
  }

  async findByMessageId(ownerId: string, messageIdHeader: string, options: { limit?: number } = {}): Promise<OutboxRecord[]> {
    const rows = await this.rpc.rows('outbox_find_by_message_id', {
      p_owner_id: ownerId,
      p_message_id: messageIdHeader,
      p_limit: Math.floor(options.limit ?? 100),
    });
    return rows.map(toOutboxRecord);
  }

  async decide(ownerId: string, id: string, decision: { approve: boolean; by: string; now?: Date | undefined }): Promise<ApprovalDecision | undefined> {
    const row = (
      await this.rpc.rows('outbox_decide', { p_owner_id: ownerId, p_id: id, p_approve: decision.approve, p_by: decision.by, p_now: iso(decision.now) })
    )[0];
    return row ? { outcome: row.outcome as ApprovalDecision['outcome'], record: toOutboxRecord(row) } : undefined;
  }

  async listPending(
    ownerId: string,
    options: { agentId?: string | undefined; after?: string | undefined; limit?: number | undefined; now?: Date | undefined } = {},
  ): Promise<OutboxRecord[]> {
    const rows = await this.rpc.rows('outbox_list_pending', {
      p_owner_id: ownerId,
      p_agent_id: nullable(options.agentId),
      p_after: nullable(options.after),
      p_limit: Math.floor(options.limit ?? 100),
      p_now: iso(options.now),
    });
    return rows.map(toOutboxRecord);
  }
}
