import { createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, type SmtpSinkOptions, startSmtpSink } from '@agent-smtp/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { DATABASE_URL, pgliteStore, SERVER_SKIP_REASON, serverStore, type TestDatabase } from './test-databases.js';

// The send path on a real Postgres store: what the database can hold and whose clock decides when mail is due.

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const resource of open.splice(0).reverse()) await resource.close();
});

async function setup(db: () => Promise<TestDatabase>, sinkOptions: SmtpSinkOptions = {}, leaseMs = 1_000) {
  const database = await db();
  open.push(database);
  const sink: SmtpSink = await startSmtpSink(sinkOptions);
  open.push(sink);
  const mailer: Mailer = createMailer({
    servers: [sink.serverConfig({ name: 'sink', maxRetries: 0 })],
    store: database.store,
    defaults: { from: 'agent@example.com' },
    env: {},
    pool: { maxRetryWaitMs: 0, backoff: { baseMs: 10, maxMs: 20 } },
    outbox: { maxAttempts: 10, retry: { baseMs: 1_000, maxMs: 1_000 }, leaseMs },
  });
  open.push(mailer);
  return { database, sink, mailer };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Moves this process's clock (Date only; timers keep real time) by `offsetMs`, as a skewed host would have it. */
function skewAppClock(offsetMs: number): { restore(): void } {
  const RealDate = Date;
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + offsetMs);
      else super(...(args as [string]));
    }
    static override now(): number {
      return RealDate.now() + offsetMs;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
  return { restore: () => void (globalThis.Date = RealDate) };
}

const databases: [string, () => Promise<TestDatabase>, boolean][] = [
  ['PGlite', pgliteStore, true],
  ['server', () => serverStore(), Boolean(DATABASE_URL)],
];

for (const [name, db, available] of databases) {
  describe.skipIf(!available)(`server replies the database cannot hold as they are (${name}${available ? '' : `: ${SERVER_SKIP_REASON}`})`, () => {
    // A NUL in a 250 reply made every settle fail: the record stayed `sending` and each lease expiry sent it again.
    const replies = ['2.0.0 Ok: queued as \u0000ABC', '2.0.0 Ok \ud800 lone surrogate', `2.0.0 ${'x'.repeat(100_000)}`, '2.0.0 \udc00\u0000\ud83d'];
    it('each is sent once and recorded; none is taken over', async () => {
      const { database, sink, mailer } = await setup(db, { behavior: { data: (message) => ({ code: 250, message: replies[Number(message.subject!.slice(6))]! }) } }, 300);
      // Claims the running worker makes, so the test can wait for one made after the leases would have expired.
      const claim = database.store.outbox.claim.bind(database.store.outbox);
      const claimStarts: number[] = [];
      database.store.outbox.claim = async (options) => {
        const startedAt = Date.now();
        const claimed = await claim(options);
        claimStarts.push(startedAt);
        return claimed;
      };
      mailer.startWorker({ pollMs: 20, leaseMs: 300 });
      for (const [i] of replies.entries()) {
        const result = await mailer.send({ to: 'ada@example.com', subject: `Reply ${i}`, text: 'x' });
        expect(result.status).toBe('sent');
        const report = await mailer.getStatus(result.id);
        expect(report).toMatchObject({ status: 'sent', attempt: 1, possibleDuplicate: false });
        expect(report!.response!.length).toBeLessThanOrEqual(2_000);
        expect(report!.response).not.toContain('\u0000');
      }
      // Past the lease a stuck record would have been taken over by the running worker and sent again: wait for a
      // claim made after that, then close, after which the sink's count is final.
      const leasesOver = Date.now() + 350;
      await waitFor('a claim after the leases expired', async () => (claimStarts.some((t) => t >= leasesOver) ? true : undefined));
      await mailer.close();
      expect(sink.messages.map((m) => m.subject)).toEqual(replies.map((_, i) => `Reply ${i}`));
    });
  });
}

describe.skipIf(!DATABASE_URL)(`due times come from the database's clock (${DATABASE_URL ? 'server' : SERVER_SKIP_REASON})`, () => {
  // PGlite runs in this process and reads its clock from the same Date, so only a server can disagree with the app.
  it('an app clock an hour ahead still sends a message enqueued "now" at once', async () => {
    const { sink, mailer } = await setup(() => serverStore());
    const skew = skewAppClock(3_600_000);
    try {
      const queued = await mailer.enqueue({ to: 'ada@example.com', subject: 'Ahead', text: 'x' });
      mailer.startWorker({ pollMs: 20 });
      await sink.waitForMessages(1, 5_000);
      expect(sink.messages.map((m) => m.subject)).toEqual(['Ahead']);
      await waitFor('the record to be sent', async () => ((await mailer.getStatus(queued.id))?.status === 'sent' ? true : undefined));
    } finally {
      skew.restore();
    }
  });

  it('an app clock an hour behind spaces retries by the backoff instead of burning them at once', async () => {
    const { sink, mailer } = await setup(() => serverStore(), { behavior: { mailFrom: () => ({ code: 451, message: '4.3.0 later' }) } });
    const skew = skewAppClock(-3_600_000);
    try {
      const queued = await mailer.enqueue({ to: 'ada@example.com', subject: 'Behind', text: 'x' });
      mailer.startWorker({ pollMs: 20 });
      const report = await waitFor('a second attempt', async () => {
        const r = await mailer.getStatus(queued.id);
        return r && r.attempt >= 2 ? r : undefined;
      });
      expect(report.status).not.toBe('failed');
      const claims = report.history.filter((e) => e.type === 'claimed').map((e) => e.at.getTime());
      // The retry waited at least half its 1 s backoff (equal jitter), by the database's own timestamps.
      expect(claims[1]! - claims[0]!).toBeGreaterThanOrEqual(480);
      expect(sink.messages).toHaveLength(0);
    } finally {
      skew.restore();
    }
  });
});
