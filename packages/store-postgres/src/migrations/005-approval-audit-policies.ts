import { outboxColumns } from './001-init.js';

/**
 * Approval, a queryable audit log, refunds and stored policies.
 *
 * - The outbox gains the statuses `pending_approval`, `rejected` and `expired`, and four `approval_*` columns. A
 *   message waiting for a human is never claimed: `claim` takes `queued` and `sending` rows only, as before.
 *   `outbox_decide` approves (back to `queued`) or rejects one atomically; `outbox_list_pending` expires those
 *   whose time ran out and lists the rest. Expiry times are whole milliseconds, as a JS Date holds them, so the app
 *   and the database agree on whether a given `now` is past one.
 * - `enqueue`, `enqueue_many` and `cancel` return the outbox row with its flag as listed columns, so they are made
 *   again with the new columns (and `enqueue` with the approval parameters; `cancel` also cancels a pending one).
 * - The audit log gains `tool`, `actor`, `recipient_count`, `duration_ms` and `error_code`, and `audit_list` the
 *   filters and the `before` cursor of `AuditListOptions`.
 * - `counter_increment` with a negative `p_by` gives quota back, never below 0.
 * - `policies`: one JSON policy per (owner, agent); agent `''` is the owner's default (an agent id is never empty).
 */
/** The outbox's columns once this migration added the approval ones: what the functions returning a record return. */
export const outboxColumnsWithApproval = outboxColumns.replace(
  /updated_at timestamptz\n\)$/,
  `updated_at timestamptz,
  approval_reason text,
  approval_expires_at timestamptz,
  approval_decided_by text,
  approval_decided_at timestamptz
)`,
);
if (outboxColumnsWithApproval === outboxColumns) throw new Error('migration 005: the outbox columns of 001 did not end as expected');

/** A timestamp as the ISO text with milliseconds the SDK writes into event details. */
export const isoMs = (value: string): string => `pg_catalog.to_char(${value} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export const migration005 = String.raw`
alter table {{schema}}.outbox drop constraint outbox_status_check;
alter table {{schema}}.outbox add constraint outbox_status_check check (status in (
  'queued', 'sending', 'sent', 'failed', 'unknown', 'cancelled', 'pending_approval', 'rejected', 'expired'));
alter table {{schema}}.outbox
  add column approval_reason text,
  add column approval_expires_at timestamptz,
  add column approval_decided_by text,
  add column approval_decided_at timestamptz,
  add constraint outbox_approval_complete check ((approval_reason is null) = (approval_expires_at is null));
-- An owner's pending messages oldest first (listPending), and the ones to expire; finished rows cost nothing.
create index outbox_pending_idx on {{schema}}.outbox (owner_id, created_at, id collate "C") where status = 'pending_approval';

alter table {{schema}}.audit
  add column tool text,
  add column actor text,
  add column recipient_count integer,
  add column duration_ms double precision,
  add column error_code text;
create index audit_owner_agent_seq_idx on {{schema}}.audit (owner_id, agent_id, seq);

create table {{schema}}.policies (
  owner_id   text not null,
  -- '' is the owner's default policy: a key column cannot be null, and an agent id is never empty.
  agent_id   text not null,
  policy     jsonb not null check (pg_catalog.jsonb_typeof(policy) = 'object'),
  updated_at timestamptz not null default now(),
  primary key (owner_id, agent_id)
);

-- ─── outbox ──────────────────────────────────────────────────────────────────────────────────────────────────

drop function {{schema}}.enqueue(text, text, text, text, text, text, jsonb, timestamptz, integer, text[], jsonb, text, integer, integer);
drop function {{schema}}.enqueue_many(jsonb);
drop function {{schema}}.cancel(text, text);

