/** Splits enqueueMany's time: JS building, the round trip, and the SQL function's statements (auto_explain). */
import pg from 'pg';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';

const url = process.env.DATABASE_URL!;
const N = Number(process.argv[2] ?? 20000), BATCH = 1000;
const schema = `agent_smtp_prof_${process.pid}`;
const pool = new pg.Pool({ connectionString: url, max: 2 });
const store = createPostgresStore({ client: pool, schema });
await store.migrate();
if (process.argv[4]) for (const ix of process.argv[4].split(',')) await pool.query(`drop index "${schema}".${ix}`);
const email = sampleStoredEmail({ attachments: [] });
let build = 0, call = 0;
const t0 = performance.now();
for (let done = 0; done < N; done += BATCH) {
  let t = performance.now();
  const batch = Array.from({ length: BATCH }, (_, j) => newOutboxRecord('bench-owner', { email: { ...email, subject: `Bench ${done + j}` }, idempotencyKey: `k-${done + j}` }));
  build += performance.now() - t;
  t = performance.now();
  await store.outbox.enqueueMany(batch);
  call += performance.now() - t;
}
const total = performance.now() - t0;
console.log({ N, msg_per_s: Math.round(N / (total / 1000)), build_ms: Math.round(build), call_ms: Math.round(call) });
if (process.argv[3] === 'explain') {
  const c = await pool.connect();
  await c.query(`load 'auto_explain'`);
  await c.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on; set auto_explain.log_nested_statements = on; set auto_explain.log_buffers = on; set client_min_messages = log; set auto_explain.log_timing = on`);
  c.on('notice', (n) => console.log(String(n.message).slice(0, 6000)));
  const batch = Array.from({ length: BATCH }, (_, j) => newOutboxRecord('bench-owner', { email: { ...email, subject: `X ${j}` }, idempotencyKey: `kx-${j}` }));
  const t = performance.now();
  await store.outbox.enqueueMany(batch);
  await c.query(`select * from ${'"' + schema + '"'}.enqueue_many($1::jsonb)`, [JSON.stringify(batch.map((r) => ({ ...r, id: r.id + 'b', idempotencyKey: r.idempotencyKey + 'b', sendAt: r.sendAt?.toISOString() })))]);
  console.log('explain call ms', performance.now() - t);
  c.release();
}
await pool.query(`drop schema "${schema}" cascade`);
await pool.end();
