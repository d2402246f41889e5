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
  StatsStore,
  StoredPolicy,
  StoredSmtpConfig,
  Suppression,
  SuppressionStore,
} from '@agent-smtp/core';
import { ValidationError } from '@agent-smtp/core';
import { iso, nullable, toAuditEntry, toMailEvent, toMailStats, toNumber, toStoredPolicy, toStoredSmtpConfig, toSuppression } from '@agent-smtp/store-postgres';
import type { SchemaRpc } from './supabase-rpc.js';

// The parts that are plain rows, each method one rpc() of the function the Postgres store calls with SQL.

export class SupabaseEventStore implements EventStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async append(event: Omit<MailEvent, 'id' | 'at'> & { at?: Date }): Promise<MailEvent> {
    const rows = await this.rpc.rows('events_append', {
      p_owner_id: event.ownerId,
      p_message_id: event.messageId,
      p_type: event.type,
      p_attempt: event.attempt,
      p_detail: event.detail ?? {},
      p_at: iso(event.at),
    });
    return toMailEvent(rows[0]!);
  }

  /** The Postgres store's gap-free cursor (`events_list`, migration 003). */
  async list(ownerId: string, options: EventListOptions = {}): Promise<MailEvent[]> {
    const rows = await this.rpc.rows('events_list', {
      p_owner_id: ownerId,
      p_after: nullable(options.after),
      p_limit: Math.floor(options.limit ?? 1_000),
      p_message_id: nullable(options.messageId),
      p_type: nullable(options.type),
    });
    return rows.map(toMailEvent);
  }
}

export class SupabaseStatsStore implements StatsStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async summary(ownerId: string, query: MailStatsQuery = {}): Promise<MailStats> {
    const stats = await this.rpc.call('mail_stats', {
      p_owner_id: ownerId,
      p_message_id: nullable(query.messageId),
      p_tag: nullable(query.tag),
      p_from: iso(query.from),
      p_to: iso(query.to),
    });
    return toMailStats(stats);
  }
}

export class SupabaseSuppressionStore implements SuppressionStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async add(input: Omit<Suppression, 'createdAt' | 'detail'> & { detail?: Record<string, unknown> }): Promise<Suppression> {
    const rows = await this.rpc.rows('suppressions_add', {
      p_owner_id: input.ownerId,
      p_address: input.address.toLowerCase(),
      p_reason: input.reason,
      p_detail: input.detail ?? {},
    });
    return toSuppression(rows[0]!);
  }

  async find(ownerId: string, addresses: readonly string[]): Promise<Suppression[]> {
    // Lower-cased here rather than with SQL lower(), whose result depends on the database's collation.
    const wanted = [...new Set(addresses.map((a) => a.toLowerCase()))];
    if (wanted.length === 0) return [];
    return (await this.rpc.rows('suppressions_find', { p_owner_id: ownerId, p_addresses: wanted })).map(toSuppression);
  }

  async remove(ownerId: string, address: string): Promise<boolean> {
    return (await this.rpc.call('suppressions_remove', { p_owner_id: ownerId, p_address: address.toLowerCase() })) === true;
  }

  async list(ownerId: string, options: { limit?: number } = {}): Promise<Suppression[]> {
    return (await this.rpc.rows('suppressions_list', { p_owner_id: ownerId, p_limit: Math.floor(options.limit ?? 1_000) })).map(toSuppression);
  }
}

export class SupabaseAuditStore implements AuditStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const rows = await this.rpc.rows('audit_append', {
      p_owner_id: entry.ownerId,
      p_agent_id: nullable(entry.agentId),
      p_action: entry.action,
      p_outcome: entry.outcome,
      p_message_id: nullable(entry.messageId),
      p_detail: entry.detail ?? {},
      p_tool: nullable(entry.tool),
      p_actor: nullable(entry.actor),
      p_recipient_count: nullable(entry.recipientCount),
      p_duration_ms: nullable(entry.durationMs),
      p_error_code: nullable(entry.errorCode),
    });
    return toAuditEntry(rows[0]!);
  }

  async list(ownerId: string, options: AuditListOptions = {}): Promise<AuditEntry[]> {
    // An empty action or agent id means "any", as in MemoryStore.
    const rows = await this.rpc.rows('audit_list', {
      p_owner_id: ownerId,
      p_agent_id: options.agentId || null,
      p_action: options.action || null,
      p_from: iso(options.from),
      p_to: iso(options.to),
      p_before: nullable(options.before),
      p_limit: Math.floor(options.limit ?? 100),
    });
    return rows.map(toAuditEntry);
  }
}

export class SupabaseCounterStore implements CounterStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async increment(ownerId: string, key: string, window: string, by: number, limit: number): Promise<{ allowed: boolean; value: number }> {
    const row = (await this.rpc.rows('counter_increment', { p_owner_id: ownerId, p_key: key, p_window: window, p_by: by, p_limit: limit }))[0]!;
    return { allowed: row.allowed === true, value: toNumber(row.value) };
  }

  async get(ownerId: string, key: string, window: string): Promise<number> {
    return toNumber((await this.rpc.call('counter_get', { p_owner_id: ownerId, p_key: key, p_window: window })) ?? 0);
  }
}

