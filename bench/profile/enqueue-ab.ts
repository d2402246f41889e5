/**
 * A/B of enqueueMany in one process, alternating: "before" (migration 005's enqueue_many, outbox_owner_created_idx
 * back, every column sent back) against "after" (the current store). `enqueue-ab.ts [N per round] [rounds]`.
 */
import pg from 'pg';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';
import { migration005 } from '../../packages/store-postgres/src/migrations/005-approval-audit-policies.js';
import { toBatchRecord } from '../../packages/store-postgres/src/outbox-args.js';
import { toOutboxRecord } from '../../packages/store-postgres/src/row-mappers.js';

const N = Number(process.argv[2] ?? 20000), ROUNDS = Number(process.argv[3] ?? 3), BATCH = 1000;
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 1 });
const email = sampleStoredEmail({ attachments: [] });
const oldFunction = (q: string) => {
  const start = migration005.indexOf('create function {{schema}}.enqueue_many');
  const end = migration005.indexOf('$$;', start) + 3;
  return migration005.slice(start, end).replace('create function', 'create or replace function').replaceAll('{{schema}}', q);
};
async function round(kind: 'before' | 'after', r: number) {
  const schema = `agent_smtp_ab_${kind}_${process.pid}_${r}`;
  const q = `"${schema}"`;
  const store = createPostgresStore({ client: pool, schema });
  await store.migrate();
  if (kind === 'before') {
    await pool.query(oldFunction(q));
    await pool.query(`create index outbox_owner_created_idx on ${q}.outbox (owner_id, created_at)`);
  }
  const t = performance.now();
  for (let done = 0; done < N; done += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, j) => newOutboxRecord('bench-owner', { email: { ...email, subject: `Bench ${done + j}` }, idempotencyKey: `k-${done + j}` }));
    if (kind === 'after') await store.outbox.enqueueMany(batch);
    else (await pool.query(`select * from ${q}.enqueue_many($1::jsonb)`, [JSON.stringify(batch.map(toBatchRecord))])).rows.map((row) => ({ created: row.created === true, record: toOutboxRecord(row) }));
  }
  const rate = Math.round(N / ((performance.now() - t) / 1000));
  await pool.query(`drop schema ${q} cascade`);
  return rate;
}
const results: { before: number[]; after: number[] } = { before: [], after: [] };
const orders: ReadonlyArray<readonly ['before' | 'after', 'before' | 'after']> = [['before', 'after'], ['after', 'before']];
for (let r = 0; r < ROUNDS; r++) for (const kind of orders[r % 2]!) results[kind].push(await round(kind, r));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(JSON.stringify({ n: N, rounds: ROUNDS, before_msg_per_s: results.before, after_msg_per_s: results.after, ratio_of_medians: +(median(results.after) / median(results.before)).toFixed(2) }));
await pool.end();
