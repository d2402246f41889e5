/**
 * Mail stats (`store.stats.summary`): `mail_stats` counts an owner's sends, deliveries, opens, clicks, bounces,
 * unsubscribes and complaints with SQL aggregation and returns one jsonb object shaped like `MailStats`, so neither
 * the app nor a Supabase `rpc()` caller ever pulls the event rows.
 *
 * - `events_owner_type_at_idx` serves the owner-wide count: the six counted types in a time range, without walking
 *   the owner's queued/claimed/retry events.
 * - `outbox_tags_idx` (GIN on `tags`) finds the records carrying a tag; their events come from
 *   `events_owner_message_idx`. The filter is written `tags @> array[tag]`, the form the index answers.
 * - `events_owner_message_clicked_idx` (partial: clicks only) serves the burst check: for a click still counted as a
 *   person's, one range scan of its message's clicks less than 2 s away (`BURST_WINDOW_MS` in core).
 *
 * Which events a call reads depends on the filters given: one message's, one tag's records', or the owner's. Each
 * source is a branch of one UNION ALL gated by a condition on the parameters alone, which PostgreSQL checks once per
 * call, so only one branch runs whatever plan it caches.
 */
export const migration006 = String.raw`
create index events_owner_type_at_idx on {{schema}}.events (owner_id, type, at);
create index outbox_tags_idx on {{schema}}.outbox using gin (tags);
create index events_owner_message_clicked_idx on {{schema}}.events (owner_id, message_id, at) where type = 'clicked';

-- Definitions (see MailStats in core): sent = 'sent' events; delivered = the sum of those records' accepted
-- recipients (a record is settled 'sent' once, and a follow-up holds only its own recipients); human = detail.machine
-- is JSON false, anything else counts as a machine, and so does a click with another click of the same owner and
-- message on a different link (both a JSON number 'link', unequal) less than 2 s before or after it (BURST_WINDOW_MS
-- in core; among all the message's clicks, in the range or not); unique = distinct messages; per link only clicks
-- whose detail has an integer 'link' and a string 'url', top 100 by human, then machine clicks, then link and url
-- ("C" order); rates are shares of sent as float8 (0 when nothing was sent). p_from is inclusive, p_to exclusive, on
-- events.at.
create function {{schema}}.mail_stats(
  p_owner_id text,
  p_message_id text default null,
  p_tag text default null,
  p_from timestamptz default null,
  p_to timestamptz default null
)
returns jsonb
language sql stable security invoker set search_path = ''
as $$
  with scoped as (
    -- One message's events (the tag, when given too, checked on its record).
    select e.message_id, e.type, e.at, e.detail
    from {{schema}}.events e
    where p_message_id is not null
      and e.owner_id = p_owner_id and e.message_id = p_message_id
      and e.type in ('sent', 'opened', 'clicked', 'unsubscribed', 'bounced', 'complained')
      and e.at >= coalesce(p_from, '-infinity') and e.at < coalesce(p_to, 'infinity')
      and (p_tag is null or exists (
        select 1 from {{schema}}.outbox o where o.id = e.message_id and o.owner_id = p_owner_id and o.tags @> array[p_tag]))
    union all
    -- The events of the owner's records that carry the tag.
    select e.message_id, e.type, e.at, e.detail
    from {{schema}}.outbox o
    join {{schema}}.events e on e.owner_id = o.owner_id and e.message_id = o.id
    where p_message_id is null and p_tag is not null
      and o.owner_id = p_owner_id and o.tags @> array[p_tag]
      and e.type in ('sent', 'opened', 'clicked', 'unsubscribed', 'bounced', 'complained')
      and e.at >= coalesce(p_from, '-infinity') and e.at < coalesce(p_to, 'infinity')
    union all
    -- Every event of the owner's, also of messages with no record here.
    select e.message_id, e.type, e.at, e.detail
    from {{schema}}.events e
    where p_message_id is null and p_tag is null
      and e.owner_id = p_owner_id
      and e.type in ('sent', 'opened', 'clicked', 'unsubscribed', 'bounced', 'complained')
      and e.at >= coalesce(p_from, '-infinity') and e.at < coalesce(p_to, 'infinity')
  ),
  classified as (
    -- CASE, so only a click still counted as a person's looks for a burst partner.
    select s.message_id, s.type, s.detail,
      case
        when not coalesce(s.detail -> 'machine' = 'false'::jsonb, false) then false
        when s.type <> 'clicked' then true
        when pg_catalog.jsonb_typeof(s.detail -> 'link') is distinct from 'number' then true
        else not exists (
          select 1
          from {{schema}}.events b
          where b.owner_id = p_owner_id and b.message_id = s.message_id and b.type = 'clicked'
            and b.at > s.at - interval '2 seconds' and b.at < s.at + interval '2 seconds'
            and pg_catalog.jsonb_typeof(b.detail -> 'link') = 'number' and b.detail -> 'link' <> s.detail -> 'link')
      end as human
    from scoped s
  ),
  totals as (
    select
      count(*) filter (where c.type = 'sent') as sent,
      count(*) filter (where c.type = 'opened' and c.human) as opened_human,
      count(distinct c.message_id) filter (where c.type = 'opened' and c.human) as opened_human_unique,
      count(*) filter (where c.type = 'opened' and not c.human) as opened_machine,
      count(distinct c.message_id) filter (where c.type = 'opened' and not c.human) as opened_machine_unique,
      count(*) filter (where c.type = 'clicked' and c.human) as clicked_human,
      count(distinct c.message_id) filter (where c.type = 'clicked' and c.human) as clicked_human_unique,
      count(*) filter (where c.type = 'clicked' and not c.human) as clicked_machine,
      count(distinct c.message_id) filter (where c.type = 'clicked' and not c.human) as clicked_machine_unique,
      count(*) filter (where c.type = 'bounced') as bounced,
      count(*) filter (where c.type = 'unsubscribed') as unsubscribed,
      count(*) filter (where c.type = 'complained') as complained
    from classified c
  ),
  delivered as (
    select coalesce(sum(pg_catalog.cardinality(o.accepted)), 0) as delivered
    from classified c
    join {{schema}}.outbox o on o.id = c.message_id and o.owner_id = p_owner_id
    where c.type = 'sent'
  ),
  clicks as (
    -- CASE, so the cast only ever sees a JSON number, wherever the planner puts the filters.
    select c.human,
      case when pg_catalog.jsonb_typeof(c.detail -> 'link') = 'number' then (c.detail -> 'link')::numeric end as link,
      case when pg_catalog.jsonb_typeof(c.detail -> 'url') = 'string' then c.detail ->> 'url' end as url
    from classified c
    where c.type = 'clicked'
  ),
  links as (
    select k.link, k.url, count(*) filter (where k.human) as human, count(*) filter (where not k.human) as machine
    from clicks k
    where k.link = pg_catalog.trunc(k.link) and k.url is not null
    group by k.link, k.url
    order by human desc, machine desc, k.link, k.url collate "C"
    limit 100
  )
  select pg_catalog.jsonb_build_object(
    'sent', t.sent,
    'delivered', d.delivered,
    'opened', pg_catalog.jsonb_build_object(
      'human', pg_catalog.jsonb_build_object('unique', t.opened_human_unique, 'total', t.opened_human),
      'machine', pg_catalog.jsonb_build_object('unique', t.opened_machine_unique, 'total', t.opened_machine)),
    'clicked', pg_catalog.jsonb_build_object(
      'human', pg_catalog.jsonb_build_object('unique', t.clicked_human_unique, 'total', t.clicked_human),
      'machine', pg_catalog.jsonb_build_object('unique', t.clicked_machine_unique, 'total', t.clicked_machine),
      'links', coalesce((
        select pg_catalog.jsonb_agg(
          pg_catalog.jsonb_build_object('link', l.link, 'url', l.url, 'human', l.human, 'machine', l.machine)
          order by l.human desc, l.machine desc, l.link, l.url collate "C")
        from links l), '[]'::jsonb)),
    'bounced', t.bounced,
    'unsubscribed', t.unsubscribed,
    'complained', t.complained,
    -- float8 division, as JavaScript divides: both stores give the same number for the same counts.
    'rates', pg_catalog.jsonb_build_object(
      'open', case when t.sent = 0 then 0 else t.opened_human_unique::float8 / t.sent end,
      'click', case when t.sent = 0 then 0 else t.clicked_human_unique::float8 / t.sent end,
      'bounce', case when t.sent = 0 then 0 else t.bounced::float8 / t.sent end,
      'unsubscribe', case when t.sent = 0 then 0 else t.unsubscribed::float8 / t.sent end))
  from totals t, delivered d;
$$;
`;
