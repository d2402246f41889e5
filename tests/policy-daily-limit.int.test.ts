import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createMailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';

// A daily limit counted in the store holds across processes: two processes, one Postgres (PGlite is in-process only,
// so this needs a server; .ci/run sets DATABASE_URL when one answers at 127.0.0.1:5432).
const url = process.env.DATABASE_URL;
const senderScript = fileURLToPath(new URL('./support/policy-send-process.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const DAILY_LIMIT = 100;
const SENDS_PER_PROCESS = 250;
const POLICY = { dailyLimit: DAILY_LIMIT };

interface Report {
  sent: number;
  refusals: { code: string; retryAt: string | undefined }[];
  other: string[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(!url)('policy daily limit on a real PostgreSQL server, two processes (skipped: DATABASE_URL is not set)', () => {
  it(`${2 * SENDS_PER_PROCESS} concurrent sends from 2 processes under dailyLimit ${DAILY_LIMIT}: exactly ${DAILY_LIMIT} reach the server`, async () => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    const schema = `pol_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    cleanups.push(async () => {
      await pool.query(`drop schema if exists ${schema} cascade`);
      await pool.end();
    });
    const store = createPostgresStore({ client: pool, schema });
    await store.migrate();
    const sink: SmtpSink = await startSmtpSink({ parse: false });
    cleanups.push(() => sink.close());

    const children = ['a', 'b'].map((name) => {
      const child: ChildProcess = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', senderScript], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH, DATABASE_URL: url, SCHEMA: schema, SMTP_PORT: String(sink.port), POLICY: JSON.stringify(POLICY), SENDS: String(SENDS_PER_PROCESS), NAME: name },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      cleanups.push(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await once(child, 'exit');
        }
      });
      return { child, lines: createInterface({ input: child.stdout! }) };
    });
    const nextLine = (lines: Interface) => once(lines, 'line').then(([line]) => line as string);
    const ready = await Promise.all(children.map(({ lines }) => nextLine(lines)));
    expect(ready).toEqual(['ready', 'ready']);

    // Both fire together, so their sends race for the same counter.
    const before = new Date();
    const reportsRead = children.map(({ lines }) => nextLine(lines));
    for (const { child } of children) child.stdin!.write('go\n');
    const reports = (await Promise.all(reportsRead)).map((line) => JSON.parse(line) as Report);
    await Promise.all(children.map(({ child }) => (child.exitCode === null ? once(child, 'exit') : undefined)));
    expect(children.map(({ child }) => child.exitCode)).toEqual([0, 0]);

    // Each child closed its mailer before reporting; once the sink saw every connection close, its count is final.
    const deadline = Date.now() + 10_000;
    while (sink.stats.closed < sink.stats.connections && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sink.stats.closed).toBe(sink.stats.connections);

    expect(reports.flatMap((r) => r.other)).toEqual([]);
    expect(reports.reduce((n, r) => n + r.sent, 0)).toBe(DAILY_LIMIT);
    expect(sink.stats.messages).toBe(DAILY_LIMIT);
    expect(sink.messages).toHaveLength(DAILY_LIMIT);
    expect(new Set(sink.messages.map((m) => m.raw.toString('latin1').match(/^Subject: (.+)$/m)?.[1])).size).toBe(DAILY_LIMIT);

    const refusals = reports.flatMap((r) => r.refusals);
    expect(refusals).toHaveLength(2 * SENDS_PER_PROCESS - DAILY_LIMIT);
    const nextMidnight = new Date(Date.UTC(before.getUTCFullYear(), before.getUTCMonth(), before.getUTCDate() + 1)).toISOString();
    expect(new Set(refusals.map((r) => `${r.code} ${r.retryAt}`))).toEqual(new Set([`POLICY_DAILY_LIMIT ${nextMidnight}`]));

    // The store's counter says the same, read through a mailer of this process under the same policy.
    const reader = createMailer({ servers: [sink.serverConfig()], store, env: {}, policy: POLICY });
    cleanups.push(() => reader.close());
    expect(await reader.describeLimits()).toContain(`0 of ${DAILY_LIMIT} emails left today (resets ${nextMidnight})`);
    // And the table itself: one daily counter at exactly the limit (no per-minute limit, so no other counter).
    const counters = await pool.query(`select owner_id, time_window, value::int as value from ${schema}.counters`);
    expect(counters.rows).toEqual([{ owner_id: 'default', time_window: before.toISOString().slice(0, 10), value: DAILY_LIMIT }]);
    const { rows } = await pool.query(`select status, count(*)::int as n from ${schema}.outbox group by status`);
    expect(rows).toEqual([{ status: 'sent', n: DAILY_LIMIT }]);
  }, 60_000);
});
