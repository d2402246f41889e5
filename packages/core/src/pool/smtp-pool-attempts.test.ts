import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { SmtpError } from '../errors/smtp-error.js';
import { gatedRelay, poolMessage, until, usePoolResources } from './__fixtures__/pool-fixtures.js';

const resources = useTestResources();
const pools = usePoolResources();

// Issue 7 item 17: a failover's earlier attempts must be in the result, and pooled connections must close with QUIT.
describe('SmtpPool attempts', () => {
  it('lists every failed attempt before a successful failover, with server, class, codes, reply and time', async () => {
    const first = await resources.sink({ behavior: { mailFrom: () => ({ code: 451, message: '4.3.0 Temporary local problem' }) } });
    const second = await resources.sink({ behavior: { connect: () => ({ code: 421, message: '4.3.2 Too busy' }) } });
    const third = await resources.sink();
    const pool = pools.pool({
      servers: [
        { ...first.serverConfig(), name: 'first', priority: 3, maxRetries: 0 },
        { ...second.serverConfig(), name: 'second', priority: 2, maxRetries: 0 },
        { ...third.serverConfig(), name: 'third', priority: 1 },
      ],
    });
    const before = Date.now();
    const result = await pool.send(poolMessage());
    expect(result).toMatchObject({ status: 'sent', server: 'third' });
    expect(result.attempts).toEqual([
      { server: 'first', failure: 'transient', code: 'EENVELOPE', responseCode: 451, response: expect.stringContaining('451 4.3.0 Temporary local problem'), message: expect.any(String), at: expect.any(Date) },
      { server: 'second', failure: 'transient', code: expect.any(String), responseCode: 421, response: expect.stringContaining('421 4.3.2 Too busy'), message: expect.any(String), at: expect.any(Date) },
    ]);
    const [a, b] = result.attempts;
    expect(a!.at.getTime()).toBeGreaterThanOrEqual(before);
    expect(b!.at.getTime()).toBeGreaterThanOrEqual(a!.at.getTime());
    expect(first.messages).toHaveLength(0);
    expect(second.messages).toHaveLength(0);
    expect(await third.waitForMessages(1)).toHaveLength(1);
  });

  it('carries every attempt on the error when no server takes the message', async () => {
    const a = await resources.sink({ behavior: { mailFrom: () => ({ code: 452, message: '4.3.1 Insufficient system storage' }) } });
    const b = await resources.sink({ behavior: { rcptTo: () => ({ code: 550, message: '5.1.1 No such user' }) } });
    const pool = pools.pool({ servers: [{ ...a.serverConfig(), name: 'a', priority: 2, maxRetries: 0 }, { ...b.serverConfig(), name: 'b', priority: 1 }] });
    const error = (await pool.send(poolMessage()).catch((e: unknown) => e)) as SmtpError;
    expect(error).toBeInstanceOf(SmtpError);
    expect(error.code).toBe('SMTP_REJECTED');
    expect(error.attempts.map((x) => [x.server, x.failure, x.responseCode])).toEqual([
      ['a', 'transient', 452],
      ['b', 'permanent', 550],
    ]);
    expect(error.attempts.every((x) => x.at instanceof Date)).toBe(true);
    expect(JSON.parse(JSON.stringify(error)).attempts[0].at).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});

describe('SmtpPool closing connections', () => {
  it('says QUIT on every pooled connection when closed', async () => {
    const sink = await resources.sink();
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'only', poolSize: 3 }] });
    // Three at once open three connections.
    await Promise.all([poolMessage(), poolMessage(), poolMessage()].map((m) => pool.send(m)));
    expect(sink.stats.connections).toBeGreaterThanOrEqual(2);
    await pool.close();
    await until(() => sink.stats.closed === sink.stats.connections, 'every connection to close');
    expect(sink.stats.quits).toBe(sink.stats.connections);
  });

  it('says QUIT after the send in flight settles when closed mid-send', async () => {
    const sink = await resources.sink();
    const relay = gatedRelay(sink.port);
    const peer = await pools.peer(relay.handler);
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), port: peer.port, name: 'only' }] });
    await pool.send(poolMessage());
    // The server's replies are held back, so the close lands while the next send waits for one.
    relay.hold();
    const sending = pool.send(poolMessage({ subject: 'in flight' }));
    await until(() => pool.status()[0]!.inFlight === 1, 'the send to be in flight');
    await pool.close();
    expect(sink.stats.quits).toBe(0);
    relay.release();
    expect((await sending).status).toBe('sent');
    await until(() => sink.stats.closed === sink.stats.connections, 'every connection to close');
    expect(sink.stats.quits).toBe(sink.stats.connections);
    expect(sink.stats.messages).toBe(2);
  });

  it('says QUIT on the connections of a server removed by reload', async () => {
    const old = await resources.sink();
    const next = await resources.sink();
    const pool = pools.pool({ servers: [{ ...old.serverConfig(), name: 'old' }] });
    await pool.send(poolMessage({ subject: 'before reload' }));
    pool.reload([{ ...next.serverConfig(), name: 'next' }]);
    await until(() => old.stats.closed === old.stats.connections, 'the old server’s connections to close');
    expect(old.stats.quits).toBe(old.stats.connections);
    expect((await pool.send(poolMessage({ subject: 'after reload' }))).server).toBe('next');
    expect(next.messages.map((received) => received.subject)).toEqual(['after reload']);
    expect(old.messages.map((received) => received.subject)).toEqual(['before reload']);
  });
});
