/**
 * `claim_depth` and `bulk` (issue 13): how the outbox behaves with a deep queue. Helpers come from scenario.ts, which
 * owns the sink and the Postgres connection; this file only measures.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { type Mailer, MemoryStore, type MailStore, type NewOutboxRecord } from '@agent-smtp/core';
import type { Row } from './scenario.js';

export interface ScaleHelpers {
  quick: boolean;
  postgresStore: () => Promise<{ store: MailStore; label: string; client: { query: (text: string, params?: unknown[]) => Promise<{ rows: unknown[] }> }; close: () => Promise<unknown>; schema: string }>;
  startSink: () => Promise<{ waitFor: (n: number, timeoutMs: number) => Promise<number>; count: () => Promise<number>; close: () => Promise<void> }>;
  sdkMailer: (sink: never, store?: MailStore) => Pick<Mailer, 'startWorker' | 'close' | 'enqueueMany'>;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const mb = (bytes: number) => round(bytes / 2 ** 20, 1);
const BATCH = 1_000;
/** Messages the bulk fill lets run ahead of the sink. */
const BACKLOG = 5_000;
const bulkEmail = (i: number) => ({ to: `reader${i}@example.com`, subject: 'Issue {n}', text: 'Hello {name}, this is issue {n}.', variables: { name: `Reader ${i}`, n: '7' }, idempotencyKey: `bulk-${i}` });
const OWNER = 'default';

async function records(n: number): Promise<(i: number) => NewOutboxRecord> {
  const { newOutboxRecord, sampleStoredEmail } = await import('@agent-smtp/testing/store-contract');
  const email = sampleStoredEmail({ attachments: [], bcc: [], to: [{ name: undefined, address: 'ada@example.com', domain: 'example.com' }] });
  // Due times spread over the last hour, so the claim has an order to find, not a heap of ties.
  const start = Date.now() - 3_600_000;
  return (i) => newOutboxRecord(OWNER, { email: { ...email, subject: `Bench ${i}` }, sendAt: new Date(start + Math.floor((i * 3_600_000) / n)), idempotencyKey: `k-${i}` });
}

async function fill(store: MailStore, n: number, record: (i: number) => NewOutboxRecord): Promise<number> {
  const t = performance.now();
  for (let done = 0; done < n; done += BATCH) await store.outbox.enqueueMany(Array.from({ length: Math.min(BATCH, n - done) }, (_, j) => record(done + j)));
  return (performance.now() - t) / 1000;
}

/** Times `claims` claims of 10 (each takes the next 10 oldest): the first, and the median. */
async function timeClaims(store: MailStore, claims: number) {
  const times: number[] = [];
  let claimed = 0;
  for (let i = 0; i < claims; i++) {
    const t = performance.now();
    claimed += (await store.outbox.claim({ workerId: 'bench', leaseMs: 600_000, limit: 10, ownerId: OWNER })).length;
    times.push(performance.now() - t);
  }
  if (claimed !== claims * 10) throw new Error(`claimed ${claimed} of ${claims * 10}`);
  const sorted = [...times].sort((a, b) => a - b);
  return { first: round(times[0]!, 3), median: round(sorted[Math.floor(sorted.length / 2)]!, 3) };
}

/** The plan of the claim's queued select as a worker's custom plan sees it (its owner, no ids), node lines only. */
type Queryable = Awaited<ReturnType<ScaleHelpers['postgresStore']>>['client'];

