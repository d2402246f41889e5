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
import { toOutboxRecord } from '@agent-smtp/store-postgres';
import type { SchemaRpc } from './supabase-rpc.js';

/** Lease lengths and delays go to SQL as whole milliseconds (integer parameters), as in the Postgres store. */
const ms = (value: number): number => Math.max(0, Math.ceil(value));
const iso = (date: Date | undefined): string | null => (date === undefined ? null : date.toISOString());
const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

/** As in the Postgres store: refused before the call, so the caller gets the field name (the SQL refuses it too). */
function checkApproval(input: NewOutboxRecord, claim: Lease | undefined): void {
  if (!input.approval) return;
  if (claim) throw ValidationError.of('approval', 'a message that waits for approval cannot be claimed for a direct send; enqueue it without claim');
  if (!(input.approval.ttlMs > 0) || !Number.isFinite(input.approval.ttlMs)) {
    throw ValidationError.of('approval.ttlMs', `is ${input.approval.ttlMs} but must be a positive number of milliseconds`);
  }
}

/** The outbox over the Postgres store's SQL functions, each transition one `rpc()` call (one transaction). */
export class SupabaseOutboxStore implements OutboxStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async enqueue(input: NewOutboxRecord, options: { claim?: Lease } = {}): Promise<EnqueueResult> {
    checkApproval(input, options.claim);
    const rows = await this.rpc.rows('enqueue', {
      p_id: input.id,
      p_owner_id: input.ownerId,
      p_agent_id: orNull(input.agentId),
      p_idempotency_key: orNull(input.idempotencyKey),
      p_fingerprint: orNull(input.fingerprint),
      p_message_id: input.messageId,
      p_email: input.email,
      p_send_at: iso(input.sendAt),
      p_max_attempts: input.maxAttempts,
      p_tags: input.tags,
      p_metadata: input.metadata ?? {},
      p_lease_owner: options.claim ? options.claim.workerId : null,
      p_lease_ms: options.claim ? ms(options.claim.leaseMs) : null,
      p_delay_ms: input.delayMs ? ms(input.delayMs) : null,
      p_approval_reason: input.approval ? input.approval.reason : null,
      p_approval_ttl_ms: input.approval ? ms(input.approval.ttlMs) : null,
    });
    const row = rows[0]!;
    return { created: row.created === true, record: toOutboxRecord(row) };
  }

  async enqueueMany(records: readonly NewOutboxRecord[]): Promise<EnqueueResult[]> {
    if (records.length === 0) return [];
    for (const r of records) checkApproval(r, undefined);
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
    const rows = await this.rpc.rows('enqueue_many', { p_records: batch });
    if (rows.length !== records.length) {
      // PostgREST cuts every answer at the API's "Max rows" (db-max-rows, 1,000 by default on Supabase), functions'
      // included: the batch was stored whole, but its results did not all come back.
      throw new Error(
        `enqueueMany stored ${records.length} records but the API returned ${rows.length} results: the project's API "Max rows" setting is below the batch size. Enqueue at most that many records per call.`,
      );
    }
    return rows.map((row) => ({ created: row.created === true, record: toOutboxRecord(row) }));
  }

  async claim(options: ClaimOptions): Promise<OutboxRecord[]> {
    if (options.limit <= 0 || options.ids?.length === 0) return [];
    const rows = await this.rpc.rows('claim', {
      p_worker: options.workerId,
      p_limit: Math.floor(options.limit),
      p_lease_ms: ms(options.leaseMs),
      p_now: iso(options.now),
      p_owner_id: options.ownerId ?? null,
      p_ids: options.ids ? [...options.ids] : null,
    });
    return rows.map(toOutboxRecord);
  }

  async extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    return (await this.rpc.call('extend_lease', { p_id: id, p_attempt: attempt, p_lease_ms: ms(leaseMs) })) === true;
  }

  async settle(id: string, attempt: number, settlement: Settlement): Promise<OutboxRecord | undefined> {
    const sent = settlement.status === 'sent' ? settlement : undefined;
    const rows = await this.rpc.rows('settle', {
      p_id: id,
      p_attempt: attempt,
      p_status: settlement.status,
      p_server: orNull(settlement.server),
      p_accepted: sent ? sent.accepted : null,
      p_rejected: sent ? sent.rejected : null,
      p_response: sent ? orNull(sent.response) : null,
      p_error: settlement.status === 'sent' ? null : settlement.error,
      p_retry_delay_ms: settlement.status === 'retry' ? ms(settlement.delayMs) : null,
    });
    return rows[0] ? toOutboxRecord(rows[0]) : undefined;
  }

  async reclaim(ownerId: string, id: string, lease: Lease): Promise<OutboxRecord | undefined> {
    const rows = await this.rpc.rows('reclaim', { p_owner_id: ownerId, p_id: id, p_worker: lease.workerId, p_lease_ms: ms(lease.leaseMs) });
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
      p_agent_id: orNull(options.agentId),
      p_after: orNull(options.after),
      p_limit: Math.floor(options.limit ?? 100),
      p_now: iso(options.now),
    });
    return rows.map(toOutboxRecord);
  }
}
