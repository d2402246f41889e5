import type {
  AuditEntry,
  AuditListOptions,
  AuditStore,
  CounterStore,
  CredentialStore,
  EventListOptions,
  EventStore,
  MailEvent,
  MailStats,
  MailStatsQuery,
  PolicyStore,
  SmtpConfigCursor,
  SmtpConfigWrite,
  StoredPolicy,
  StatsStore,
  StoredSmtpConfig,
  Suppression,
  SuppressionStore,
} from '@agent-smtp/core';
import { ValidationError } from '@agent-smtp/core';
import type { PostgresClient } from './postgres-client.js';
import { iso, json, nullable, toAuditEntry, toMailEvent, toMailStats, toNumber, toStoredPolicy, toStoredSmtpConfig, toSuppression, type Row } from './row-mappers.js';

// The parts that are plain rows. `schema` is the already-quoted schema name; every value is a parameter.

abstract class Table {
  constructor(
    protected readonly client: PostgresClient,
    protected readonly schema: string,
  ) {}

  protected async rows(text: string, params: unknown[]): Promise<Row[]> {
    return (await this.client.query(text, params)).rows as Row[];
  }
}

export class PostgresEventStore extends Table implements EventStore {
  async append(event: Omit<MailEvent, 'id' | 'at'> & { at?: Date }): Promise<MailEvent> {
    const rows = await this.rows(`select * from ${this.schema}.events_append($1, $2, $3, $4, $5::jsonb, $6::timestamptz)`, [
      event.ownerId,
      event.messageId,
      event.type,
      event.attempt,
      json(event.detail ?? {}),
      iso(event.at),
    ]);
    return toMailEvent(rows[0]!);
  }

  /** See `events_list` in migration 003 for how an owner-wide page stays gap-free while other transactions commit. */
  async list(ownerId: string, options: EventListOptions = {}): Promise<MailEvent[]> {
    const rows = await this.rows(`select * from ${this.schema}.events_list($1, $2, $3, $4, $5)`, [
      ownerId,
      nullable(options.after),
      Math.floor(options.limit ?? 1_000),
      nullable(options.messageId),
      nullable(options.type),
    ]);
    return rows.map(toMailEvent);
  }
}

/** One call of `mail_stats` (migration 006): the counting happens in SQL, the answer is one jsonb object. */
export class PostgresStatsStore extends Table implements StatsStore {
  async summary(ownerId: string, query: MailStatsQuery = {}): Promise<MailStats> {
    const rows = await this.rows(`select ${this.schema}.mail_stats($1, $2, $3, $4::timestamptz, $5::timestamptz) as stats`, [
      ownerId,
      nullable(query.messageId),
      nullable(query.tag),
      iso(query.from),
      iso(query.to),
    ]);
    return toMailStats(rows[0]!.stats);
  }
}

export class PostgresSuppressionStore extends Table implements SuppressionStore {
  async add(input: Omit<Suppression, 'createdAt' | 'detail'> & { detail?: Record<string, unknown> }): Promise<Suppression> {
    const rows = await this.rows(`select * from ${this.schema}.suppressions_add($1, $2, $3, $4::jsonb)`, [
      input.ownerId,
      input.address.toLowerCase(),
      input.reason,
      json(input.detail ?? {}),
    ]);
    return toSuppression(rows[0]!);
  }

  async find(ownerId: string, addresses: readonly string[]): Promise<Suppression[]> {
    // Lower-cased here rather than with SQL lower(), whose result depends on the database's collation.
    const wanted = [...new Set(addresses.map((a) => a.toLowerCase()))];
    if (wanted.length === 0) return [];
    const rows = await this.rows(`select * from ${this.schema}.suppressions_find($1, $2::text[])`, [ownerId, wanted]);
    return rows.map(toSuppression);
  }

  async remove(ownerId: string, address: string): Promise<boolean> {
    const rows = await this.rows(`select ${this.schema}.suppressions_remove($1, $2) as removed`, [ownerId, address.toLowerCase()]);
    return rows[0]?.removed === true;
  }

  async list(ownerId: string, options: { limit?: number } = {}): Promise<Suppression[]> {
    const rows = await this.rows(`select * from ${this.schema}.suppressions_list($1, $2)`, [ownerId, Math.floor(options.limit ?? 1_000)]);
    return rows.map(toSuppression);
  }
}

export class PostgresAuditStore extends Table implements AuditStore {
  async append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const rows = await this.rows(`select * from ${this.schema}.audit_append($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::integer, $10::double precision, $11)`, [
      entry.ownerId,
      nullable(entry.agentId),
      entry.action,
      entry.outcome,
      nullable(entry.messageId),
      json(entry.detail ?? {}),
      nullable(entry.tool),
      nullable(entry.actor),
      nullable(entry.recipientCount),
      nullable(entry.durationMs),
      nullable(entry.errorCode),
    ]);
    return toAuditEntry(rows[0]!);
  }

  async list(ownerId: string, options: AuditListOptions = {}): Promise<AuditEntry[]> {
    // An empty action or agent id means "any", as in MemoryStore.
    const rows = await this.rows(`select * from ${this.schema}.audit_list($1, $2, $3, $4::timestamptz, $5::timestamptz, $6, $7)`, [
      ownerId,
      options.agentId || null,
      options.action || null,
      iso(options.from),
      iso(options.to),
      nullable(options.before),
      Math.floor(options.limit ?? 100),
    ]);
    return rows.map(toAuditEntry);
  }
}

