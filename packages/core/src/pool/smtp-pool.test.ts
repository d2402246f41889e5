import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { SmtpError } from '../errors/smtp-error.js';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import type { SmtpSink } from '@agent-smtp/testing';
import { until } from './__fixtures__/pool-fixtures.js';
import { classifySmtpError } from './classify-smtp-error.js';

const resources = useTestResources();

const sink = resources.sink;

/** Two servers: `primary` (priority 10) and `secondary` (priority 1), with short backoffs for tests. */
function mailer(primary: SmtpServerConfig, secondary?: SmtpServerConfig, backoffMs = 60_000): Mailer {
  const servers = [{ ...primary, name: 'primary', priority: 10 }, ...(secondary ? [{ ...secondary, name: 'secondary', priority: 1 }] : [])];
  const m = createMailer({
    servers,
    defaults: { from: 'agent@example.com' },
    env: {},
    // Auth failures back off ten times longer than transient ones, so a test can tell which was used.
    pool: { backoff: { baseMs: backoffMs, maxMs: backoffMs * 4, authBaseMs: backoffMs * 10, authMaxMs: backoffMs * 40 }, maxRetryWaitMs: 200 },
  });
  return resources.track(m);
}

/** A port nothing listens on: connections to it are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const email = { to: 'ada@example.com', subject: 'Failover', text: 'hello' };

/** The subjects a sink received, oldest first: which message went where, not just how many. */
function subjects(sink: SmtpSink): (string | undefined)[] {
  return sink.messages.map((message) => message.subject);
}

