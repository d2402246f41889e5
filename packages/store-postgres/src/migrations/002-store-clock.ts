import { outboxColumns } from './001-init.js';

/**
 * Due times on the store's clock, and bounded takeovers.
 *
 * - `enqueue`: a null `p_send_at` means now by the database's clock, and `p_delay_ms` holds the first try back
 *   (a follow-up for deferred recipients). The app's clock never decides when a message is due.
 * - `settle`: a retry is `p_retry_delay_ms` from now by the database's clock, not a time the app computed.
 * - `claim`: `p_ids` limits a claim to some messages; an expired lease whose message was taken over once already
 *   (possible_duplicate) becomes 'unknown' like one out of attempts, so a message whose outcome can never be
 *   recorded reaches a server at most twice.
 */
export const migration002 = String.raw`
drop function {{schema}}.enqueue(text, text, text, text, text, text, jsonb, timestamptz, integer, text[], jsonb, text, integer);
drop function {{schema}}.claim(text, integer, integer, timestamptz, text);
drop function {{schema}}.settle(text, integer, text, text, text[], text[], text, jsonb, timestamptz);

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
  p_delay_ms integer default null
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
  v_send_at timestamptz := coalesce(p_send_at, now());
begin
  for i in 1..3 loop
    insert into {{schema}}.outbox as o (
      id, owner_id, agent_id, idempotency_key, fingerprint, status, message_id, email, send_at, next_attempt_at,
      attempt, max_attempts, lease_owner, lease_expires_at, tags, metadata
    ) values (
      p_id, p_owner_id, p_agent_id, p_idempotency_key, p_fingerprint,
      case when claiming then 'sending' else 'queued' end,
      p_message_id, p_email, v_send_at, v_send_at + coalesce(p_delay_ms, 0) * interval '1 millisecond',
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

create function {{schema}}.claim(
  p_worker text, p_limit integer, p_lease_ms integer, p_now timestamptz default null, p_owner_id text default null,
  p_ids text[] default null
)
returns setof {{schema}}.outbox
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with queued as (
    select o.id, o.status, o.next_attempt_at, o.created_at, true as claimable
    from {{schema}}.outbox o
    where o.status = 'queued' and o.next_attempt_at <= v_now and (p_owner_id is null or o.owner_id = p_owner_id)
      and (p_ids is null or o.id = any(p_ids))
    order by o.next_attempt_at, o.created_at, o.id
    limit p_limit
    for update skip locked
  ), expired as (
    select o.id, o.status, o.next_attempt_at, o.created_at,
           o.attempt < o.max_attempts and not o.possible_duplicate as claimable
    from {{schema}}.outbox o
    where o.status = 'sending' and o.lease_expires_at <= v_now and (p_owner_id is null or o.owner_id = p_owner_id)
      and (p_ids is null or o.id = any(p_ids))
    for update skip locked
  ), ranked as (
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
          'message', format('The worker sending attempt %s stopped before recording the outcome; it may have been delivered, so it is not sent again.', o.attempt),
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

create function {{schema}}.settle(
  p_id text,
  p_attempt integer,
  p_status text,
  p_server text default null,
  p_accepted text[] default null,
  p_rejected text[] default null,
  p_response text default null,
  p_error jsonb default null,
  p_retry_delay_ms bigint default null
)
returns setof {{schema}}.outbox
language plpgsql volatile security invoker set search_path = ''
as $$
declare
  r {{schema}}.outbox;
  v_retry_at timestamptz := now() + greatest(coalesce(p_retry_delay_ms, 0), 0) * interval '1 millisecond';
begin
  if p_status is null or p_status not in ('sent', 'retry', 'failed', 'unknown') then
    raise exception 'settle: status must be sent, retry, failed or unknown, not %', coalesce(p_status, 'null')
      using errcode = '22023';
  end if;
  if p_status = 'retry' and p_retry_delay_ms is null then
    raise exception 'settle: a retry needs p_retry_delay_ms' using errcode = '22023';
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
      next_attempt_at = case when p_status = 'retry' then v_retry_at else o.next_attempt_at end,
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
      'at', to_char(v_retry_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'code', p_error->>'code',
      'server', p_server)
    else jsonb_build_object('server', nullif(r.server, ''), 'code', r.error->>'code')
  end));
  return next r;
end;
$$;
`;
