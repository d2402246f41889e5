import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// Needs a real PostgreSQL server: PGlite has no backends to terminate and no second process to share them with.
// .ci/run sets DATABASE_URL when a server answers at 127.0.0.1:5432.
const url = process.env.DATABASE_URL;
const workerScript = fileURLToPath(new URL('./support/readme-worker-process.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const TOTAL = 1_000;

describe.skipIf(!url)('a README worker whose PostgreSQL connections are terminated mid-drain (skipped: DATABASE_URL is not set)', () => {
  let pool: pg.Pool;
  let schema: string;
  let sink: SmtpSink;
  let mailer: Mailer;
  let child: ChildProcess | undefined;

  beforeEach(async () => {
    // The test's own pool must survive the terminations too, although it only ever targets the worker's backends.
    pool = new pg.Pool({ connectionString: url, max: 4 });
    pool.on('error', () => {});
    schema = `t_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const store = createPostgresStore({ client: pool, schema });
    await store.migrate();
    sink = await startSmtpSink({ parse: false });
    mailer = createMailer({ servers: [sink.serverConfig()], store, env: {}, defaults: { from: 'agent@example.com' } });
  });

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    child = undefined;
    await mailer.close();
    await sink.close();
    await pool.query(`drop schema if exists ${schema} cascade`);
    await pool.end();
  });

  it(`keeps draining through repeated pg_terminate_backend of its connections: ${TOTAL} rows sent, each message delivered exactly once`, async () => {
    for (let i = 0; i < TOTAL; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, TOTAL - i) }, (_, j) => mailer.enqueue({ to: 'ada@example.com', subject: `drop-${i + j}`, text: 'x' })),
      );
    }

    // A name of its own, so the terminations hit only the worker's backends, never this test's pool.
    const applicationName = `agent_smtp_worker_${schema}`;
    const workerUrl = new URL(url!);
    workerUrl.searchParams.set('application_name', applicationName);
    child = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', workerScript], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, DATABASE_URL: workerUrl.toString(), SCHEMA: schema, SMTP_PORT: String(sink.port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
    const exited = once(child, 'exit');
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    expect(line).toBe('ready');

    const unfinished = async (): Promise<number> => {
      const { rows } = await pool.query(`select count(*)::int as n from ${schema}.outbox where status in ('queued', 'sending')`);
      return rows[0].n as number;
    };
    const alive = (): boolean => child!.exitCode === null && child!.signalCode === null;

    // Terminate every backend of the worker, again and again, for as long as messages are left: the rounds land
    // on claims, settles, heartbeats and idle pooled connections alike. Each round counts only if it found backends
    // to kill while mail was still unsent, so a drain that finished first cannot pass for a test of terminations.
    const rounds: { terminated: number; unfinished: number }[] = [];
    const deadline = Date.now() + 120_000;
    for (;;) {
      const left = await unfinished();
      if (left === 0) break;
      if (!alive()) throw new Error(`the worker died while ${left} messages were unsent:\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out with ${left} messages unsent; worker stderr:\n${stderr}`);
      const { rows } = await pool.query(`select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = $1`, [
        applicationName,
      ]);
      if (rows[0].n > 0) rounds.push({ terminated: rows[0].n as number, unfinished: left });
      // The next round waits for the drain to move by a claim's worth (10) or 1 s: terminating every 100 ms regardless
      // starves a worker whose every message needs a few statements, and the test would time the kill rate, not the
      // recovery. Rounds still land on claims, settles, heartbeats and idle connections alike.
      const roundEnds = Date.now() + 1_000;
      while (Date.now() < roundEnds && (await unfinished()) > left - 10) await new Promise((resolve) => setTimeout(resolve, 50));
    }

    expect(rounds.length, JSON.stringify(rounds)).toBeGreaterThanOrEqual(3);
    expect(alive(), stderr).toBe(true);

    const { rows } = await pool.query(`select message_id, status, attempt, possible_duplicate from ${schema}.outbox`);
    expect(rows).toHaveLength(TOTAL);
    expect(rows.filter((r: { status: string }) => r.status !== 'sent')).toEqual([]);

    // Every row is settled, so nothing more can be sent: stop the worker, then count what the sink received.
    child.kill('SIGTERM');
    await exited;
    expect(child.exitCode, stderr).toBe(0);
    const received = new Map<string, number>();
    for (const message of sink.messages) {
      const id = /^Message-ID: (.+)$/im.exec(message.raw.toString('latin1'))![1]!.trim();
      received.set(id, (received.get(id) ?? 0) + 1);
    }
    expect(sink.messages).toHaveLength(TOTAL);
    expect([...received.values()].filter((n) => n !== 1)).toEqual([]);
    expect(new Set(rows.map((r: { message_id: string }) => r.message_id))).toEqual(new Set(received.keys()));

    // The rows' own history agrees: one sent event each and no takeover after a lost lease. A claim more than one
    // per message is a retry after a failed SMTP attempt (a loaded machine can time a connection out), and each
    // such retry has its own retry event.
    const events = await pool.query(
      `select type, count(*)::int as n, count(distinct message_id)::int as messages from ${schema}.events where type in ('claimed', 'reclaimed', 'retry', 'sent') group by type order by type`,
    );
    const byType = Object.fromEntries((events.rows as { type: string; n: number; messages: number }[]).map((r) => [r.type, r]));
    expect(byType.reclaimed).toBeUndefined();
    expect(byType.sent).toEqual({ type: 'sent', n: TOTAL, messages: TOTAL });
    expect(byType.claimed!.messages).toBe(TOTAL);
    expect(byType.claimed!.n - TOTAL).toBe(byType.retry?.n ?? 0);
    expect(rows.filter((r: { possible_duplicate: boolean }) => r.possible_duplicate)).toEqual([]);

    const audit = await pool.query(`select count(*)::int as n from ${schema}.audit where action = 'send'`);
    const killed = rounds.reduce((sum, r) => sum + r.terminated, 0);
    const retried = rows.filter((r: { attempt: number }) => r.attempt > 1).length;
    const flagged = rows.filter((r: { possible_duplicate: boolean }) => r.possible_duplicate).length;
    console.info(`connection drops: ${rounds.length} rounds, ${killed} backends terminated; ${retried} rows needed >1 attempt, ${flagged} flagged possibleDuplicate; ${audit.rows[0].n}/${TOTAL} sends audited`);
  }, 180_000);
});
