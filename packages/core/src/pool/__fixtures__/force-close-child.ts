/**
 * Run by smtp-pool-abort.test.ts in its own process: starts a send hung at a greeting (HUNG_PORT never greets) and
 * one waiting out a 24 s backoff (REFUSING_PORT answers 421), waits for "close" on stdin, force-closes both pools and
 * prints how each send settled. It never calls process.exit: the test measures that the process ends by itself.
 */
import { SmtpPool } from '../smtp-pool.js';
import { poolMessage } from './pool-fixtures.js';

const hungPort = Number(process.env.HUNG_PORT);
const refusingPort = Number(process.env.REFUSING_PORT);

const hung = new SmtpPool({
  servers: [{ name: 'hung', host: '127.0.0.1', port: hungPort, starttls: 'disabled', timeouts: { connectionMs: 60_000, greetingMs: 60_000 }, maxRetries: 0 }],
});
const backingOff = new SmtpPool({
  servers: [{ name: 'refusing', host: '127.0.0.1', port: refusingPort, starttls: 'disabled', maxRetries: 1 }],
  backoff: { baseMs: 24_000, maxMs: 24_000 },
  maxRetryWaitMs: 60_000,
});

let closedAt = 0;
const outcome = (promise: Promise<unknown>) =>
  promise.then(
    (value) => ({ settledAfterMs: Date.now() - closedAt, value }),
    (error: { code?: string; retryable?: boolean }) => ({ settledAfterMs: Date.now() - closedAt, code: error.code, retryable: error.retryable }),
  );
const sends = [outcome(hung.send(poolMessage())), outcome(backingOff.send(poolMessage()))];
process.stdout.write('sending\n');

process.stdin.once('data', async () => {
  process.stdin.destroy();
  const status = backingOff.status()[0]!;
  closedAt = Date.now();
  await Promise.all([hung.close({ force: true }), backingOff.close({ force: true })]);
  const results = await Promise.all(sends);
  process.stdout.write(`${JSON.stringify({ backoffState: status.state, results })}\n`);
});
