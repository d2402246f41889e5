import { outboxColumns } from './001-init.js';

/**
 * Every read the SDK makes becomes a SQL function, as every state change already is, so the Supabase store calls
 * the same functions over `rpc()` and no SQL text is built in TypeScript. Plus what a growing store needs:
 *
 * - An event cursor with no gaps. `seq` is taken when a row is inserted, but transactions commit in any order: a
 *   reader that has read up to seq 12 while seq 11's transaction was still open would never see 11. So each event
 *   records its transaction (`tx`, from `pg_current_xact_id()`), an owner's events are ordered by `(tx, seq)`, and
 *   an owner-wide page only returns events whose transaction is below the oldest transaction still running
 *   (`pg_snapshot_xmin`). Every transaction below that has ended, and anything that commits later has a higher
 *   `tx`, so it sorts after any cursor already handed out. The price: while a write transaction stays open
 *   anywhere in the cluster, the newer events wait behind it (tailing lags by the longest open write
 *   transaction). Lists of one message are not held back: its transitions happen one after another. Rows written
 *   before this migration get `tx` 0 and keep their `seq` order, ahead of everything newer.
 * - `outbox_find_by_message_id` (bounce matching) on a new index.
 * - `enqueue_many`: a batch in one call and one transaction, idempotent per record like `enqueue`.
 */
