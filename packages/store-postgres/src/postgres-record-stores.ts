import type {
  AuditEntry,
  AuditStore,
  CounterStore,
  CredentialStore,
  EventListOptions,
  EventStore,
  MailEvent,
  StoredCredential,
  Suppression,
  SuppressionStore,
} from '@agent-smtp/core';
import type { PostgresClient } from './postgres-client.js';
import { iso, json, nullable, toAuditEntry, toDate, toMailEvent, toNumber, toSuppression, type Row } from './row-mappers.js';

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
    const rows = await this.rows(`select * from ${this.schema}.audit_append($1, $2, $3, $4, $5, $6::jsonb)`, [
      entry.ownerId,
      nullable(entry.agentId),
      entry.action,
      entry.outcome,
      nullable(entry.messageId),
      json(entry.detail ?? {}),
    ]);
    return toAuditEntry(rows[0]!);
  }

  async list(ownerId: string, options: { limit?: number; action?: string } = {}): Promise<AuditEntry[]> {
    // An empty action means "any", as in MemoryStore.
    const rows = await this.rows(`select * from ${this.schema}.audit_list($1, $2, $3)`, [ownerId, options.action || null, Math.floor(options.limit ?? 100)]);
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
  async put(credential: Omit<StoredCredential, 'updatedAt'>): Promise<StoredCredential> {
    const rows = await this.rows(
      `insert into ${this.schema}.credentials (owner_id, name, key_id, ciphertext)
       values ($1, $2, $3, $4)
       on conflict (owner_id, name) do update
         set key_id = excluded.key_id, ciphertext = excluded.ciphertext, updated_at = now()
       returning *`,
      [credential.ownerId, credential.name, credential.keyId, credential.ciphertext],
    );
    return toCredential(rows[0]!);
  }

  async get(ownerId: string, name: string): Promise<StoredCredential | undefined> {
    const rows = await this.rows(`select * from ${this.schema}.credentials where owner_id = $1 and name = $2`, [ownerId, name]);
    return rows[0] ? toCredential(rows[0]) : undefined;
  }

  async list(ownerId: string): Promise<{ name: string; keyId: string; updatedAt: Date }[]> {
    const rows = await this.rows(`select name, key_id, updated_at from ${this.schema}.credentials where owner_id = $1 order by seq`, [ownerId]);
    return rows.map((row) => ({ name: row.name as string, keyId: row.key_id as string, updatedAt: toDate(row.updated_at) }));
  }

  async delete(ownerId: string, name: string): Promise<boolean> {
    const rows = await this.rows(`delete from ${this.schema}.credentials where owner_id = $1 and name = $2 returning 1`, [ownerId, name]);
    return rows.length > 0;
  }
}

function toCredential(row: Row): StoredCredential {
  return {
    ownerId: row.owner_id as string,
    name: row.name as string,
    keyId: row.key_id as string,
    ciphertext: row.ciphertext as string,
    updatedAt: toDate(row.updated_at),
  };
}