export class PostgresCounterStore extends Table implements CounterStore {
  async increment(ownerId: string, key: string, window: string, by: number, limit: number): Promise<{ allowed: boolean; value: number }> {
    const rows = await this.rows(`select * from ${this.schema}.counter_increment($1, $2, $3, $4, $5)`, [ownerId, key, window, by, limit]);
    const row = rows[0]!;
    return { allowed: row.allowed === true, value: toNumber(row.value) };
  }

  async get(ownerId: string, key: string, window: string): Promise<number> {
    const rows = await this.rows(`select ${this.schema}.counter_get($1, $2, $3) as value`, [ownerId, key, window]);
    return toNumber(rows[0]?.value ?? 0);
  }
}

export class PostgresCredentialStore extends Table implements CredentialStore {
  async save(config: SmtpConfigWrite): Promise<StoredSmtpConfig> {
    let rows: Row[];
    try {
      rows = await this.rows(`select * from ${this.schema}.smtp_config_save($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`, [
        config.ownerId,
        config.id,
        config.name,
        config.host,
        config.port,
        config.security,
        nullable(config.username),
        nullable(config.passwordCiphertext),
        nullable(config.keyId),
        config.keepPassword === true,
        nullable(config.fromAddress),
        nullable(config.fromName),
        config.isDefault,
        config.active,
        nullable(config.dkimDomain),
        nullable(config.dkimSelector),
        nullable(config.dkimKeyCiphertext),
        nullable(config.dkimKeyId),
        config.keepDkimKey === true,
      ]);
    } catch (error) {
      const e = error as { code?: string; constraint?: string; message?: string };
      // pg names the constraint; PGlite puts it in the message only.
      if (e.code === '23505' && (e.constraint === 'smtp_configs_owner_name' || e.message?.includes('smtp_configs_owner_name'))) {
        throw ValidationError.of('name', `"${config.name}" is already the name of another SMTP config of this owner; choose another name`);
      }
      throw error;
    }
    return toStoredSmtpConfig(rows[0]!);
  }

  async get(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.smtp_config_get($1, $2)`, [ownerId, id]);
    return rows[0] ? toStoredSmtpConfig(rows[0]) : undefined;
  }

  async list(ownerId: string): Promise<StoredSmtpConfig[]> {
    return (await this.rows(`select * from ${this.schema}.smtp_config_list($1)`, [ownerId])).map(toStoredSmtpConfig);
  }

  async delete(ownerId: string, id: string): Promise<boolean> {
    const rows = await this.rows(`select ${this.schema}.smtp_config_delete($1, $2) as deleted`, [ownerId, id]);
    return rows[0]?.deleted === true;
  }

  async setDefault(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.smtp_config_set_default($1, $2)`, [ownerId, id]);
    return rows[0] ? toStoredSmtpConfig(rows[0]) : undefined;
  }

  async listForRotation(options: { keyId: string; ownerId?: string | undefined; after?: SmtpConfigCursor | undefined; limit: number }): Promise<StoredSmtpConfig[]> {
    const rows = await this.rows(`select * from ${this.schema}.smtp_config_list_for_rotation($1, $2, $3, $4, $5)`, [
      options.keyId,
      nullable(options.ownerId),
      nullable(options.after?.ownerId),
      nullable(options.after?.id),
      options.limit,
    ]);
    return rows.map(toStoredSmtpConfig);
  }

  async replacePassword(ownerId: string, id: string, expected: string, next: { keyId: string; passwordCiphertext: string }): Promise<boolean> {
    const rows = await this.rows(`select ${this.schema}.smtp_config_replace_password($1, $2, $3, $4, $5) as replaced`, [
      ownerId,
      id,
      expected,
      next.keyId,
      next.passwordCiphertext,
    ]);
    return rows[0]?.replaced === true;
  }

  async replaceDkimKey(ownerId: string, id: string, expected: string, next: { dkimKeyId: string; dkimKeyCiphertext: string }): Promise<boolean> {
    const rows = await this.rows(`select ${this.schema}.smtp_config_replace_dkim_key($1, $2, $3, $4, $5) as replaced`, [
      ownerId,
      id,
      expected,
      next.dkimKeyId,
      next.dkimKeyCiphertext,
    ]);
    return rows[0]?.replaced === true;
  }
}

/** Agent `''` stands for the owner's default policy (a key column cannot be null; an agent id is never empty). */
const scope = (agentId: string | undefined): string => agentId ?? '';

export class PostgresPolicyStore extends Table implements PolicyStore {
  async save(entry: { ownerId: string; agentId: string | undefined; policy: Record<string, unknown> }): Promise<StoredPolicy> {
    if (entry.agentId === '') throw ValidationError.of('agentId', "is empty; pass undefined for the owner's default policy, or an agent id");
    const rows = await this.rows(`select * from ${this.schema}.policy_save($1, $2, $3::jsonb)`, [entry.ownerId, scope(entry.agentId), json(entry.policy)]);
    return toStoredPolicy(rows[0]!);
  }

  async get(ownerId: string, agentId: string | undefined): Promise<StoredPolicy | undefined> {
    if (agentId === '') return undefined;
    const rows = await this.rows(`select * from ${this.schema}.policy_get($1, $2)`, [ownerId, scope(agentId)]);
    return rows[0] ? toStoredPolicy(rows[0]) : undefined;
  }

  async delete(ownerId: string, agentId: string | undefined): Promise<boolean> {
    if (agentId === '') return false;
    const rows = await this.rows(`select ${this.schema}.policy_delete($1, $2) as deleted`, [ownerId, scope(agentId)]);
    return rows[0]?.deleted === true;
  }

  async list(ownerId: string): Promise<StoredPolicy[]> {
    return (await this.rows(`select * from ${this.schema}.policy_list($1)`, [ownerId])).map(toStoredPolicy);
  }
}
