/** `auto_explain` of a worker's claim (limit 5, with its owner) on an outbox with N queued: each statement's plan and time. */
import pg from 'pg';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';

const N = Number(process.argv[2] ?? 5000);
const schema = `agent_smtp_claim_${process.pid}`;
// Two connections: the store's calls must not wait for the one this script holds for auto_explain.
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 2 });
const store = createPostgresStore({ client: pool, schema });
await store.migrate();
const email = sampleStoredEmail({ attachments: [] });
for (let done = 0; done < N; done += 1000) await store.outbox.enqueueMany(Array.from({ length: 1000 }, () => newOutboxRecord('owner', { email })));
const c = await pool.connect();
for (let i = 0; i < 10; i++) await store.outbox.claim({ workerId: 'w', limit: 5, leaseMs: 60_000, ownerId: 'owner' });
await c.query(`load 'auto_explain'`);
await c.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on; set auto_explain.log_nested_statements = on; set client_min_messages = log`);
c.on('notice', (n) => console.log(String(n.message).slice(0, 5000)));
let t = performance.now();
await c.query(`select * from "${schema}".claim($1, $2, $3, $4::timestamptz, $5, $6::text[])`, ['w', 5, 60000, null, 'owner', null]);
console.log('claim wall ms (auto_explain on)', (performance.now() - t).toFixed(2));
await c.query(`set auto_explain.log_min_duration = -1`);
const times: number[] = [];
for (let i = 0; i < 50; i++) { t = performance.now(); await c.query(`select * from "${schema}".claim($1, $2, $3, $4::timestamptz, $5, $6::text[])`, ['w', 5, 60000, null, 'owner', null]); times.push(performance.now() - t); }
times.sort((a, b) => a - b);
console.log('claim wall ms p50', times[25]!.toFixed(2), 'p90', times[45]!.toFixed(2));
c.release();
await pool.query(`drop schema "${schema}" cascade`);
await pool.end();