export const migration003 = String.raw`
-- A constant default first (no table rewrite, old rows get 0), then the real one for new rows.
alter table {{schema}}.events add column tx xid8 not null default '0';
alter table {{schema}}.events alter column tx set default pg_catalog.pg_current_xact_id();
create index events_owner_tx_seq_idx on {{schema}}.events (owner_id, tx, seq);
drop index {{schema}}.events_owner_seq_idx;

create index outbox_owner_message_id_idx on {{schema}}.outbox (owner_id, message_id, created_at);

-- ─── outbox ──────────────────────────────────────────────────────────────────────────────────────────────────

create function {{schema}}.outbox_get(p_owner_id text, p_id text)
returns setof {{schema}}.outbox
language sql stable security invoker set search_path = ''
as $$
  select o.* from {{schema}}.outbox o where o.owner_id = p_owner_id and o.id = p_id;
$$;

create function {{schema}}.outbox_find_by_idempotency_key(p_owner_id text, p_idempotency_key text)
returns setof {{schema}}.outbox
language sql stable security invoker set search_path = ''
as $$
  select o.* from {{schema}}.outbox o where o.owner_id = p_owner_id and o.idempotency_key = p_idempotency_key;
$$;

-- A message and its follow-ups for deferred recipients share one Message-ID: all of them, oldest first.
create function {{schema}}.outbox_find_by_message_id(p_owner_id text, p_message_id text, p_limit integer default 100)
returns setof {{schema}}.outbox
language sql stable security invoker set search_path = ''
as $$
  select o.* from {{schema}}.outbox o
  where o.owner_id = p_owner_id and o.message_id = p_message_id
  order by o.created_at, o.id
  limit greatest(coalesce(p_limit, 100), 0);
$$;

-- Enqueues a JSON array of records (the fields of NewOutboxRecord, camelCase) as 'queued', each like enqueue: a
-- key the owner used before (or an earlier record of this batch used) inserts nothing and returns the existing
-- row with created = false. Returns one row per record, in input order. One transaction: an error stores nothing.
create function {{schema}}.enqueue_many(p_records jsonb)
returns table (
  created boolean,
${outboxColumns}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz := now();
  v_created text[];
  v_count integer;
begin
  if p_records is null or pg_catalog.jsonb_typeof(p_records) <> 'array' then
    raise exception 'enqueue_many: p_records must be a JSON array' using errcode = '22023';
  end if;

  -- Rows go in ordered by (owner, key), whatever the input order: two batches sharing keys then wait on each other
  -- in the same order and cannot deadlock. ON CONFLICT waits for a concurrent insert of the same key to end.
  with input as (
    select x.n, x.r from pg_catalog.jsonb_array_elements(p_records) with ordinality as x(r, n)
  ), inserted as (
    insert into {{schema}}.outbox as o (
      id, owner_id, agent_id, idempotency_key, fingerprint, status, message_id, email, send_at, next_attempt_at,
      attempt, max_attempts, tags, metadata
    )
    select i.r->>'id', i.r->>'ownerId', i.r->>'agentId', i.r->>'idempotencyKey', i.r->>'fingerprint', 'queued',
           i.r->>'messageId', i.r->'email',
           coalesce((i.r->>'sendAt')::timestamptz, v_now),
           coalesce((i.r->>'sendAt')::timestamptz, v_now) + coalesce((i.r->>'delayMs')::bigint, 0) * interval '1 millisecond',
           0, (i.r->>'maxAttempts')::integer,
           coalesce(array(select pg_catalog.jsonb_array_elements_text(i.r->'tags')), '{}'),
           coalesce(nullif(i.r->'metadata', 'null'::jsonb), '{}')
    from input i
    order by i.r->>'ownerId', i.r->>'idempotencyKey', i.n
    on conflict (owner_id, idempotency_key) do nothing
    returning o.*
  ), logged as (
    -- The 'queued' events in input order, so a tailing reader sees the batch as the caller wrote it.
    insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
    select ins.owner_id, ins.id, 'queued', ins.attempt,
           pg_catalog.jsonb_build_object('sendAt', pg_catalog.to_char(ins.send_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    from inserted ins join input i on i.r->>'id' = ins.id
    order by i.n
  )
  select coalesce(pg_catalog.array_agg(ins.id), '{}') into v_created from inserted ins;

  -- A new statement, so a new snapshot: it sees the rows of concurrent batches this one waited for.
  return query
  select i.r->>'id' = any(v_created), o.*
  from pg_catalog.jsonb_array_elements(p_records) with ordinality as i(r, n)
  cross join lateral (
    select o.* from {{schema}}.outbox o where i.r->>'id' = any(v_created) and o.id = i.r->>'id'
    union all
    select o.* from {{schema}}.outbox o
    where not (i.r->>'id' = any(v_created)) and o.owner_id = i.r->>'ownerId' and o.idempotency_key = i.r->>'idempotencyKey'
  ) o
  order by i.n;
  get diagnostics v_count = row_count;
  if v_count <> pg_catalog.jsonb_array_length(p_records) then
    -- A conflicting row was deleted between the insert and the select: the caller may simply run the batch again.
    raise exception 'enqueue_many: % of % records could be neither inserted nor found', pg_catalog.jsonb_array_length(p_records) - v_count,
      pg_catalog.jsonb_array_length(p_records) using errcode = '40001';
  end if;
end;
$$;

-- ─── events ──────────────────────────────────────────────────────────────────────────────────────────────────

create function {{schema}}.events_append(
  p_owner_id text, p_message_id text, p_type text, p_attempt integer, p_detail jsonb, p_at timestamptz default null
)
returns setof {{schema}}.events
language sql volatile security invoker set search_path = ''
as $$
  insert into {{schema}}.events (owner_id, message_id, type, attempt, detail, at)
  values (p_owner_id, p_message_id, p_type, p_attempt, coalesce(p_detail, '{}'), coalesce(p_at, now()))
  returning *;
$$;

-- An owner's events in their one order, (tx, seq), after the event p_after when given (an id that is not one of
-- the owner's events gives no rows). Owner-wide pages stop below the oldest running transaction, see above.
create function {{schema}}.events_list(
  p_owner_id text,
  p_after text default null,
  p_limit integer default 1000,
  p_message_id text default null,
  p_type text default null
)
returns setof {{schema}}.events
language plpgsql stable security invoker set search_path = ''
as $$
declare
  v_tx xid8 := '0';
  v_seq bigint := 0;
  -- Every transaction below this one has committed or aborted; none can still add a row below it.
  v_horizon xid8 := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  v_limit integer := greatest(coalesce(p_limit, 1000), 0);
begin
  if p_after is not null then
    if p_after !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
      return;
    end if;
    select e.tx, e.seq into v_tx, v_seq from {{schema}}.events e where e.id = p_after::uuid and e.owner_id = p_owner_id;
    if not found then
      return;
    end if;
  end if;

  if p_message_id is not null then
    return query
    select e.* from {{schema}}.events e
    where e.owner_id = p_owner_id and e.message_id = p_message_id and (e.tx, e.seq) > (v_tx, v_seq)
      and (p_type is null or e.type = p_type)
    order by e.tx, e.seq
    limit v_limit;
    return;
  end if;

  -- Walks events_owner_tx_seq_idx from the cursor and stops after v_limit rows.
  return query
  select e.* from {{schema}}.events e
  where e.owner_id = p_owner_id and (e.tx, e.seq) > (v_tx, v_seq) and e.tx < v_horizon
    and (p_type is null or e.type = p_type)
  order by e.tx, e.seq
  limit v_limit;
end;
$$;

-- ─── suppressions ────────────────────────────────────────────────────────────────────────────────────────────

-- Addresses arrive lower-cased by the caller: SQL lower() would depend on the database's collation.
create function {{schema}}.suppressions_add(p_owner_id text, p_address text, p_reason text, p_detail jsonb default '{}')
returns setof {{schema}}.suppressions
language sql volatile security invoker set search_path = ''
as $$
  insert into {{schema}}.suppressions as s (owner_id, address, reason, detail)
  values (p_owner_id, p_address, p_reason, coalesce(p_detail, '{}'))
  on conflict (owner_id, address) do update
    set reason = excluded.reason, detail = excluded.detail, created_at = now()
  returning s.*;
$$;

-- The suppressions among p_addresses, in the order asked.
create function {{schema}}.suppressions_find(p_owner_id text, p_addresses text[])
returns setof {{schema}}.suppressions
language sql stable security invoker set search_path = ''
as $$
  select s.* from pg_catalog.unnest(p_addresses) with ordinality as a(address, n)
  join {{schema}}.suppressions s on s.owner_id = p_owner_id and s.address = a.address
  order by a.n;
$$;

create function {{schema}}.suppressions_remove(p_owner_id text, p_address text)
returns boolean
language sql volatile security invoker set search_path = ''
as $$
  with removed as (
    delete from {{schema}}.suppressions where owner_id = p_owner_id and address = p_address returning 1
  )
  select exists (select 1 from removed);
$$;

create function {{schema}}.suppressions_list(p_owner_id text, p_limit integer default 1000)
returns setof {{schema}}.suppressions
language sql stable security invoker set search_path = ''
as $$
  select s.* from {{schema}}.suppressions s where s.owner_id = p_owner_id
  order by s.seq
  limit greatest(coalesce(p_limit, 1000), 0);
$$;

-- ─── audit ───────────────────────────────────────────────────────────────────────────────────────────────────

create function {{schema}}.audit_append(
  p_owner_id text, p_agent_id text, p_action text, p_outcome text, p_message_id text, p_detail jsonb default '{}'
)
returns setof {{schema}}.audit
language sql volatile security invoker set search_path = ''
as $$
  insert into {{schema}}.audit (owner_id, agent_id, action, outcome, message_id, detail)
  values (p_owner_id, p_agent_id, p_action, p_outcome, p_message_id, coalesce(p_detail, '{}'))
  returning *;
$$;

-- Newest first; a null p_action means any action.
create function {{schema}}.audit_list(p_owner_id text, p_action text default null, p_limit integer default 100)
returns setof {{schema}}.audit
language plpgsql stable security invoker set search_path = ''
as $$
begin
  -- Two statements rather than "p_action is null or ...", so each walks its own index (owner_id[, action], seq).
  if p_action is null then
    return query select a.* from {{schema}}.audit a where a.owner_id = p_owner_id
      order by a.seq desc limit greatest(coalesce(p_limit, 100), 0);
  else
    return query select a.* from {{schema}}.audit a where a.owner_id = p_owner_id and a.action = p_action
      order by a.seq desc limit greatest(coalesce(p_limit, 100), 0);
  end if;
end;
$$;

-- ─── counters ────────────────────────────────────────────────────────────────────────────────────────────────

create function {{schema}}.counter_get(p_owner_id text, p_key text, p_window text)
returns bigint
language sql stable security invoker set search_path = ''
as $$
  select coalesce((
    select c.value from {{schema}}.counters c
    where c.owner_id = p_owner_id and c.key = p_key and c.time_window = p_window
  ), 0);
$$;
`;
