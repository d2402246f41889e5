/**
 * Round trips per message on the Postgres pipeline: N templated `mailer.enqueue`s, then one worker (concurrency 10)
 * until the sink has them all; per phase, each SQL function's calls and server time (pg_stat_user_functions).
 */
import pg from 'pg';
import { createMailer } from '@agent-smtp/core';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { startSmtpSink } from '@agent-smtp/testing';

const N = Number(process.argv[2] ?? 2000), C = 10;
const schema = `agent_smtp_rt_${process.pid}`;
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 10, options: '-c track_functions=all' });
const store = createPostgresStore({ client: pool, schema });
await store.migrate();
// Client-side latency of each store call the pipeline makes (wall time from call to result, pool wait included).
const timed: Record<string, { n: number; ms: number }> = {};
const wrap = (obj: Record<string, unknown>, names: string[], prefix: string) => {
  for (const name of names) {
    const fn = obj[name] as (...a: unknown[]) => Promise<unknown>;
    obj[name] = async (...args: unknown[]) => {
      const t = performance.now();
      try { return await fn.apply(obj, args); } finally { const e = (timed[`${prefix}.${name}`] ??= { n: 0, ms: 0 }); e.n++; e.ms += performance.now() - t; }
    };
  }
};
wrap(store.outbox as never, ['enqueue', 'claim', 'settle', 'extendLease'], 'outbox');
wrap(store.suppressions as never, ['find'], 'suppressions');
wrap(store.audit as never, ['append'], 'audit');
wrap(store.counters as never, ['increment', 'get'], 'counters');
wrap(store.events as never, ['append'], 'events');
const report = (label: string) => {
  console.log(label, Object.fromEntries(Object.entries(timed).map(([k, v]) => [k, `${(v.n / N).toFixed(2)}/msg, ${(v.ms / v.n).toFixed(2)} ms`])));
  for (const k of Object.keys(timed)) delete timed[k];
};
const sink = await startSmtpSink({ parse: false, maxMessages: 100 });
const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: sink.port, starttls: 'disabled', poolSize: 5 }], store, defaults: { from: 'bench@example.com' }, env: {} });
const stats = async () => {
  await new Promise((r) => setTimeout(r, 1100));
  const { rows } = await pool.query(`select funcname, calls::int, total_time from pg_stat_user_functions where schemaname = $1`, [schema]);
  return new Map(rows.map((r) => [r.funcname as string, { calls: r.calls as number, ms: r.total_time as number }]));
};
const diff = (a: Map<string, { calls: number; ms: number }>, b: Map<string, { calls: number; ms: number }>, wall: number) => {
  const out: Record<string, string> = {};
  for (const [k, v] of b) {
    const before = a.get(k) ?? { calls: 0, ms: 0 };
    const calls = v.calls - before.calls;
    if (calls > 0) out[k] = `${(calls / N).toFixed(2)}/msg, ${((v.ms - before.ms) / calls).toFixed(2)} ms each`;
  }
  return { wall_ms_per_msg: (wall / N).toFixed(2), ...out };
};
const HTML = '<h1>Hi {name}</h1><p>Your order {order} ships {when}.</p>';
for (let i = 0; i < 20; i++) await mailer.send({ to: 'ada@example.com', subject: 'warm', text: 'x' });
const s0 = await stats();
let t = performance.now();
for (let i = 0; i < N; i++) await mailer.enqueue({ to: 'ada@example.com', subject: 'Order {order}', html: HTML, text: 'Hi {name}', variables: { name: `Ada ${i}`, order: i, when: 'soon' } });
const enqueueMs = performance.now() - t;
report('enqueue client');
const s1 = await stats();
const before = sink.stats.messages;
t = performance.now();
const worker = mailer.startWorker({ concurrency: C, pollMs: 50 });
while (sink.stats.messages < before + N) await new Promise((r) => setTimeout(r, 5));
const drainMs = performance.now() - t;
report('drain client');
await worker.stop();
const s2 = await stats();
console.log('enqueue', diff(s0, s1, enqueueMs));
console.log('drain', diff(s1, s2, drainMs));
await mailer.close();
await sink.close();
await pool.query(`drop schema "${schema}" cascade`);
await pool.end();
