/**
 * A sender process for the policy daily-limit test: one `createMailer` with POLICY (JSON) over the Postgres store in
 * SCHEMA, sending to the sink at SMTP_PORT. Prints "ready"; on a line "go" on stdin fires SENDS concurrent `send`s,
 * prints one JSON line with what each came to ({ sent, refusals: [{ code, retryAt }], other: [messages] }), closes
 * and exits.
 */
import { createInterface } from 'node:readline';
import { AgentSmtpError, createMailer, PolicyError } from '@agent-smtp/core';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: Number(env.PG_POOL ?? 10) });
const store = createPostgresStore({ client: pool, schema: env.SCHEMA! });
const mailer = createMailer({
  servers: [{ name: 'sink', host: '127.0.0.1', port: Number(env.SMTP_PORT), starttls: 'disabled', poolSize: 4, maxRetries: 0 }],
  store,
  env: {},
  defaults: { from: 'agent@example.com' },
  policy: JSON.parse(env.POLICY!),
  pool: { maxRetryWaitMs: 0 },
});

process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line !== 'go') continue;
  const results = await Promise.allSettled(
    Array.from({ length: Number(env.SENDS) }, (_, i) => mailer.send({ to: 'ada@example.com', subject: `${env.NAME}-${i}`, text: 'x' })),
  );
  const report = { sent: 0, refusals: [] as { code: string; retryAt: string | undefined }[], other: [] as string[] };
  for (const result of results) {
    if (result.status === 'fulfilled') {
      if (result.value.status === 'sent') report.sent++;
      else report.other.push(`status ${result.value.status}`);
    } else if (PolicyError.isInstance(result.reason)) {
      report.refusals.push({ code: result.reason.code, retryAt: result.reason.retryAt?.toISOString() });
    } else {
      report.other.push(AgentSmtpError.isInstance(result.reason) ? `${result.reason.code}: ${result.reason.message}` : String(result.reason));
    }
  }
  await mailer.close();
  await pool.end();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  break;
}
lines.close();