async function claimPlan(client: Queryable, schema: string): Promise<string> {
  const { rows } = await client.query(
    `explain select o.id from "${schema}".outbox o where o.status = 'queued' and o.next_attempt_at <= now() and o.owner_id = '${OWNER}' ` +
      `order by o.next_attempt_at, o.created_at, o.id limit 10 for update skip locked`,
  );
  return (rows as { 'QUERY PLAN': string }[])
    .map((r) => r['QUERY PLAN'].trim().replace(/^->\s*/, '').replace(/\s+\(cost=.*$/, ''))
    .filter((line) => !/^(Filter|Index Cond|Sort Key|Presorted Key|Recheck Cond):/.test(line))
    .join(' > ');
}

export async function claimDepth(h: ScaleHelpers): Promise<Row> {
  const N = h.quick ? 10_000 : 100_000;
  const CLAIMS = 7;
  const record = await records(N);

  const memory = new MemoryStore({ maxMessages: N * 2 });
  const memoryFill = await fill(memory, N, record);
  const mem = await timeClaims(memory, CLAIMS);

  const db = await h.postgresStore();
  try {
    const server = !db.label.startsWith('PGlite');
    // On a server, autovacuum may ANALYZE a table this size within a minute: off for the table, so "fresh" is fresh.
    if (server) await db.client.query(`alter table "${db.schema}".outbox set (autovacuum_enabled = false)`);
    const pgFill = await fill(db.store, N, record);
    const planFresh = await claimPlan(db.client, db.schema);
    const fresh = await timeClaims(db.store, CLAIMS);
    await db.client.query(`analyze "${db.schema}".outbox`);
    const planAnalyzed = await claimPlan(db.client, db.schema);
    const analyzed = await timeClaims(db.store, CLAIMS);
    return {
      figure: mem.first, baseline: null, ratio: null, unit: 'ms, one claim of 10 (first of 7; MemoryStore)', n: N, concurrency: 1,
      memory_first_ms: mem.first, memory_median_ms: mem.median, memory_fill_s: round(memoryFill),
      pg_store: db.label, pg_fill_s: round(pgFill),
      pg_fresh_first_ms: fresh.first, pg_fresh_median_ms: fresh.median, pg_fresh_plan: planFresh,
      pg_analyzed_first_ms: analyzed.first, pg_analyzed_median_ms: analyzed.median, pg_analyzed_plan: planAnalyzed,
      target_ms: 5,
    };
  } finally {
    await db.close();
  }
}

/** One store and one size, in this process: mailer.enqueueMany in batches while a worker drains into the sink. */
export async function bulkOne(h: ScaleHelpers, storeKind: string, n: number): Promise<Row> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  const db = storeKind === 'postgres' ? await h.postgresStore() : undefined;
  const store = db?.store ?? new MemoryStore();
  const sink = await h.startSink();
  const mailer = h.sdkMailer(sink as never, store);
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;
  peak = rssBefore;
  try {
    const t = performance.now();
    const worker = mailer.startWorker({ concurrency: 10, pollMs: 50 });
    // Through the SDK's bulk API, with the backpressure a bulk sender applies: at most BACKLOG messages queued ahead
    // of what the sink has received, so the figure is what the SDK keeps per message, not a queue of n.
    let maxBacklog = 0;
    const inputs = async function* () {
      for (let i = 0; i < n; i++) {
        if (i % BATCH === 0) {
          for (let backlog = i - (await sink.count()); backlog > BACKLOG; backlog = i - (await sink.count())) await new Promise((r) => setTimeout(r, 20));
          maxBacklog = Math.max(maxBacklog, i - (await sink.count()));
        }
        yield bulkEmail(i);
      }
    };
    const t0 = performance.now();
    const summary = await mailer.enqueueMany(inputs(), { batchSize: BATCH });
    const enqueueSeconds = (performance.now() - t0) / 1000;
    if (summary.queued !== n) throw new Error(`queued ${summary.queued} of ${n}: ${JSON.stringify(summary)}`);
    await sink.waitFor(n, h.quick ? 50_000 : 1_500_000);
    const seconds = (performance.now() - t) / 1000;
    await worker.stop();
    return {
      figure: mb(peak), baseline: null, ratio: null, unit: 'MB peak RSS', n, concurrency: 10, store: db?.label ?? 'memory',
      rss_before_mb: mb(rssBefore), msg_per_s: Math.round(n / seconds), seconds: round(seconds), enqueue_s: round(enqueueSeconds), max_backlog: maxBacklog,
    };
  } finally {
    clearInterval(sampler);
    await mailer.close();
    await sink.close();
    await db?.close();
  }
}

/** Each store at both sizes, each in a process of its own (so one size's heap does not colour the other's peak). */
export async function bulk(h: ScaleHelpers): Promise<Row> {
  const [small, large] = h.quick ? [1_000, 10_000] : [10_000, 100_000];
  const out: Record<string, unknown> = {};
  for (const kind of ['memory', 'postgres']) {
    for (const n of [small, large]) {
      const row = await child(['bulk_one', h.quick ? '1' : '0', '0', kind, String(n)]);
      const tag = `${kind}_${n}`;
      out[`${tag}_peak_rss_mb`] = row.figure;
      out[`${tag}_rss_before_mb`] = row.rss_before_mb;
      out[`${tag}_msg_per_s`] = row.msg_per_s;
      if (kind === 'postgres') out.pg_store = row.store;
    }
  }
  const worst = Math.max(...Object.entries(out).filter(([k]) => k.endsWith(`_${large}_peak_rss_mb`)).map(([, v]) => v as number));
  return {
    figure: worst, baseline: null, ratio: null, unit: `MB peak RSS, worst store at ${large}`, n: large, concurrency: 10, sizes: `${small},${large}`,
    ...out, target_mb: 200,
  };
}

function child(args: string[]): Promise<Row> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--expose-gc', '--conditions=@agent-smtp/source', '--import', 'tsx', new URL('./scenario.ts', import.meta.url).pathname, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let last = '';
    createInterface({ input: proc.stdout! }).on('line', (line) => { if (line.trim()) last = line; });
    proc.on('close', (code) => {
      if (code === 0) {
        try { return resolve(JSON.parse(last) as Row); } catch { /* fall through */ }
      }
      reject(new Error(`${args.join(' ')}: exit ${code}`));
    });
  });
}
