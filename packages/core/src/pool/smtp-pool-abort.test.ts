import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { SmtpError } from '../errors/smtp-error.js';
import { neverGreets, poolMessage, settlement, until, usePoolResources } from './__fixtures__/pool-fixtures.js';

const resources = useTestResources();
const pools = usePoolResources();

const refuse421 = { connect: () => ({ code: 421, message: '4.3.2 Service not available' }) };

/** A pool whose only server answers 421 and then backs off for 24 s, with the budget to wait that out. */
async function poolWaitingOutBackoff() {
  const sink = await resources.sink({ behavior: refuse421 });
  const pool = pools.pool({
    servers: [{ ...sink.serverConfig(), name: 'refusing', maxRetries: 1 }],
    backoff: { baseMs: 24_000, maxMs: 24_000 },
    maxRetryWaitMs: 60_000,
  });
  return { sink, pool };
}

async function poolHungAtGreeting() {
  const peer = await pools.peer(neverGreets());
  const pool = pools.pool({
    servers: [{ name: 'hung', host: '127.0.0.1', port: peer.port, starttls: 'disabled', timeouts: { connectionMs: 60_000, greetingMs: 60_000 }, maxRetries: 0 }],
  });
  return { peer, pool };
}

describe('SmtpPool send with an abort signal', () => {
  it('rejects at once with ABORTED, nothing sent, when aborted while waiting out a backoff', async () => {
    const { sink, pool } = await poolWaitingOutBackoff();
    const controller = new AbortController();
    const sending = pool.send(poolMessage(), { signal: controller.signal });
    await until(() => pool.status()[0]!.state === 'backoff', 'the server to back off');
    let abortedAt = 0;
    const settled = settlement(sending, () => abortedAt);
    abortedAt = Date.now();
    controller.abort();
    const { error, afterMs } = await settled;
    expect(error).toBeInstanceOf(SmtpError);
    expect(error).toMatchObject({ code: 'ABORTED', retryable: true });
    expect((error as SmtpError).attempts.map((a) => a.responseCode)).toEqual([421]);
    expect(afterMs).toBeLessThan(1_000);
    expect(sink.messages).toHaveLength(0);
  });

  it('rejects at once with ABORTED when aborted while the server has not greeted', async () => {
    const { peer, pool } = await poolHungAtGreeting();
    const controller = new AbortController();
    const sending = pool.send(poolMessage(), { signal: controller.signal });
    await until(() => peer.accepted.length === 1, 'the connection');
    let abortedAt = 0;
    const settled = settlement(sending, () => abortedAt);
    abortedAt = Date.now();
    controller.abort();
    const { error, afterMs } = await settled;
    expect(error).toMatchObject({ code: 'ABORTED', retryable: true, attempts: [] });
    expect(afterMs).toBeLessThan(1_000);
    // The connection that carried the aborted send is closed, not left to its 60 s greeting timeout.
    await until(() => peer.accepted[0]!.destroyed || peer.closedByClient === 1, 'the client to close its connection');
    expect(pool.status()[0]!.healthy).toBe(true);
  });

  it('sends nothing and opens no connection with a signal already aborted', async () => {
    const sink = await resources.sink();
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'only' }] });
    const error = await pool.send(poolMessage(), { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ABORTED', retryable: true });
    expect(sink.stats.connections).toBe(0);
  });

  it('ends as unknown, not ABORTED, when aborted after the whole message was handed over', async () => {
    const sink = await resources.sink({ behavior: { data: () => 'hang' } });
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'holding' }] });
    const controller = new AbortController();
    const sending = pool.send(poolMessage(), { signal: controller.signal });
    await sink.waitForMessages(1);
    controller.abort();
    const result = await sending;
    expect(result.status).toBe('unknown');
    expect(result.error).toMatchObject({ code: 'ABORTED', retryable: false });
    expect(result.attempts.map((a) => a.failure)).toEqual(['ambiguous']);
    expect(sink.messages).toHaveLength(1);
  });
});