export class SupabaseCredentialStore implements CredentialStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async save(config: SmtpConfigWrite): Promise<StoredSmtpConfig> {
    try {
      const rows = await this.rpc.rows('smtp_config_save', {
        p_owner_id: config.ownerId,
        p_id: config.id,
        p_name: config.name,
        p_host: config.host,
        p_port: config.port,
        p_security: config.security,
        p_username: nullable(config.username),
        p_password_ciphertext: nullable(config.passwordCiphertext),
        p_key_id: nullable(config.keyId),
        p_keep_password: config.keepPassword === true,
        p_from_address: nullable(config.fromAddress),
        p_from_name: nullable(config.fromName),
        p_is_default: config.isDefault,
        p_active: config.active,
        p_dkim_domain: nullable(config.dkimDomain),
        p_dkim_selector: nullable(config.dkimSelector),
        p_dkim_key_ciphertext: nullable(config.dkimKeyCiphertext),
        p_dkim_key_id: nullable(config.dkimKeyId),
        p_keep_dkim_key: config.keepDkimKey === true,
      });
      return toStoredSmtpConfig(rows[0]!);
    } catch (error) {
      const e = error as { code?: string; message?: string; details?: string };
      // PostgREST names the constraint in the message ("... violates unique constraint \"smtp_configs_owner_name\"").
      if (e.code === '23505' && `${e.message} ${e.details}`.includes('smtp_configs_owner_name')) {
        throw ValidationError.of('name', `"${config.name}" is already the name of another SMTP config of this owner; choose another name`);
      }
      throw error;
    }
  }

  async get(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined> {
    const row = (await this.rpc.rows('smtp_config_get', { p_owner_id: ownerId, p_id: id }))[0];
    return row ? toStoredSmtpConfig(row) : undefined;
  }

  async list(ownerId: string): Promise<StoredSmtpConfig[]> {
    return (await this.rpc.rows('smtp_config_list', { p_owner_id: ownerId })).map(toStoredSmtpConfig);
  }

  async delete(ownerId: string, id: string): Promise<boolean> {
    return (await this.rpc.call('smtp_config_delete', { p_owner_id: ownerId, p_id: id })) === true;
  }

  async setDefault(ownerId: string, id: string): Promise<StoredSmtpConfig | undefined> {
    const row = (await this.rpc.rows('smtp_config_set_default', { p_owner_id: ownerId, p_id: id }))[0];
    return row ? toStoredSmtpConfig(row) : undefined;
  }

  async listForRotation(options: { keyId: string; ownerId?: string | undefined; after?: SmtpConfigCursor | undefined; limit: number }): Promise<StoredSmtpConfig[]> {
    const rows = await this.rpc.rows('smtp_config_list_for_rotation', {
      p_key_id: options.keyId,
      p_owner_id: nullable(options.ownerId),
      p_after_owner_id: nullable(options.after?.ownerId),
      p_after_id: nullable(options.after?.id),
      p_limit: options.limit,
    });
    return rows.map(toStoredSmtpConfig);
  }

  async replacePassword(ownerId: string, id: string, expected: string, next: { keyId: string; passwordCiphertext: string }): Promise<boolean> {
    const replaced = await this.rpc.call('smtp_config_replace_password', {
      p_owner_id: ownerId,
      p_id: id,
      p_expected: expected,
      p_key_id: next.keyId,
      p_password_ciphertext: next.passwordCiphertext,
    });
    return replaced === true;
  }

  async replaceDkimKey(ownerId: string, id: string, expected: string, next: { dkimKeyId: string; dkimKeyCiphertext: string }): Promise<boolean> {
    const replaced = await this.rpc.call('smtp_config_replace_dkim_key', {
      p_owner_id: ownerId,
      p_id: id,
      p_expected: expected,
      p_dkim_key_id: next.dkimKeyId,
      p_dkim_key_ciphertext: next.dkimKeyCiphertext,
    });
    return replaced === true;
  }
}

/** Agent `''` stands for the owner's default policy, as in the Postgres store. */
const scope = (agentId: string | undefined): string => agentId ?? '';

export class SupabasePolicyStore implements PolicyStore {
  constructor(private readonly rpc: SchemaRpc) {}

  async save(entry: { ownerId: string; agentId: string | undefined; policy: Record<string, unknown> }): Promise<StoredPolicy> {
    if (entry.agentId === '') throw ValidationError.of('agentId', "is empty; pass undefined for the owner's default policy, or an agent id");
    const rows = await this.rpc.rows('policy_save', { p_owner_id: entry.ownerId, p_agent_id: scope(entry.agentId), p_policy: entry.policy });
    return toStoredPolicy(rows[0]!);
  }

  async get(ownerId: string, agentId: string | undefined): Promise<StoredPolicy | undefined> {
    if (agentId === '') return undefined;
    const row = (await this.rpc.rows('policy_get', { p_owner_id: ownerId, p_agent_id: scope(agentId) }))[0];
    return row ? toStoredPolicy(row) : undefined;
  }

  async delete(ownerId: string, agentId: string | undefined): Promise<boolean> {
    if (agentId === '') return false;
    return (await this.rpc.call('policy_delete', { p_owner_id: ownerId, p_agent_id: scope(agentId) })) === true;
  }

  async list(ownerId: string): Promise<StoredPolicy[]> {
    return (await this.rpc.rows('policy_list', { p_owner_id: ownerId })).map(toStoredPolicy);
  }
}
