/** Client cost of enqueue_many's returned columns: every column against (created, id). */
import pg from 'pg';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';
import { toBatchRecord } from '../../packages/store-postgres/src/outbox-args.js';

const N = 20000, BATCH = 1000;
const schema = `agent_smtp_prof_${process.pid}`;
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 1 });
const store = createPostgresStore({ client: pool, schema });
await store.migrate();
const email = sampleStoredEmail({ attachments: [] });
for (const [round, cols] of [['a', '*'], ['b', 'created, id'], ['c', '*'], ['d', 'created, id']] as const) {
  const batches = Array.from({ length: N / BATCH }, (_, b) =>
    Array.from({ length: BATCH }, (_, j) => newOutboxRecord('bench-owner', { email: { ...email, subject: `Bench ${b * BATCH + j}` }, idempotencyKey: `k-${round}-${b * BATCH + j}` })));
  const cpu = process.cpuUsage();
  const t = performance.now();
  let stringify = 0;
  for (const batch of batches) {
    const s = performance.now();
    const text = JSON.stringify(batch.map(toBatchRecord));
    stringify += performance.now() - s;
    await pool.query(`select ${cols} from "${schema}".enqueue_many($1::jsonb)`, [text]);
  }
  const wall = performance.now() - t;
  const used = process.cpuUsage(cpu);
  console.log(cols.padEnd(12), 'wall ms/batch', (wall / batches.length).toFixed(1), 'cpu ms/batch', ((used.user + used.system) / 1000 / batches.length).toFixed(1), 'stringify', (stringify / batches.length).toFixed(1));
}
await pool.query(`drop schema "${schema}" cascade`);
await pool.end();
