/**
 * Where enqueueMany's time goes: batches built up front, then per batch the client's wall time against the SQL
 * function's server time (pg_stat_user_functions). `enqueue-split.ts [N] [indexes to drop,...] [sync_off]`.
 */
import pg from 'pg';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';

const url = process.env.DATABASE_URL!;
const N = Number(process.argv[2] ?? 20000), BATCH = 1000;
const schema = `agent_smtp_prof_${process.pid}`;
const pool = new pg.Pool({ connectionString: url, max: 1, options: `-c track_functions=all${process.argv[4] ? ' -c synchronous_commit=off' : ''}` });
const store = createPostgresStore({ client: pool, schema });
await store.migrate();
if (process.argv[3]) for (const ix of process.argv[3].split(',')) await pool.query(`drop index "${schema}".${ix}`);
const email = sampleStoredEmail({ attachments: [] });
const batches = Array.from({ length: N / BATCH }, (_, b) =>
  Array.from({ length: BATCH }, (_, j) => newOutboxRecord('bench-owner', { email: { ...email, subject: `Bench ${b * BATCH + j}` }, idempotencyKey: `k-${b * BATCH + j}` })));
const cpu = process.cpuUsage();
const t = performance.now();
for (const batch of batches) await store.outbox.enqueueMany(batch);
const wall = performance.now() - t;
const used = process.cpuUsage(cpu);
await new Promise((r) => setTimeout(r, 600));
const stat = await pool.query(`select calls, total_time from pg_stat_user_functions where schemaname = $1 and funcname = 'enqueue_many'`, [schema]);
const f = stat.rows[0];
console.log(JSON.stringify({ N, client_ms_per_batch: +(wall / batches.length).toFixed(1), client_cpu_ms_per_batch: +((used.user + used.system) / 1000 / batches.length).toFixed(1), server_ms_per_batch: f ? +(f.total_time / f.calls).toFixed(1) : null, calls: f?.calls, msg_per_s: Math.round(N / (wall / 1000)) }));
await pool.query(`drop schema "${schema}" cascade`);
await pool.end();
