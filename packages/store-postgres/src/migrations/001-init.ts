/**
 * The first schema: tables, indexes and the outbox transitions as SQL functions. `{{schema}}` stands for the
 * quoted schema name. A released migration never changes: later changes go in a new numbered file.
 *
 * The functions do the row change and write its `events` row in one statement, so any `query()` client (a `pg`
 * Pool that spreads calls over connections, PGlite, or PostgREST `rpc()` for the Supabase store) gets the same
 * atomic transitions. They are `security invoker` with an empty `search_path` (every name is qualified), so row
 * level security, where a schema has it, applies to the caller.
 */
// The outbox row as the functions that also return a flag (enqueue: created, cancel: cancelled) list it.
export const outboxColumns = String.raw`  id text,
  owner_id text,
  agent_id text,
  idempotency_key text,
  fingerprint text,
  status text,
  message_id text,
  email jsonb,
  send_at timestamptz,
  next_attempt_at timestamptz,
  attempt integer,
  max_attempts integer,
  lease_owner text,
  lease_expires_at timestamptz,
  possible_duplicate boolean,
  server text,
  accepted text[],
  rejected text[],
  response text,
  error jsonb,
  tags text[],
  metadata jsonb,
  created_at timestamptz,
  updated_at timestamptz
)`;

export const migration001 = String.raw`
create table {{schema}}.outbox (
  id                 text primary key,
  owner_id           text not null,
  agent_id           text,
  idempotency_key    text,
  fingerprint        text,
  status             text not null check (status in ('queued', 'sending', 'sent', 'failed', 'unknown', 'cancelled')),
  message_id         text not null,
  email              jsonb not null,
  send_at            timestamptz not null,
  next_attempt_at    timestamptz not null,
  attempt            integer not null default 0,
  max_attempts       integer not null,
  lease_owner        text,
  lease_expires_at   timestamptz,
  possible_duplicate boolean not null default false,
  server             text,
  accepted           text[] not null default '{}',
  rejected           text[] not null default '{}',
  response           text,
  error              jsonb,
  tags               text[] not null default '{}',
  metadata           jsonb not null default '{}',
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  constraint outbox_owner_idempotency_key unique (owner_id, idempotency_key)
);
-- The worker's claim: due queued rows in order, and expired leases. Both partial, so finished rows cost nothing.
create index outbox_due_idx on {{schema}}.outbox (next_attempt_at, created_at, id) where status = 'queued';
create index outbox_lease_idx on {{schema}}.outbox (lease_expires_at) where status = 'sending';
create index outbox_owner_created_idx on {{schema}}.outbox (owner_id, created_at);

create table {{schema}}.events (
  id         uuid primary key default gen_random_uuid(),
  -- Insertion order: several events of one transition share one timestamp.
  seq        bigint generated always as identity,
  owner_id   text not null,
  message_id text not null,
  type       text not null,
  at         timestamptz not null default now(),
  attempt    integer not null default 0,
  detail     jsonb not null default '{}'
);
create index events_owner_message_idx on {{schema}}.events (owner_id, message_id, seq);
create index events_owner_seq_idx on {{schema}}.events (owner_id, seq);

create table {{schema}}.suppressions (
  owner_id   text not null,
  address    text not null,
  reason     text not null check (reason in ('unsubscribe', 'bounce', 'complaint', 'manual')),
  detail     jsonb not null default '{}',
  created_at timestamptz not null default now(),
  -- Lists keep first-added order even when a suppression is replaced.
  seq        bigint generated always as identity,
  primary key (owner_id, address)
);

create table {{schema}}.audit (
  id         uuid primary key default gen_random_uuid(),
  seq        bigint generated always as identity,
  owner_id   text not null,
  agent_id   text,
  action     text not null,
  outcome    text not null check (outcome in ('ok', 'error')),
  message_id text,
  detail     jsonb not null default '{}',
  at         timestamptz not null default now()
);
create index audit_owner_seq_idx on {{schema}}.audit (owner_id, seq);
create index audit_owner_action_seq_idx on {{schema}}.audit (owner_id, action, seq);

-- "window" is a reserved word in PostgreSQL, hence time_window.
create table {{schema}}.counters (
  owner_id    text not null,
  key         text not null,
  time_window text not null,
  value       bigint not null,
  updated_at  timestamptz not null default now(),
  primary key (owner_id, key, time_window)
);

create table {{schema}}.credentials (
  owner_id   text not null,
  name       text not null,
  key_id     text not null,
  ciphertext text not null,
  updated_at timestamptz not null default now(),
  seq        bigint generated always as identity,
  primary key (owner_id, name)
);

-- ─── outbox transitions ───────────────────────────────────────────────────────────────────────────────────

-- Inserts a message unless (owner_id, idempotency_key) exists, then returns the existing row with created = false.
-- With p_lease_owner the row starts as 'sending', attempt 1 (a direct send). Race-safe: ON CONFLICT waits for a
-- concurrent insert of the same key, and the follow-up select runs under a new snapshot that sees it.
create function {{schema}}.enqueue(
  p_id text,
  p_owner_id text,
  p_agent_id text,
  p_idempotency_key text,
  p_fingerprint text,
  p_message_id text,
  p_email jsonb,
  p_send_at timestamptz,
  p_max_attempts integer,
  p_tags text[] default '{}',
  p_metadata jsonb default '{}',
  p_lease_owner text default null,
  p_lease_ms integer default null
)
returns table (
  created boolean,
${outboxColumns}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  r {{schema}}.outbox;
  claiming boolean := p_lease_owner is not null;
begin
  for i in 1..3 loop
    insert into {{schema}}.outbox as o (
      id, owner_id, agent_id, idempotency_key, fingerprint, status, message_id, email, send_at, next_attempt_at,
      attempt, max_attempts, lease_owner, lease_expires_at, tags, metadata
    ) values (
      p_id, p_owner_id, p_agent_id, p_idempotency_key, p_fingerprint,
      case when claiming then 'sending' else 'queued' end,
      p_message_id, p_email, p_send_at, p_send_at,
      case when claiming then 1 else 0 end,
      p_max_attempts, p_lease_owner,
      case when claiming then now() + p_lease_ms * interval '1 millisecond' end,
      coalesce(p_tags, '{}'), coalesce(p_metadata, '{}')
    )
    on conflict (owner_id, idempotency_key) do nothing
    returning o.* into r;

    if found then
      insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
      values (r.owner_id, r.id, 'queued', r.attempt,
              jsonb_build_object('sendAt', to_char(r.send_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
      if claiming then
        insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
        values (r.owner_id, r.id, 'claimed', r.attempt, jsonb_build_object('worker', p_lease_owner));
      end if;
      return query select true, (r).*;
      return;
    end if;

    select o.* into r from {{schema}}.outbox o where o.owner_id = p_owner_id and o.idempotency_key = p_idempotency_key;
    if found then
      return query select false, (r).*;
      return;
    end if;
    -- The row that conflicted is gone again (deleted meanwhile): insert once more.
  end loop;
  raise exception 'enqueue: could not insert or find idempotency key % for owner %', p_idempotency_key, p_owner_id
    using errcode = '40001';
end;
$$;

-- Claims up to p_limit due messages, oldest first: queued ones whose next_attempt_at has come, and sending ones
-- whose lease expired (marked possible_duplicate, event 'reclaimed'). An expired one already at max_attempts
-- becomes 'unknown' (LEASE_EXPIRED) instead, is not returned and does not count against p_limit. SKIP LOCKED lets
-- many workers claim at once without waiting on, or taking, each other's rows. p_now defaults to the database's
-- clock, which all workers then share.
create function {{schema}}.claim(
  p_worker text, p_limit integer, p_lease_ms integer, p_now timestamptz default null, p_owner_id text default null
)
returns setof {{schema}}.outbox
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with queued as (
    -- Walks outbox_due_idx in order and stops after p_limit rows it could lock.
    select o.id, o.status, o.next_attempt_at, o.created_at, true as claimable
    from {{schema}}.outbox o
    where o.status = 'queued' and o.next_attempt_at <= v_now and (p_owner_id is null or o.owner_id = p_owner_id)
    order by o.next_attempt_at, o.created_at, o.id
    limit p_limit
    for update skip locked
  ), expired as (
    -- Few: only rows whose worker died or overran its lease (outbox_lease_idx).
    select o.id, o.status, o.next_attempt_at, o.created_at, o.attempt < o.max_attempts as claimable
    from {{schema}}.outbox o
    where o.status = 'sending' and o.lease_expires_at <= v_now and (p_owner_id is null or o.owner_id = p_owner_id)
    for update skip locked
  ), ranked as (
    -- Visits rows oldest first like MemoryStore: each claimable row counts against p_limit; an exhausted one is
    -- given up only when it comes before the limit is reached.
    select c.*, count(*) filter (where c.claimable) over (
      order by c.next_attempt_at, c.created_at, c.id rows between unbounded preceding and current row
    ) as claim_rank
    from (select * from queued union all select * from expired) c
  ), taken as (
    select r.* from ranked r
    where (r.claimable and r.claim_rank <= p_limit) or (not r.claimable and r.claim_rank < p_limit)
  ), changed as (
    update {{schema}}.outbox o
    set status = case when t.claimable then 'sending' else 'unknown' end,
        attempt = case when t.claimable then o.attempt + 1 else o.attempt end,
        lease_owner = case when t.claimable then p_worker end,
        lease_expires_at = case when t.claimable then v_now + p_lease_ms * interval '1 millisecond' end,
        possible_duplicate = o.possible_duplicate or (t.claimable and t.status = 'sending'),
        error = case when t.claimable then o.error else jsonb_build_object(
          'code', 'LEASE_EXPIRED',
          'message', format('The worker sending attempt %s stopped before recording the outcome.', o.attempt),
          'retryable', false) end,
        updated_at = v_now
    from taken t
    where o.id = t.id
    returning o.*
  ), logged as (
    insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
    select c.owner_id, c.id,
           case when not t.claimable then 'unknown' when t.status = 'sending' then 'reclaimed' else 'claimed' end,
           c.attempt,
           case when t.claimable then jsonb_build_object('worker', p_worker)
                else jsonb_strip_nulls(jsonb_build_object('server', nullif(c.server, ''), 'code', 'LEASE_EXPIRED')) end
    from changed c join taken t on t.id = c.id
    order by t.next_attempt_at, t.created_at, t.id
  )
  select c.* from changed c where c.status = 'sending' order by c.next_attempt_at, c.created_at, c.id;
end;
$$;

-- Records how attempt p_attempt ended: p_status is 'sent', 'retry' (back to 'queued' at p_retry_at), 'failed' or
-- 'unknown'. Fenced: changes nothing and returns no row unless the message is still 'sending' under that attempt.
create function {{schema}}.settle(
  p_id text,
  p_attempt integer,
  p_status text,
  p_server text default null,
  p_accepted text[] default null,
  p_rejected text[] default null,
  p_response text default null,
  p_error jsonb default null,
  p_retry_at timestamptz default null
)
returns setof {{schema}}.outbox
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  r {{schema}}.outbox;
begin
  if p_status is null or p_status not in ('sent', 'retry', 'failed', 'unknown') then
    raise exception 'settle: status must be sent, retry, failed or unknown, not %', coalesce(p_status, 'null')
      using errcode = '22023';
  end if;
  if p_status = 'retry' and p_retry_at is null then
    raise exception 'settle: a retry needs p_retry_at' using errcode = '22023';
  end if;
  if p_status <> 'sent' and p_error is null then
    raise exception 'settle: status % needs p_error', p_status using errcode = '22023';
  end if;

  update {{schema}}.outbox o
  set status = case when p_status = 'retry' then 'queued' else p_status end,
      server = p_server,
      accepted = case when p_status = 'sent' then coalesce(p_accepted, '{}') else o.accepted end,
      rejected = case when p_status = 'sent' then coalesce(p_rejected, '{}') else o.rejected end,
      response = case when p_status = 'sent' then p_response else o.response end,
      error = case when p_status = 'sent' then null else p_error end,
      next_attempt_at = case when p_status = 'retry' then p_retry_at else o.next_attempt_at end,
      lease_owner = null,
      lease_expires_at = null,
      updated_at = now()
  where o.id = p_id and o.status = 'sending' and o.attempt = p_attempt
  returning o.* into r;
  if not found then
    return;
  end if;

  insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
  values (r.owner_id, r.id, p_status, r.attempt, jsonb_strip_nulls(case p_status
    when 'sent' then jsonb_build_object('server', nullif(r.server, ''), 'response', nullif(r.response, ''))
    when 'retry' then jsonb_build_object(
      'at', to_char(p_retry_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'code', p_error->>'code',
      'server', p_server)
    else jsonb_build_object('server', nullif(r.server, ''), 'code', r.error->>'code')
  end));
  return next r;
end;
$$;

-- Extends the lease of a send that is still running (a worker's heartbeat), fenced by the attempt like settle.
create function {{schema}}.extend_lease(p_id text, p_attempt integer, p_lease_ms integer)
returns boolean
language sql volatile security invoker set search_path = ''
as $$
  with extended as (
    update {{schema}}.outbox
    set lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
    where id = p_id and status = 'sending' and attempt = p_attempt
    returning 1
  )
  select exists (select 1 from extended);
$$;

-- Claims a 'failed' message whose error was retryable again (attempt + 1), for a retry under the same key.
create function {{schema}}.reclaim(p_owner_id text, p_id text, p_worker text, p_lease_ms integer)
returns setof {{schema}}.outbox
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  r {{schema}}.outbox;
begin
  update {{schema}}.outbox o
  set status = 'sending',
      attempt = o.attempt + 1,
      lease_owner = p_worker,
      lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
      updated_at = now()
  where o.owner_id = p_owner_id and o.id = p_id and o.status = 'failed'
    and coalesce((o.error->>'retryable')::boolean, false)
  returning o.* into r;
  if not found then
    return;
  end if;
  insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
  values (r.owner_id, r.id, 'claimed', r.attempt, jsonb_build_object('worker', p_worker, 'retry', true));
  return next r;
end;
$$;

-- Cancels a 'queued' message. Returns the row as it now is (cancelled = false when it was not queued), or no row.
create function {{schema}}.cancel(p_owner_id text, p_id text)
returns table (
  cancelled boolean,
${outboxColumns}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  r {{schema}}.outbox;
begin
  update {{schema}}.outbox o
  set status = 'cancelled', lease_owner = null, lease_expires_at = null, updated_at = now()
  where o.owner_id = p_owner_id and o.id = p_id and o.status = 'queued'
  returning o.* into r;
  if found then
    insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
    values (r.owner_id, r.id, 'cancelled', r.attempt,
            jsonb_strip_nulls(jsonb_build_object('server', nullif(r.server, ''), 'code', r.error->>'code')));
    return query select true, (r).*;
    return;
  end if;
  select o.* into r from {{schema}}.outbox o where o.owner_id = p_owner_id and o.id = p_id;
  if found then
    return query select false, (r).*;
  end if;
end;
$$;

-- ─── counters ─────────────────────────────────────────────────────────────────────────────────────────────

-- Adds p_by to (owner, key, window) only if the result stays within p_limit. Concurrent calls serialize on the
-- row, so exactly as many succeed as the limit allows.
create function {{schema}}.counter_increment(p_owner_id text, p_key text, p_window text, p_by bigint, p_limit bigint)
returns table (allowed boolean, value bigint)
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  v bigint;
begin
  insert into {{schema}}.counters as c (owner_id, key, time_window, value)
  select p_owner_id, p_key, p_window, p_by
  where p_by <= p_limit
  on conflict (owner_id, key, time_window) do update
    set value = c.value + excluded.value, updated_at = now()
    where c.value + excluded.value <= p_limit
  returning c.value into v;
  if found then
    return query select true, v;
    return;
  end if;
  select c.value into v from {{schema}}.counters c
  where c.owner_id = p_owner_id and c.key = p_key and c.time_window = p_window;
  return query select false, coalesce(v, 0);
end;
$$;
`;