describe('SmtpPool failover', () => {
  it('fails over when the primary refuses connections', async () => {
    const backup = await sink();
    const m = mailer({ host: '127.0.0.1', port: await closedPort() }, backup.serverConfig());
    const result = await m.send(email);
    expect(result).toMatchObject({ status: 'sent', server: 'secondary' });
    expect((await backup.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
    const [primary] = m.status().servers;
    expect(primary).toMatchObject({ name: 'primary', state: 'backoff', healthy: false, consecutiveFailures: 1 });
    expect(primary!.lastError).toMatchObject({ failure: 'transient' });
  });

  it.each([
    ['421 at greeting', { connect: () => ({ code: 421, message: '4.3.2 Service not available, closing channel' }) }],
    ['451 at MAIL FROM', { mailFrom: () => ({ code: 451, message: '4.3.0 Temporary local problem' }) }],
    // A 5xx greeting refuses the session, not this message: another server may take it.
    ['554 at greeting', { connect: () => ({ code: 554, message: '5.3.2 No SMTP service here' }) }],
  ])('fails over on %s', async (_label, behavior) => {
    const first = await sink({ behavior });
    const backup = await sink();
    const m = mailer(first.serverConfig(), backup.serverConfig());
    const result = await m.send(email);
    expect(result.server).toBe('secondary');
    expect(first.messages).toHaveLength(0);
    expect((await backup.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
    expect(m.status().servers[0]!.lastError?.failure).toBe('transient');
  });

  it('fails over when STARTTLS is required and the server does not offer it, saying what to set', async () => {
    // A plain sink neither advertises nor accepts STARTTLS: it answers nodemailer's STARTTLS with a 5xx.
    const plain = await sink();
    const backup = await sink();
    const m = mailer({ ...plain.serverConfig(), starttls: 'required' }, backup.serverConfig(), 1_000);
    const result = await m.send(email);
    expect(result.server).toBe('secondary');
    expect(plain.messages).toHaveLength(0);
    expect((await backup.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
    const primary = m.status().servers[0]!;
    expect(primary.lastError).toMatchObject({ failure: 'auth', code: 'ETLS' });
    expect(primary.lastError!.message).toMatch(/^The server at 127\.0\.0\.1:\d+ does not offer STARTTLS \(it answered STARTTLS with "5\d\d[^"]*"\), but starttls: 'required' requires it\./);
    expect(primary.lastError!.message).toContain("starttls: 'opportunistic'");
    expect(primary.lastError!.message).toContain('port: 465 with secure: true');
  });

  it('names SMTP_USE_TLS when the environment required STARTTLS of a server without it', async () => {
    const plain = await sink();
    const m = resources.track(
      createMailer({
        defaults: { from: 'agent@example.com' },
        env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(plain.port), SMTP_USE_TLS: 'true', SMTP_MAX_RETRIES: '0' },
        pool: { maxRetryWaitMs: 0 },
      }),
    );
    const error = await m.send(email).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SMTP_AUTH' });
    const message = (error as Error).message;
    expect(message).toContain('does not offer STARTTLS');
    expect(message).toContain('but SMTP_USE_TLS=true requires it. Unset SMTP_USE_TLS');
    expect(message).not.toMatch(/refused the message|do not retry|starttls:/);
  });

  it('lists a server retried with the same failure once, with its number of tries', async () => {
    const m = resources.track(
      createMailer({
        servers: [{ name: 'primary', host: '127.0.0.1', port: await closedPort(), maxRetries: 2 }],
        defaults: { from: 'agent@example.com' },
        env: {},
        pool: { backoff: { baseMs: 5, maxMs: 10 }, maxRetryWaitMs: 1_000 },
      }),
    );
    const error = (await m.send(email).catch((e: unknown) => e)) as SmtpError;
    expect(error).toMatchObject({ code: 'SMTP_UNAVAILABLE' });
    expect(error.attempts).toHaveLength(3);
    expect(error.message).toMatch(/^No SMTP server accepted the message \(primary \(3 tries\): connect ECONNREFUSED 127\.0\.0\.1:\d+\)\./);
    expect(error.message.match(/ECONNREFUSED/g)).toHaveLength(1);
  });

  it('fails over on 535 at AUTH and backs the server off for the auth period', async () => {
    const first = await sink({ auth: { user: 'robot', pass: 'right' } });
    const backup = await sink();
    const m = mailer({ ...first.serverConfig(), auth: { user: 'robot', pass: 'wrong-password-xyz' } }, backup.serverConfig(), 1_000);
    const before = Date.now();
    const result = await m.send(email);
    expect(result.server).toBe('secondary');
    expect(first.messages).toHaveLength(0);
    expect((await backup.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
    const primary = m.status().servers[0]!;
    expect(primary.lastError).toMatchObject({ failure: 'auth', code: 'EAUTH' });
    // The auth backoff (10 s, jittered down to no less than half) rather than the transient one (1 s).
    expect(primary.nextRetryAt!.getTime()).toBeGreaterThanOrEqual(before + 5_000);
    expect(JSON.stringify(m.status())).not.toContain('wrong-password-xyz');
  });

  it('treats an untrusted certificate as a configuration failure: long backoff, fail over', async () => {
    const untrusted = await sink({ tls: 'starttls' });
    const backup = await sink();
    const m = mailer({ ...untrusted.serverConfig(), tls: {} }, backup.serverConfig(), 1_000);
    const result = await m.send(email);
    expect(result.server).toBe('secondary');
    expect(m.status().servers[0]!.lastError).toMatchObject({ failure: 'auth', code: 'ETLS', message: expect.stringContaining('tls.ca') });
    expect(untrusted.messages).toHaveLength(0);
    expect((await backup.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
  });

  it('does not fail over on 550 5.1.1 and reports the server’s words', async () => {
    const first = await sink({ behavior: { rcptTo: () => ({ code: 550, message: '5.1.1 <ada@example.com>: Recipient address rejected' }) } });
    const backup = await sink();
    const m = mailer(first.serverConfig(), backup.serverConfig());
    const error = await m.send(email).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SmtpError);
    expect(error).toMatchObject({ code: 'SMTP_REJECTED', retryable: false, server: 'primary', responseCode: 550 });
    expect((error as SmtpError).response).toContain('5.1.1');
    expect(m.status().servers[0]!.healthy).toBe(true);
    // Once the mailer has closed, nothing more can reach the backup: what it has now is all it would ever get.
    await m.close();
    expect(backup.messages).toHaveLength(0);
    expect(backup.stats.connections).toBe(0);
  });

  it('reports a partial rejection as accepted and rejected lists', async () => {
    const only = await sink({ behavior: { rcptTo: (to) => (to.startsWith('nobody') ? { code: 550, message: '5.1.1 No such user' } : undefined) } });
    const m = mailer(only.serverConfig());
    const result = await m.send({ ...email, to: ['ada@example.com', 'nobody@example.com'] });
    expect(result.accepted).toEqual(['ada@example.com']);
    expect(result.rejected).toEqual(['nobody@example.com']);
    expect(result.rejectedReasons[0]).toMatchObject({ address: 'nobody@example.com', responseCode: 550 });
    const [received] = await only.waitForMessages(1);
    expect(received!.envelope.to).toEqual(['ada@example.com']);
  });

  it('gives status unknown and never resends when the server times out after the final dot', async () => {
    const first = await sink({ behavior: { data: () => 'hang' } });
    const backup = await sink();
    const m = mailer({ ...first.serverConfig(), timeouts: { socketMs: 300 } }, backup.serverConfig());
    const result = await m.send(email);
    expect(result.status).toBe('unknown');
    expect(result.server).toBe('primary');
    expect((await m.getStatus(result.id))!.status).toBe('unknown');
    expect((await first.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
    await m.close();
    expect(first.messages).toHaveLength(1);
    expect(backup.stats.connections).toBe(0);
  });

  it('gives status unknown when the connection drops after the final dot', async () => {
    const first = await sink({ behavior: { data: () => 'drop' } });
    const backup = await sink();
    const m = mailer(first.serverConfig(), backup.serverConfig());
    const result = await m.send(email);
    expect(result.status).toBe('unknown');
    expect((await first.waitForMessages(1)).map((received) => received.messageId)).toEqual([result.messageId]);
    await m.close();
    expect(first.messages).toHaveLength(1);
    expect(backup.stats.connections).toBe(0);
  });

  it('brings a failed server back after its backoff (half-open probe)', async () => {
    const first = await sink({ behavior: { connect: () => ({ code: 421, message: '4.3.2 try later' }) } });
    const backup = await sink();
    const m = mailer(first.serverConfig(), backup.serverConfig(), 300);
    expect((await m.send({ ...email, subject: 'refused 1' })).server).toBe('secondary');
    expect((await m.send({ ...email, subject: 'refused 2' })).server).toBe('secondary');
    first.behavior = {};
    // The first backoff is 300 ms jittered down, so the server turns half-open well within the wait.
    await until(() => m.status().servers[0]!.state === 'half-open', 'the primary to turn half-open');
    expect((await m.send({ ...email, subject: 'probe' })).server).toBe('primary');
    expect(m.status().servers[0]).toMatchObject({ state: 'healthy', consecutiveFailures: 0 });
    expect((await m.send({ ...email, subject: 'recovered' })).server).toBe('primary');
    // Each sink kept a message before answering 250, so once the sends resolved both lists are complete.
    expect(subjects(backup)).toEqual(['refused 1', 'refused 2']);
    expect(subjects(first)).toEqual(['probe', 'recovered']);
  });

  it('fails with SMTP_UNAVAILABLE naming every attempt when no server takes the message', async () => {
    const a = await sink({ behavior: { mailFrom: () => ({ code: 452, message: '4.3.1 Insufficient system storage' }) } });
    const m = mailer(a.serverConfig());
    const error = (await m.send(email).catch((e: unknown) => e)) as SmtpError;
    expect(error).toBeInstanceOf(SmtpError);
    expect(error.code).toBe('SMTP_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(error.attempts.length).toBeGreaterThanOrEqual(1);
    expect(error.message).toContain('452');
    expect(error.retryAt).toBeInstanceOf(Date);
  });

  it('prefers a server chosen with useServer, and verifies each server', async () => {
    const primarySink = await sink();
    const secondarySink = await sink();
    const m = mailer(primarySink.serverConfig(), secondarySink.serverConfig());
    await m.useServer('secondary');
    expect((await m.send({ ...email, subject: 'chosen: secondary' })).server).toBe('secondary');
    await m.useServer(null);
    expect((await m.send({ ...email, subject: 'by priority' })).server).toBe('primary');
    expect(subjects(secondarySink)).toEqual(['chosen: secondary']);
    expect(subjects(primarySink)).toEqual(['by priority']);
    await expect(m.useServer('nope')).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'server' });
    const connectionsBefore = [primarySink.stats.connections, secondarySink.stats.connections];
    const verified = await m.testConnection();
    expect(verified.map((v) => [v.name, v.ok])).toEqual([
      ['primary', true],
      ['secondary', true],
    ]);
    // Each verification opened one connection of its own, to its own server.
    expect([primarySink.stats.connections, secondarySink.stats.connections]).toEqual(connectionsBefore.map((n) => n + 1));
  });

  it('follows a reload that only changes the order of servers of equal priority', async () => {
    const a = await sink();
    const b = await sink();
    const m = resources.track(createMailer({ servers: [a.serverConfig({ name: 'a' }), b.serverConfig({ name: 'b' })], defaults: { from: 'x@example.com' }, env: {} }));
    expect((await m.send({ ...email, subject: 'a first' })).server).toBe('a');
    await m.reload([b.serverConfig({ name: 'b' }), a.serverConfig({ name: 'a' })]);
    expect(m.status().servers.map((s) => s.name)).toEqual(['b', 'a']);
    expect((await m.send({ ...email, subject: 'b first' })).server).toBe('b');
    expect(subjects(a)).toEqual(['a first']);
    expect(subjects(b)).toEqual(['b first']);
  });

  it('loses no message when reloaded while 200 sends are in flight', async () => {
    const a = await sink({ parse: false });
    const b = await sink({ parse: false });
    const m = mailer(a.serverConfig());
    const sends = Array.from({ length: 200 }, (_, i) => m.send({ ...email, subject: `n${i}` }));
    await new Promise((r) => setTimeout(r, 5));
    await m.reload([{ ...b.serverConfig(), name: 'b' }]);
    const after = Array.from({ length: 20 }, (_, i) => m.send({ ...email, subject: `n${200 + i}` }));
    const results = await Promise.all([...sends, ...after]);
    expect(results.every((r) => r.status === 'sent')).toBe(true);
    const received = [...a.messages, ...b.messages];
    expect(received).toHaveLength(220);
    expect(new Set(received.map((r) => r.raw.toString().match(/^Subject: (n\d+)/m)?.[1])).size).toBe(220);
    expect(results.slice(200).every((r) => r.server === 'b')).toBe(true);
    // The sends after the reload reached b's sink, not just b's name.
    const subjectOf = (raw: Buffer) => raw.toString().match(/^Subject: (n\d+)/m)?.[1];
    const atB = new Set(b.messages.map((received) => subjectOf(received.raw)));
    expect(Array.from({ length: 20 }, (_, i) => `n${200 + i}`).filter((subject) => !atB.has(subject))).toEqual([]);
    expect(m.status().servers.map((s) => s.name)).toEqual(['b']);
  });
});

describe('classifySmtpError', () => {
  it.each([
    [{ code: 'ECONNECTION' }, false, 'transient'],
    [{ code: 'ETIMEDOUT' }, false, 'transient'],
    [{ code: 'ETIMEDOUT' }, true, 'ambiguous'],
    [{ code: 'ECONNECTION' }, true, 'ambiguous'],
    [{ code: 'EAUTH', responseCode: 535 }, false, 'auth'],
    [{ code: 'ETLS' }, false, 'auth'],
    [{ code: 'EENVELOPE', responseCode: 550 }, false, 'permanent'],
    [{ code: 'EENVELOPE', responseCode: 553 }, false, 'permanent'],
    [{ code: 'EMESSAGE', responseCode: 554, command: 'DATA' }, true, 'permanent'],
    [{ code: 'EENVELOPE', responseCode: 552, command: 'RCPT TO' }, false, 'transient'],
    [{ code: 'EMESSAGE', responseCode: 552, command: 'DATA' }, true, 'permanent'],
    [{ code: 'EENVELOPE', responseCode: 552, command: 'MAIL FROM' }, false, 'permanent'],
    [{ code: 'EAUTH', responseCode: 454, command: 'AUTH PLAIN' }, false, 'transient'],
    [{ code: 'ESOCKET', originalCode: 'DEPTH_ZERO_SELF_SIGNED_CERT', command: 'CONN' }, false, 'auth'],
    [{ code: 'ESOCKET', originalCode: 'CERT_HAS_EXPIRED', command: 'CONN' }, false, 'auth'],
    [{ code: 'ESOCKET', originalCode: 'ECONNRESET', command: 'CONN' }, false, 'transient'],
    [{ code: 'EENVELOPE', responseCode: 452 }, false, 'transient'],
    [{ code: 'EMESSAGE', responseCode: 451, command: 'DATA' }, true, 'transient'],
    [{ code: 'ECONNECTION', responseCode: 421 }, false, 'transient'],
    // A server without STARTTLS answers nodemailer's STARTTLS (requireTLS) with a 5xx: a TLS setting to fix, not a refusal.
    [{ code: 'ETLS', responseCode: 500, command: 'STARTTLS' }, false, 'auth'],
    [{ code: 'ETLS', responseCode: 454, command: 'STARTTLS' }, false, 'transient'],
    [{ code: 'EAUTH', responseCode: 504, command: 'AUTH PLAIN' }, false, 'auth'],
    [{ code: 'ENOAUTH', responseCode: 550 }, false, 'auth'],
    // A 5xx while the session is set up is the server's fault, not the message's: back off and fail over.
    [{ code: 'EPROTOCOL', responseCode: 554, command: 'CONN' }, false, 'transient'],
    [{ code: 'EPROTOCOL', responseCode: 550, command: 'EHLO' }, false, 'transient'],
    [{ code: 'EPROTOCOL', responseCode: 501, command: 'HELO' }, false, 'transient'],
    [{ code: 'EPROTOCOL', responseCode: 554, command: 'STARTTLS' }, false, 'auth'],
    [{ code: 'EAUTH', responseCode: 554, command: 'AUTH LOGIN' }, false, 'auth'],
    // Only a 5xx to the envelope or the data refuses the message itself.
    [{ code: 'EENVELOPE', responseCode: 550, command: 'MAIL FROM' }, false, 'permanent'],
    [{ code: 'EENVELOPE', responseCode: 550, command: 'RCPT TO' }, false, 'permanent'],
    [{ code: 'EMESSAGE', responseCode: 554, command: 'DATA' }, false, 'permanent'],
  ] as const)('%j (body sent: %s) is %s', (error, bodySent, expected) => {
    expect(classifySmtpError(error, bodySent)).toBe(expected);
  });
});
