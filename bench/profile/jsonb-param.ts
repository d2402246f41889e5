/** What the batch parameter costs the server before enqueue_many runs: text, json and jsonb input of the same batch. */
import pg from 'pg';
import { newOutboxRecord, sampleStoredEmail } from '@agent-smtp/testing/store-contract';
import { toBatchRecord } from '../../packages/store-postgres/src/outbox-args.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 1 });
const email = sampleStoredEmail({ attachments: [] });
const text = JSON.stringify(Array.from({ length: 1000 }, (_, j) => toBatchRecord(newOutboxRecord('o', { email: { ...email, subject: `B ${j}` }, idempotencyKey: `k-${j}` }))));
console.log('batch bytes', text.length);
const columns = `id text, "ownerId" text, "agentId" text, "idempotencyKey" text, fingerprint text, "messageId" text, email jsonb, "sendAt" timestamptz, "delayMs" bigint, "maxAttempts" integer, tags text[], metadata jsonb, approval jsonb`;
const queries: Record<string, string> = {
  text: `select length($1::text) > 0`,
  json_in: `select json_typeof($1::json)`,
  jsonb_in: `select jsonb_typeof($1::jsonb)`,
  json_recordset: `select count(*) from json_to_recordset($1::json) as x(${columns})`,
  jsonb_recordset: `select count(*) from jsonb_to_recordset($1::jsonb) as x(${columns})`,
};
for (const cast of [...Object.keys(queries), ...Object.keys(queries)]) {
  const times: number[] = [];
  for (let i = 0; i < 30; i++) { const t = performance.now(); await pool.query(queries[cast]!, [text]); times.push(performance.now() - t); }
  times.sort((a, b) => a - b);
  console.log(cast.padEnd(6), 'p50 ms', times[15]!.toFixed(2));
}
await pool.end();
