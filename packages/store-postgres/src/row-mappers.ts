import type { AuditEntry, EngagementCounts, MailEvent, MailStats, MessageError, Metadata, OutboxRecord, StoredEmail, StoredPolicy, StoredSmtpConfig, Suppression } from '@agent-smtp/core';

/** A row as a driver returns it: `pg` and PGlite both give Dates for timestamptz and objects for jsonb. */
export type Row = Record<string, unknown>;

const optional = <T>(value: unknown): T | undefined => (value === null || value === undefined ? undefined : (value as T));

/** `pg` returns int8 as a string and PGlite as a number; a counter fits a JS number either way. */
export const toNumber = (value: unknown): number => (typeof value === 'number' ? value : Number(value));

/** Some clients (or custom type parsers) return timestamps as strings. */
export const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(value as string));
const toOptionalDate = (value: unknown): Date | undefined => (value === null || value === undefined ? undefined : toDate(value));

/** Dates go in as ISO strings with an explicit cast, so no driver's Date conversion (or time zone) is involved. */
export const iso = (date: Date | undefined): string | null => (date === undefined ? null : date.toISOString());
export const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));
export const nullable = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

export function toOutboxRecord(row: Row): OutboxRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    agentId: optional<string>(row.agent_id),
    idempotencyKey: optional<string>(row.idempotency_key),
    fingerprint: optional<string>(row.fingerprint),
    status: row.status as OutboxRecord['status'],
    messageId: row.message_id as string,
    email: row.email as StoredEmail,
    sendAt: toDate(row.send_at),
    nextAttemptAt: toDate(row.next_attempt_at),
    attempt: toNumber(row.attempt),
    maxAttempts: toNumber(row.max_attempts),
    leaseOwner: optional<string>(row.lease_owner),
    leaseExpiresAt: toOptionalDate(row.lease_expires_at),
    possibleDuplicate: row.possible_duplicate === true,
    server: optional<string>(row.server),
    accepted: (row.accepted as string[] | null) ?? [],
    rejected: (row.rejected as string[] | null) ?? [],
    response: optional<string>(row.response),
    error: optional<MessageError>(row.error),
    tags: (row.tags as string[] | null) ?? [],
    metadata: (row.metadata as Metadata | null) ?? {},
    approval:
      row.approval_reason === null || row.approval_reason === undefined
        ? undefined
        : {
            reason: row.approval_reason as string,
            expiresAt: toDate(row.approval_expires_at),
            decidedBy: optional<string>(row.approval_decided_by),
            decidedAt: toOptionalDate(row.approval_decided_at),
          },
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export function toMailEvent(row: Row): MailEvent {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    messageId: row.message_id as string,
    type: row.type as MailEvent['type'],
    at: toDate(row.at),
    attempt: toNumber(row.attempt),
    detail: (row.detail as Record<string, unknown> | null) ?? {},
  };
}

const toEngagement = (value: Row): EngagementCounts => {
  const side = (counts: Row) => ({ unique: toNumber(counts.unique), total: toNumber(counts.total) });
  return { human: side(value.human as Row), machine: side(value.machine as Row) };
};

/** `mail_stats`'s jsonb (an object from `pg` and PGlite; text from a client without a jsonb parser). */
export function toMailStats(value: unknown): MailStats {
  const stats = (typeof value === 'string' ? JSON.parse(value) : value) as Row;
  const clicked = stats.clicked as Row;
  const rates = stats.rates as Row;
  return {
    sent: toNumber(stats.sent),
    delivered: toNumber(stats.delivered),
    opened: toEngagement(stats.opened as Row),
    clicked: {
      ...toEngagement(clicked),
      links: (clicked.links as Row[]).map((l) => ({ link: toNumber(l.link), url: l.url as string, human: toNumber(l.human), machine: toNumber(l.machine) })),
    },
    bounced: toNumber(stats.bounced),
    unsubscribed: toNumber(stats.unsubscribed),
    complained: toNumber(stats.complained),
    rates: { open: toNumber(rates.open), click: toNumber(rates.click), bounce: toNumber(rates.bounce), unsubscribe: toNumber(rates.unsubscribe) },
  };
}

export function toSuppression(row: Row): Suppression {
  return {
    ownerId: row.owner_id as string,
    address: row.address as string,
    reason: row.reason as Suppression['reason'],
    createdAt: toDate(row.created_at),
    detail: (row.detail as Record<string, unknown> | null) ?? {},
  };
}

export function toAuditEntry(row: Row): AuditEntry {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    agentId: optional<string>(row.agent_id),
    action: row.action as string,
    outcome: row.outcome as AuditEntry['outcome'],
    at: toDate(row.at),
    messageId: optional<string>(row.message_id),
    tool: optional<string>(row.tool),
    actor: optional<string>(row.actor),
    recipientCount: row.recipient_count === null || row.recipient_count === undefined ? undefined : toNumber(row.recipient_count),
    durationMs: row.duration_ms === null || row.duration_ms === undefined ? undefined : toNumber(row.duration_ms),
    errorCode: optional<string>(row.error_code),
    detail: (row.detail as Record<string, unknown> | null) ?? {},
  };
}

/** Agent `''` is the owner's default policy (see migration 005). */
export function toStoredPolicy(row: Row): StoredPolicy {
  return {
    ownerId: row.owner_id as string,
    agentId: row.agent_id === '' ? undefined : (row.agent_id as string),
    policy: row.policy as Record<string, unknown>,
    updatedAt: toDate(row.updated_at),
  };
}

export function toStoredSmtpConfig(row: Row): StoredSmtpConfig {
  return {
    ownerId: row.owner_id as string,
    id: row.id as string,
    name: row.name as string,
    host: row.host as string,
    port: toNumber(row.port),
    security: row.security as StoredSmtpConfig['security'],
    username: optional<string>(row.username),
    passwordCiphertext: optional<string>(row.password_ciphertext),
    keyId: optional<string>(row.key_id),
    dkimDomain: optional<string>(row.dkim_domain),
    dkimSelector: optional<string>(row.dkim_selector),
    dkimKeyCiphertext: optional<string>(row.dkim_key_ciphertext),
    dkimKeyId: optional<string>(row.dkim_key_id),
    fromAddress: optional<string>(row.from_address),
    fromName: optional<string>(row.from_name),
    isDefault: row.is_default === true,
    active: row.active === true,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}
