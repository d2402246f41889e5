import type {
  AuditEntry,
  AuditStore,
  CounterStore,
  CredentialStore,
  EventStore,
  MailEvent,
  MailEventType,
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
    const rows = await this.rows(
      `insert into ${this.schema}.events (owner_id, message_id, type, attempt, detail, at)
       values ($1, $2, $3, $4, $5::jsonb, coalesce($6::timestamptz, now()))
       returning *`,
      [event.ownerId, event.messageId, event.type, event.attempt, json(event.detail ?? {}), iso(event.at)],
    );
    return toMailEvent(rows[0]!);
  }

  async list(ownerId: string, options: { messageId?: string; type?: MailEventType; limit?: number } = {}): Promise<MailEvent[]> {
    const params: unknown[] = [ownerId];
    let where = 'owner_id = $1';
    if (options.messageId !== undefined) where += ` and message_id = $${params.push(options.messageId)}`;
    if (options.type !== undefined) where += ` and type = $${params.push(options.type)}`;
    const limit = `$${params.push(options.limit ?? 1_000)}`;
    const rows = await this.rows(`select * from ${this.schema}.events where ${where} order by seq limit ${limit}`, params);
    return rows.map(toMailEvent);
  }
}

export class PostgresSuppressionStore extends Table implements SuppressionStore {
  async add(input: Omit<Suppression, 'createdAt' | 'detail'> & { detail?: Record<string, unknown> }): Promise<Suppression> {
    const rows = await this.rows(
      `insert into ${this.schema}.suppressions (owner_id, address, reason, detail)
       values ($1, $2, $3, $4::jsonb)
       on conflict (owner_id, address) do update
         set reason = excluded.reason, detail = excluded.detail, created_at = now()
       returning *`,
      [input.ownerId, input.address.toLowerCase(), input.reason, json(input.detail ?? {})],
    );
    return toSuppression(rows[0]!);
  }

  async find(ownerId: string, addresses: readonly string[]): Promise<Suppression[]> {
    // Lower-cased here rather than with SQL lower(), whose result depends on the database's collation.
    const wanted = [...new Set(addresses.map((a) => a.toLowerCase()))];
    if (wanted.length === 0) return [];
    const rows = await this.rows(
      `select s.* from unnest($2::text[]) with ordinality as a(address, n)
       join ${this.schema}.suppressions s on s.owner_id = $1 and s.address = a.address
       order by a.n`,
      [ownerId, wanted],
    );
    return rows.map(toSuppression);
  }

  async remove(ownerId: string, address: string): Promise<boolean> {
    const rows = await this.rows(`delete from ${this.schema}.suppressions where owner_id = $1 and address = $2 returning 1`, [
      ownerId,
      address.toLowerCase(),
    ]);
    return rows.length > 0;
  }

  async list(ownerId: string, options: { limit?: number } = {}): Promise<Suppression[]> {
    const rows = await this.rows(`select * from ${this.schema}.suppressions where owner_id = $1 order by seq limit $2`, [ownerId, options.limit ?? 1_000]);
    return rows.map(toSuppression);
  }
}

export class PostgresAuditStore extends Table implements AuditStore {
  async append(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const rows = await this.rows(
      `insert into ${this.schema}.audit (owner_id, agent_id, action, outcome, message_id, detail)
       values ($1, $2, $3, $4, $5, $6::jsonb)
       returning *`,
      [entry.ownerId, nullable(entry.agentId), entry.action, entry.outcome, nullable(entry.messageId), json(entry.detail ?? {})],
    );
    return toAuditEntry(rows[0]!);
  }

  async list(ownerId: string, options: { limit?: number; action?: string } = {}): Promise<AuditEntry[]> {
    const params: unknown[] = [ownerId];
    let where = 'owner_id = $1';
    // An empty action means "any", as in MemoryStore.
    if (options.action) where += ` and action = $${params.push(options.action)}`;
    const limit = `$${params.push(options.limit ?? 100)}`;
    const rows = await this.rows(`select * from ${this.schema}.audit where ${where} order by seq desc limit ${limit}`, params);
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
    const rows = await this.rows(`select value from ${this.schema}.counters where owner_id = $1 and key = $2 and time_window = $3`, [
      ownerId,
      key,
      window,
    ]);
    return rows[0] ? toNumber(rows[0].value) : 0;
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