-- As in 002, plus p_approval_reason and p_approval_ttl_ms: with them the row starts as 'pending_approval', expiring
-- that long after now, and its first event is 'pending_approval' instead of 'queued'. Not together with a lease.
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
  p_lease_ms integer default null,
  p_delay_ms integer default null,
  p_approval_reason text default null,
  p_approval_ttl_ms bigint default null
)
returns table (
  created boolean,
${outboxColumnsWithApproval}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  r {{schema}}.outbox;
  claiming boolean := p_lease_owner is not null;
  approving boolean := p_approval_reason is not null;
  v_send_at timestamptz := coalesce(p_send_at, now());
begin
  if approving and claiming then
    raise exception 'enqueue: a message that waits for approval cannot be claimed for a direct send' using errcode = '22023';
  end if;
  if approving and not coalesce(p_approval_ttl_ms > 0, false) then
    raise exception 'enqueue: p_approval_ttl_ms must be positive, not %', coalesce(p_approval_ttl_ms::text, 'null') using errcode = '22023';
  end if;
  for i in 1..3 loop
    insert into {{schema}}.outbox as o (
      id, owner_id, agent_id, idempotency_key, fingerprint, status, message_id, email, send_at, next_attempt_at,
      attempt, max_attempts, lease_owner, lease_expires_at, tags, metadata, approval_reason, approval_expires_at
    ) values (
      p_id, p_owner_id, p_agent_id, p_idempotency_key, p_fingerprint,
      case when approving then 'pending_approval' when claiming then 'sending' else 'queued' end,
      p_message_id, p_email, v_send_at, v_send_at + coalesce(p_delay_ms, 0) * interval '1 millisecond',
      case when claiming then 1 else 0 end,
      p_max_attempts, p_lease_owner,
      case when claiming then now() + p_lease_ms * interval '1 millisecond' end,
      coalesce(p_tags, '{}'), coalesce(p_metadata, '{}'),
      p_approval_reason,
      case when approving then pg_catalog.date_trunc('milliseconds', now()) + p_approval_ttl_ms * interval '1 millisecond' end
    )
    on conflict (owner_id, idempotency_key) do nothing
    returning o.* into r;

    if found then
      if approving then
        insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
        values (r.owner_id, r.id, 'pending_approval', r.attempt, pg_catalog.jsonb_build_object(
          'sendAt', ${isoMs('r.send_at')}, 'reason', r.approval_reason, 'expiresAt', ${isoMs('r.approval_expires_at')}));
      else
        insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
        values (r.owner_id, r.id, 'queued', r.attempt, pg_catalog.jsonb_build_object('sendAt', ${isoMs('r.send_at')}));
      end if;
      if claiming then
        insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
        values (r.owner_id, r.id, 'claimed', r.attempt, pg_catalog.jsonb_build_object('worker', p_lease_owner));
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

-- As in 003; a record with "approval": {"reason", "ttlMs"} starts as 'pending_approval', as with enqueue.
create function {{schema}}.enqueue_many(p_records jsonb)
returns table (
  created boolean,
${outboxColumnsWithApproval}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz := now();
  v_now_ms timestamptz := pg_catalog.date_trunc('milliseconds', now());
  v_created text[];
  v_count integer;
begin
  if p_records is null or pg_catalog.jsonb_typeof(p_records) <> 'array' then
    raise exception 'enqueue_many: p_records must be a JSON array' using errcode = '22023';
  end if;
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(p_records) x(r)
    where pg_catalog.jsonb_typeof(x.r->'approval') = 'object'
      and (x.r->'approval'->>'reason' is null or not coalesce((x.r->'approval'->>'ttlMs')::numeric > 0, false))
  ) then
    raise exception 'enqueue_many: an approval needs a reason and a positive ttlMs' using errcode = '22023';
  end if;

  with input as (
    select x.n, x.r, pg_catalog.jsonb_typeof(x.r->'approval') = 'object' as approving
    from pg_catalog.jsonb_array_elements(p_records) with ordinality as x(r, n)
  ), inserted as (
    insert into {{schema}}.outbox as o (
      id, owner_id, agent_id, idempotency_key, fingerprint, status, message_id, email, send_at, next_attempt_at,
      attempt, max_attempts, tags, metadata, approval_reason, approval_expires_at
    )
    select i.r->>'id', i.r->>'ownerId', i.r->>'agentId', i.r->>'idempotencyKey', i.r->>'fingerprint',
           case when i.approving then 'pending_approval' else 'queued' end,
           i.r->>'messageId', i.r->'email',
           coalesce((i.r->>'sendAt')::timestamptz, v_now),
           coalesce((i.r->>'sendAt')::timestamptz, v_now) + coalesce((i.r->>'delayMs')::bigint, 0) * interval '1 millisecond',
           0, (i.r->>'maxAttempts')::integer,
           coalesce(array(select pg_catalog.jsonb_array_elements_text(i.r->'tags')), '{}'),
           coalesce(nullif(i.r->'metadata', 'null'::jsonb), '{}'),
           case when i.approving then i.r->'approval'->>'reason' end,
           case when i.approving then v_now_ms + (i.r->'approval'->>'ttlMs')::bigint * interval '1 millisecond' end
    from input i
    order by i.r->>'ownerId', i.r->>'idempotencyKey', i.n
    on conflict (owner_id, idempotency_key) do nothing
    returning o.*
  ), logged as (
    insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
    select ins.owner_id, ins.id,
           case when ins.status = 'pending_approval' then 'pending_approval' else 'queued' end,
           ins.attempt,
           case when ins.status = 'pending_approval' then pg_catalog.jsonb_build_object(
                  'sendAt', ${isoMs('ins.send_at')}, 'reason', ins.approval_reason, 'expiresAt', ${isoMs('ins.approval_expires_at')})
                else pg_catalog.jsonb_build_object('sendAt', ${isoMs('ins.send_at')}) end
    from inserted ins join input i on i.r->>'id' = ins.id
    order by i.n
  )
  select coalesce(pg_catalog.array_agg(ins.id), '{}') into v_created from inserted ins;

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
    raise exception 'enqueue_many: % of % records could be neither inserted nor found', pg_catalog.jsonb_array_length(p_records) - v_count,
      pg_catalog.jsonb_array_length(p_records) using errcode = '40001';
  end if;
end;
$$;

-- Cancels a 'queued' or 'pending_approval' message. Returns the row as it now is (cancelled = false when it was in
-- neither state), or no row.
create function {{schema}}.cancel(p_owner_id text, p_id text)
returns table (
  cancelled boolean,
${outboxColumnsWithApproval}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  r {{schema}}.outbox;
begin
  update {{schema}}.outbox o
  set status = 'cancelled', lease_owner = null, lease_expires_at = null, updated_at = now()
  where o.owner_id = p_owner_id and o.id = p_id and o.status in ('queued', 'pending_approval')
  returning o.* into r;
  if found then
    insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
    values (r.owner_id, r.id, 'cancelled', r.attempt,
            pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('server', nullif(r.server, ''), 'code', r.error->>'code')));
    return query select true, (r).*;
    return;
  end if;
  select o.* into r from {{schema}}.outbox o where o.owner_id = p_owner_id and o.id = p_id;
  if found then
    return query select false, (r).*;
  end if;
end;
$$;

-- Approves (p_approve) or rejects a 'pending_approval' message, recording p_by and the time. Any decision after
-- approval_expires_at makes it 'expired'. One statement on the row: of two deciders at once, the second waits for
-- the first, then finds it no longer pending and gets outcome 'not_pending' with the row as it now is. No row when
-- the owner has no such message. An approved message is due at its own next_attempt_at or now, whichever is later.
create function {{schema}}.outbox_decide(p_owner_id text, p_id text, p_approve boolean, p_by text, p_now timestamptz default null)
returns table (
  outcome text,
${outboxColumnsWithApproval}
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  r {{schema}}.outbox;
  v_now timestamptz := coalesce(p_now, now());
begin
  update {{schema}}.outbox o
  set status = case when o.approval_expires_at <= v_now then 'expired' when p_approve then 'queued' else 'rejected' end,
      next_attempt_at = case when p_approve and o.approval_expires_at > v_now
                             then greatest(o.next_attempt_at, v_now) else o.next_attempt_at end,
      approval_decided_by = p_by,
      approval_decided_at = v_now,
      updated_at = v_now
  where o.owner_id = p_owner_id and o.id = p_id and o.status = 'pending_approval'
  returning o.* into r;
  if found then
    insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
    values (r.owner_id, r.id, case when r.status = 'queued' then 'approved' else r.status end, r.attempt,
            pg_catalog.jsonb_build_object('by', p_by));
    return query select case when r.status = 'queued' then 'approved' else r.status end, (r).*;
    return;
  end if;
  select o.* into r from {{schema}}.outbox o where o.owner_id = p_owner_id and o.id = p_id;
  if found then
    return query select 'not_pending'::text, (r).*;
  end if;
end;
$$;

-- The owner's messages waiting for approval, oldest first (created_at, then id in "C" order), of one agent when
-- p_agent_id is given, after the message p_after (an id that is not one of the owner's messages gives no rows).
-- First marks the owner's pending messages whose approval expired 'expired', each with an 'expired' event.
create function {{schema}}.outbox_list_pending(
  p_owner_id text,
  p_agent_id text default null,
  p_after text default null,
  p_limit integer default 100,
  p_now timestamptz default null
)
returns setof {{schema}}.outbox
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_created_at timestamptz;
  v_id text;
begin
  with expired as (
    update {{schema}}.outbox o
    set status = 'expired', updated_at = v_now
    where o.owner_id = p_owner_id and o.status = 'pending_approval' and o.approval_expires_at <= v_now
    returning o.*
  )
  insert into {{schema}}.events (owner_id, message_id, type, attempt, detail)
  select e.owner_id, e.id, 'expired', e.attempt, '{}'::jsonb from expired e
  order by e.created_at, e.id collate "C";

  if p_after is not null then
    select o.created_at, o.id into v_created_at, v_id from {{schema}}.outbox o where o.owner_id = p_owner_id and o.id = p_after;
    if not found then
      return;
    end if;
  end if;

  return query
  select o.* from {{schema}}.outbox o
  where o.owner_id = p_owner_id and o.status = 'pending_approval'
    and (p_agent_id is null or o.agent_id = p_agent_id)
    and (p_after is null or o.created_at > v_created_at or (o.created_at = v_created_at and o.id collate "C" > v_id))
  order by o.created_at, o.id collate "C"
  limit greatest(coalesce(p_limit, 100), 0);
end;
$$;

-- ─── audit ───────────────────────────────────────────────────────────────────────────────────────────────────

drop function {{schema}}.audit_append(text, text, text, text, text, jsonb);
drop function {{schema}}.audit_list(text, text, integer);

create function {{schema}}.audit_append(
  p_owner_id text,
  p_agent_id text,
  p_action text,
  p_outcome text,
  p_message_id text,
  p_detail jsonb default '{}',
  p_tool text default null,
  p_actor text default null,
  p_recipient_count integer default null,
  p_duration_ms double precision default null,
  p_error_code text default null
)
returns setof {{schema}}.audit
language sql volatile security invoker set search_path = ''
as $$
  insert into {{schema}}.audit (owner_id, agent_id, action, outcome, message_id, detail, tool, actor, recipient_count, duration_ms, error_code)
  values (p_owner_id, p_agent_id, p_action, p_outcome, p_message_id, coalesce(p_detail, '{}'), p_tool, p_actor, p_recipient_count,
          p_duration_ms, p_error_code)
  returning *;
$$;

-- Newest first (seq), filtered; null filters mean any. p_before pages back from an entry of the owner's (an id that
-- is not one gives no rows). p_limit is capped at 1000.
create function {{schema}}.audit_list(
  p_owner_id text,
  p_agent_id text default null,
  p_action text default null,
  p_from timestamptz default null,
  p_to timestamptz default null,
  p_before text default null,
  p_limit integer default 100
)
returns setof {{schema}}.audit
language plpgsql stable security invoker set search_path = ''
as $$
declare
  v_before bigint := 9223372036854775807;
  v_limit integer := least(greatest(coalesce(p_limit, 100), 0), 1000);
begin
  if p_before is not null then
    if p_before !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
      return;
    end if;
    select a.seq into v_before from {{schema}}.audit a where a.id = p_before::uuid and a.owner_id = p_owner_id;
    if not found then
      return;
    end if;
  end if;

  -- One statement per leading filter, so each walks its own index backwards: (owner_id, action | agent_id, seq).
  if p_action is not null then
    return query select a.* from {{schema}}.audit a
      where a.owner_id = p_owner_id and a.action = p_action and a.seq < v_before
        and (p_agent_id is null or a.agent_id = p_agent_id) and (p_from is null or a.at >= p_from) and (p_to is null or a.at < p_to)
      order by a.seq desc limit v_limit;
  elsif p_agent_id is not null then
    return query select a.* from {{schema}}.audit a
      where a.owner_id = p_owner_id and a.agent_id = p_agent_id and a.seq < v_before
        and (p_from is null or a.at >= p_from) and (p_to is null or a.at < p_to)
      order by a.seq desc limit v_limit;
  else
    return query select a.* from {{schema}}.audit a
      where a.owner_id = p_owner_id and a.seq < v_before
        and (p_from is null or a.at >= p_from) and (p_to is null or a.at < p_to)
      order by a.seq desc limit v_limit;
  end if;
end;
$$;

-- ─── counters ────────────────────────────────────────────────────────────────────────────────────────────────

-- As in 001, and a negative p_by gives quota back: always allowed, never below 0, and no row made for it.
create or replace function {{schema}}.counter_increment(p_owner_id text, p_key text, p_window text, p_by bigint, p_limit bigint)
returns table (allowed boolean, value bigint)
language plpgsql volatile security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
  v bigint;
begin
  if p_by < 0 then
    update {{schema}}.counters c
    set value = greatest(c.value + p_by, 0), updated_at = now()
    where c.owner_id = p_owner_id and c.key = p_key and c.time_window = p_window
    returning c.value into v;
    return query select true, coalesce(v, 0);
    return;
  end if;
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

-- ─── policies ────────────────────────────────────────────────────────────────────────────────────────────────

-- p_agent_id '' is the owner's default policy.
create function {{schema}}.policy_save(p_owner_id text, p_agent_id text, p_policy jsonb)
returns setof {{schema}}.policies
language sql volatile security invoker set search_path = ''
as $$
  insert into {{schema}}.policies as p (owner_id, agent_id, policy)
  values (p_owner_id, p_agent_id, p_policy)
  on conflict (owner_id, agent_id) do update set policy = excluded.policy, updated_at = now()
  returning p.*;
$$;

create function {{schema}}.policy_get(p_owner_id text, p_agent_id text)
returns setof {{schema}}.policies
language sql stable security invoker set search_path = ''
as $$
  select p.* from {{schema}}.policies p where p.owner_id = p_owner_id and p.agent_id = p_agent_id;
$$;

create function {{schema}}.policy_delete(p_owner_id text, p_agent_id text)
returns boolean
language sql volatile security invoker set search_path = ''
as $$
  with deleted as (
    delete from {{schema}}.policies where owner_id = p_owner_id and agent_id = p_agent_id returning 1
  )
  select exists (select 1 from deleted);
$$;

-- The owner's default ('') first, then agent ids in "C" order.
create function {{schema}}.policy_list(p_owner_id text)
returns setof {{schema}}.policies
language sql stable security invoker set search_path = ''
as $$
  select p.* from {{schema}}.policies p where p.owner_id = p_owner_id order by p.agent_id collate "C";
$$;
`;