describe('SmtpPool close', () => {
  it('with force settles a send hung at greeting and one waiting out a 24 s backoff within a second', async () => {
    const hung = await poolHungAtGreeting();
    const waiting = await poolWaitingOutBackoff();
    const hungSend = hung.pool.send(poolMessage());
    const waitingSend = waiting.pool.send(poolMessage());
    await until(() => hung.peer.accepted.length === 1, 'the hung connection');
    await until(() => waiting.pool.status()[0]!.state === 'backoff', 'the backoff');

    let closedAt = 0;
    const settled = Promise.all([settlement(hungSend, () => closedAt), settlement(waitingSend, () => closedAt)]);
    closedAt = Date.now();
    await Promise.all([hung.pool.close({ force: true }), waiting.pool.close({ force: true })]);
    const [a, b] = await settled;
    expect(a.error).toMatchObject({ code: 'ABORTED', retryable: true });
    expect(b.error).toMatchObject({ code: 'ABORTED', retryable: true });
    expect((b.error as SmtpError).attempts.map((x) => x.responseCode)).toEqual([421]);
    expect(a.afterMs).toBeLessThan(1_000);
    expect(b.afterMs).toBeLessThan(1_000);
    await until(() => hung.peer.closedByClient === 1 || hung.peer.accepted[0]!.destroyed, 'the hung connection to be closed by the client');
    // A send that reaches a closed pool was not sent: retryable, so a worker puts it back in the queue.
    await expect(hung.pool.send(poolMessage())).rejects.toMatchObject({ code: 'ABORTED', retryable: true });
  });

  it('with force ends a send whose whole message was handed over as unknown', async () => {
    const sink = await resources.sink({ behavior: { data: () => 'hang' } });
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'holding' }] });
    const sending = pool.send(poolMessage());
    await sink.waitForMessages(1);
    await pool.close({ force: true });
    const result = await sending;
    expect(result.status).toBe('unknown');
    expect(result.error).toMatchObject({ code: 'ABORTED', retryable: false });
    expect(sink.messages).toHaveLength(1);
  });

  it('without force wakes a send waiting out a backoff with ABORTED rather than leaving it asleep', async () => {
    const { pool } = await poolWaitingOutBackoff();
    const sending = pool.send(poolMessage());
    await until(() => pool.status()[0]!.state === 'backoff', 'the backoff');
    let closedAt = 0;
    const settled = settlement(sending, () => closedAt);
    closedAt = Date.now();
    await pool.close();
    const { error, afterMs } = await settled;
    expect(error).toMatchObject({ code: 'ABORTED', retryable: true });
    expect(afterMs).toBeLessThan(1_000);
  });

  it('with force leaves nothing that keeps the process alive (a child process exits by itself)', async () => {
    const hung = await pools.peer(neverGreets());
    const refusing = await resources.sink({ behavior: refuse421 });
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./__fixtures__/force-close-child.ts', import.meta.url))], {
      env: { ...process.env, HUNG_PORT: String(hung.port), REFUSING_PORT: String(refusing.port) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // tsx compiles on start; a loaded machine may take a while.
      await until(() => stdout.includes('sending'), `the child to start sending (stderr: ${stderr})`, 30_000);
      await until(() => hung.accepted.length === 1 && refusing.stats.rejected >= 1, 'the hung connection and the 421', 30_000);
      const closedAt = Date.now();
      child.stdin.write('close\n');
      const code = await Promise.race([exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 10_000).unref())]);
      // Without a forced close the hung greeting (60 s) and the backoff (24 s) would hold it far longer.
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(Date.now() - closedAt).toBeLessThan(10_000);
      const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as { backoffState: string; results: { code?: string; retryable?: boolean; settledAfterMs: number }[] };
      expect(report.backoffState).toBe('backoff');
      expect(report.results.map((r) => [r.code, r.retryable])).toEqual([
        ['ABORTED', true],
        ['ABORTED', true],
      ]);
      expect(report.results.every((r) => r.settledAfterMs < 1_000)).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
