import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { poolMessage, relayTo, until, usePoolResources } from './__fixtures__/pool-fixtures.js';

const resources = useTestResources();
const pools = usePoolResources();

// Issue 7 item 15: the wait budget was counted from the start of send(), so one attempt slower than the budget (a
// greeting timeout) used it all and the transient failure was never retried.
describe('SmtpPool retry budget', () => {
  it('retries a server whose first connection greets only after the greeting timeout, and delivers once', async () => {
    const sink = await resources.sink();
    const greetingMs = 600;
    // First connection: silent past the client's greeting timeout, then hung up on. Later ones reach the sink.
    const peer = await pools.peer((socket, index) => {
      if (index === 0) return;
      relayTo(sink.port)(socket);
    });
    const pool = pools.pool({
      servers: [{ name: 'slow', host: '127.0.0.1', port: peer.port, starttls: 'disabled', timeouts: { greetingMs }, maxRetries: 1 }],
      backoff: { baseMs: 50, maxMs: 100 },
      // Shorter than one attempt: only time spent waiting for the backoff may count against it.
      maxRetryWaitMs: 300,
    });
    const message = poolMessage();
    const result = await pool.send(message);

    expect(result).toMatchObject({ status: 'sent', server: 'slow' });
    expect(result.attempts).toHaveLength(1);
    expect(result.attempts[0]).toMatchObject({ server: 'slow', failure: 'transient', code: 'ETIMEDOUT' });
    // The first connection, one TLS handshake that finds the port does not expect implicit TLS (it is relayed to the
    // plain sink), and the retry.
    expect(peer.accepted.length).toBe(3);
    const received = await sink.waitForMessages(1);
    expect(received.map((m) => m.messageId)).toEqual([message.messageId]);
    // Nothing else arrives: once the pool has closed its connections the sink has everything it will ever get.
    await pool.close();
    await until(() => sink.stats.closed === sink.stats.connections, 'the pool to close its connections to the sink');
    expect(sink.stats.messages).toBe(1);
  });

  it('fails over to the next server after a slow first attempt instead of giving up', async () => {
    const backup = await resources.sink();
    const silent = await pools.peer(() => undefined);
    const pool = pools.pool({
      servers: [
        { name: 'silent', host: '127.0.0.1', port: silent.port, starttls: 'disabled', timeouts: { greetingMs: 500 }, priority: 2, maxRetries: 0 },
        { ...backup.serverConfig(), name: 'backup', priority: 1 },
      ],
      maxRetryWaitMs: 100,
    });
    const result = await pool.send(poolMessage());
    expect(result).toMatchObject({ status: 'sent', server: 'backup' });
    expect(result.attempts.map((a) => [a.server, a.failure])).toEqual([['silent', 'transient']]);
    expect(await backup.waitForMessages(1)).toHaveLength(1);
  });

  it('still gives up when the backoff to wait out is longer than the budget', async () => {
    const refusing = await resources.sink({ behavior: { connect: () => ({ code: 421, message: '4.3.2 busy' }) } });
    const pool = pools.pool({ servers: [{ ...refusing.serverConfig(), name: 'busy', maxRetries: 3 }], backoff: { baseMs: 20_000 }, maxRetryWaitMs: 1_000 });
    const started = Date.now();
    const error = await pool.send(poolMessage()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SMTP_UNAVAILABLE', retryable: true });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
