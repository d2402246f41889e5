import { X509Certificate, createPrivateKey } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';
import { afterEach, describe, expect, it } from 'vitest';
import { startSmtpSink } from './smtp-sink.js';
import { testCertificate } from './test-certificate.js';
import type { SmtpSink, SmtpSinkOptions } from './smtp-sink.js';

const sinks: SmtpSink[] = [];
const transports: { close(): void }[] = [];

async function sinkWith(options?: SmtpSinkOptions): Promise<SmtpSink> {
  const sink = await startSmtpSink(options);
  sinks.push(sink);
  return sink;
}

/** A plain (non-pooled) nodemailer transport to the sink; short timeouts so a broken sink fails fast. */
function clientFor(sink: SmtpSink, extra: SMTPTransportOptions = {}) {
  const transport = nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: sink.secure,
    connectionTimeout: 2000,
    greetingTimeout: 2000,
    socketTimeout: 2000,
    ...extra,
  });
  transports.push(transport);
  return transport;
}

/** Resolves with the error a send fails with; fails the test if the send succeeds. */
async function sendError(promise: Promise<unknown>): Promise<Error & { code?: string; responseCode?: number }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string; responseCode?: number };
  }
  throw new Error('expected the send to fail, but it succeeded');
}

const simpleMessage = { from: 'agent@example.com', to: 'ann@example.com', subject: 'hello', text: 'hi' };

afterEach(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await Promise.all(sinks.splice(0).map((sink) => sink.close()));
});

describe('startSmtpSink', () => {
  it('waitForIdle resolves only once every connection has closed, and says how many are open when it times out', async () => {
    const sink = await sinkWith();
    await sink.waitForIdle(); // nothing seen yet: idle at once
    const pooled = nodemailer.createTransport({ host: sink.host, port: sink.port, pool: true, maxConnections: 1 });
    await pooled.sendMail(simpleMessage);
    // The pool keeps its connection open: not idle.
    await expect(sink.waitForIdle(200)).rejects.toThrow(/1 of 1 connection\(s\) still open/);
    const idle = sink.waitForIdle();
    pooled.close();
    await idle;
    expect(sink.stats.closed).toBe(sink.stats.connections);
  });

  it('receives a UTF-8 message with its envelope and parsed fields', async () => {
    const sink = await sinkWith();
    const subject = 'Grüße 👋 你好，世界';
    const text = 'Zeile eins\n日本語のテキスト 🚀\n.a line that starts with a dot';
    const html = '<p>你好 <b>🌍</b></p>';
    const info = await clientFor(sink).sendMail({
      from: '"Agent Ω" <agent@example.com>',
      to: ['ann@example.com', '"Bo 李" <bo@example.org>'],
      cc: 'cy@example.net',
      bcc: 'hidden@example.com',
      subject,
      text,
      html,
      attachments: [{ filename: 'notes.txt', content: 'attached ✓', contentType: 'text/plain' }],
    });

    expect(sink.messages).toHaveLength(1);
    const message = sink.messages[0]!;
    expect(message.envelope).toEqual({
      from: 'agent@example.com',
      to: ['ann@example.com', 'bo@example.org', 'cy@example.net', 'hidden@example.com'],
    });
    expect(message.subject).toBe(subject);
    expect(message.text?.trimEnd()).toBe(text);
    expect(message.html).toBe(html);
    expect(message.from).toBe('"Agent Ω" <agent@example.com>');
    expect(message.to).toBe('ann@example.com, "Bo 李" <bo@example.org>');
    expect(message.cc).toBe('cy@example.net');
    expect(message.messageId).toBe(info.messageId);
    expect(message.headers.get('subject')).toBe(subject);
    expect(message.raw.toString('utf8')).toContain('Message-ID: ' + info.messageId);
    expect(message.attachments).toEqual([
      expect.objectContaining({ filename: 'notes.txt', contentType: 'text/plain', size: Buffer.byteLength('attached ✓') }),
    ]);
    expect(message.attachments[0]!.content.toString('utf8')).toBe('attached ✓');
    expect(message.secure).toBe(false);
    expect(message.user).toBeUndefined();
    expect(message.receivedAt).toBeInstanceOf(Date);
    expect(sink.stats).toMatchObject({ connections: 1, messages: 1, rejected: 0 });
  });

  it('keeps HTML-only messages without inventing a text part', async () => {
    const sink = await sinkWith();
    await clientFor(sink).sendMail({ ...simpleMessage, text: undefined, html: '<p>only html</p>' });
    // mailparser ends a single-part body with a newline
    expect(sink.messages[0]!.html?.trimEnd()).toBe('<p>only html</p>');
    expect(sink.messages[0]!.text).toBeUndefined();
  });

  it('does not advertise STARTTLS or AUTH on a plain sink', async () => {
    const sink = await sinkWith();
    const ehlo = await rawEhlo(sink.port);
    expect(ehlo).toContain('250');
    expect(ehlo).not.toContain('STARTTLS');
    expect(ehlo).not.toContain('AUTH');
    expect(ehlo).toMatch(/^220 localhost ESMTP agent-smtp dev sink/);
  });

  it('refuses STARTTLS on a plain sink, even from a client that asks without being offered it', async () => {
    const sink = await sinkWith();
    const { transcript, socket } = await rawSession(sink.port, ['EHLO client.test', 'STARTTLS']);
    socket.destroy();
    expect(transcript.split('\r\n').filter((line) => /^250[- ]/.test(line))).not.toContainEqual(expect.stringContaining('STARTTLS'));
    expect(transcript).toMatch(/\r\n5\d\d [^\r\n]*\r\n$/);
    expect(transcript).not.toContain('220 Ready to start TLS');

    // nodemailer's requireTLS sends STARTTLS whatever EHLO said: the sink refuses it rather than upgrading
    const error = await sendError(clientFor(sink, { requireTLS: true }).sendMail(simpleMessage));
    expect(error.message).not.toMatch(/certificate|expired/i);
    expect(error.responseCode).toBeGreaterThanOrEqual(500);
    expect(sink.messages).toHaveLength(0);
  });

  it('uses a test certificate valid for at least 50 more years', () => {
    const certificate = new X509Certificate(testCertificate.cert);
    const fiftyYears = 50 * 365.25 * 24 * 3600 * 1000;
    expect(new Date(certificate.validTo).getTime() - Date.now()).toBeGreaterThan(fiftyYears);
    expect(new Date(certificate.validFrom).getTime()).toBeLessThan(Date.now());
    expect(certificate.checkPrivateKey(createPrivateKey(testCertificate.key))).toBe(true);
  });

  it('upgrades with STARTTLS to a client that verifies the test certificate', async () => {
    const sink = await sinkWith({ tls: 'starttls' });
    expect(await rawEhlo(sink.port)).toContain('STARTTLS');
    const client = clientFor(sink, { requireTLS: true, tls: { ca: sink.certificate, servername: 'localhost' } });
    await client.sendMail(simpleMessage);
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]!.secure).toBe(true);
  });

  it('fails a verifying STARTTLS client that does not trust the certificate', async () => {
    const sink = await sinkWith({ tls: 'starttls' });
    const error = await sendError(clientFor(sink, { requireTLS: true, tls: { servername: 'localhost' } }).sendMail(simpleMessage));
    expect(error.message).toMatch(/self[- ]signed/i);
    expect(sink.messages).toHaveLength(0);
  });

  it('speaks implicit TLS from the first byte', async () => {
    const sink = await sinkWith({ tls: 'implicit' });
    expect(sink.secure).toBe(true);
    await clientFor(sink, { tls: { ca: sink.certificate, servername: 'localhost' } }).sendMail(simpleMessage);
    expect(sink.messages[0]!.secure).toBe(true);
    expect(sink.messages[0]!.envelope.to).toEqual(['ann@example.com']);
  });

  it('serves the certificate for localhost and 127.0.0.1', async () => {
    const sink = await sinkWith({ tls: 'implicit' });
    for (const servername of ['localhost', undefined]) {
      const socket = tls.connect({ host: sink.host, port: sink.port, ca: sink.certificate, ...(servername ? { servername } : {}) });
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      expect(socket.authorized).toBe(true);
      const certificate = socket.getPeerCertificate();
      expect(certificate.subjectaltname).toBe('DNS:localhost, IP Address:127.0.0.1');
      expect(new Date(certificate.valid_to).getUTCFullYear()).toBeGreaterThanOrEqual(2124);
      socket.destroy();
    }
  });

  for (const authMethod of ['PLAIN', 'LOGIN'] as const) {
    it(`accepts AUTH ${authMethod} with the right credentials`, async () => {
      const sink = await sinkWith({ auth: { user: 'agent', pass: 's3cret' } });
      await clientFor(sink, { auth: { user: 'agent', pass: 's3cret' }, authMethod }).sendMail(simpleMessage);
      expect(sink.messages[0]!.user).toBe('agent');
    });
  }

  it('answers 535 to a wrong password', async () => {
    const sink = await sinkWith({ auth: { user: 'agent', pass: 's3cret' } });
    const error = await sendError(clientFor(sink, { auth: { user: 'agent', pass: 'wrong' } }).sendMail(simpleMessage));
    expect(error.code).toBe('EAUTH');
    expect(error.responseCode).toBe(535);
    expect(sink.messages).toHaveLength(0);
  });

  it('requires AUTH when credentials are configured', async () => {
    const sink = await sinkWith({ auth: { user: 'agent', pass: 's3cret' } });
    const error = await sendError(clientFor(sink).sendMail(simpleMessage));
    expect(error.responseCode).toBe(530);
    expect(sink.messages).toHaveLength(0);
  });

  it('lets behavior.auth refuse even the right password', async () => {
    const sink = await sinkWith({ auth: { user: 'agent', pass: 's3cret' }, behavior: { auth: () => ({ code: 454, message: '4.7.0 Try later' }) } });
    const error = await sendError(clientFor(sink, { auth: { user: 'agent', pass: 's3cret' } }).sendMail(simpleMessage));
    expect(error.responseCode).toBe(454);
    expect(sink.stats.rejected).toBe(1);
  });

  it('refuses the connection with 421 from behavior.connect', async () => {
    const sink = await sinkWith({ behavior: { connect: () => ({ code: 421, message: '4.3.2 Too busy' }) } });
    const error = await sendError(clientFor(sink).sendMail(simpleMessage));
    expect(error.responseCode).toBe(421);
    expect(error.message).toContain('4.3.2 Too busy');
    expect(sink.stats).toMatchObject({ connections: 1, messages: 0, rejected: 1 });
  });

  it('refuses MAIL FROM with 451 from behavior.mailFrom', async () => {
    const seen: string[] = [];
    const sink = await sinkWith({
      behavior: {
        mailFrom: (address) => {
          seen.push(address);
          return { code: 451, message: '4.3.0 Temporary failure' };
        },
      },
    });
    const error = await sendError(clientFor(sink).sendMail(simpleMessage));
    expect(error.responseCode).toBe(451);
    expect(seen).toEqual(['agent@example.com']);
    expect(sink.messages).toHaveLength(0);
  });

  it('refuses one recipient with 550 and delivers to the other', async () => {
    const sink = await sinkWith({
      behavior: { rcptTo: (address) => (address === 'nobody@example.com' ? { code: 550, message: '5.1.1 No such user' } : undefined) },
    });
    const info = await clientFor(sink).sendMail({ ...simpleMessage, to: ['nobody@example.com', 'ann@example.com'] });
    expect(info.rejected).toEqual(['nobody@example.com']);
    expect(info.accepted).toEqual(['ann@example.com']);
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]!.envelope.to).toEqual(['ann@example.com']);
    expect(sink.stats.rejected).toBe(1);
  });

  it('keeps a hung message once while the client times out after the final dot', async () => {
    const sink = await sinkWith({ behavior: { data: () => 'hang' } });
    const started = Date.now();
    const error = await sendError(clientFor(sink, { socketTimeout: 300 }).sendMail(simpleMessage));
    expect(error.code).toBe('ETIMEDOUT');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]!.subject).toBe('hello');
    expect(sink.stats.messages).toBe(0);
  });

  it('keeps a dropped message once and closes the connection without a reply', async () => {
    const sink = await sinkWith({ behavior: { data: () => 'drop' } });
    const error = await sendError(clientFor(sink).sendMail(simpleMessage));
    expect(error.code).toBe('ECONNECTION');
    expect(error.responseCode).toBeUndefined();
    expect(sink.messages).toHaveLength(1);
    expect(sink.stats.messages).toBe(0);
  });

  it('drops a STARTTLS connection after the final dot', async () => {
    const sink = await sinkWith({ tls: 'starttls', behavior: { data: () => 'drop' } });
    const client = clientFor(sink, { requireTLS: true, tls: { ca: sink.certificate, servername: 'localhost' } });
    const error = await sendError(client.sendMail(simpleMessage));
    expect(error.code).toBe('ECONNECTION');
    expect(sink.messages).toHaveLength(1);
  });

  it('answers 554 after the final dot and keeps nothing', async () => {
    const sink = await sinkWith({ behavior: { data: () => ({ code: 554, message: '5.7.1 Spam detected' }) } });
    const error = await sendError(clientFor(sink).sendMail(simpleMessage));
    expect(error.responseCode).toBe(554);
    expect(error.message).toContain('5.7.1 Spam detected');
    expect(sink.messages).toHaveLength(0);
    expect(sink.stats).toMatchObject({ messages: 0, rejected: 1 });
  });

  it('passes the received message to behavior.data and uses a 2xx reply as the answer', async () => {
    const subjects: string[] = [];
    const sink = await sinkWith({
      behavior: {
        data: (message) => {
          subjects.push(message.subject ?? '');
          return { code: 250, message: '2.0.0 Queued as ABC123' };
        },
      },
    });
    const info = await clientFor(sink).sendMail(simpleMessage);
    expect(info.response).toBe('250 2.0.0 Queued as ABC123');
    expect(subjects).toEqual(['hello']);
    expect(sink.messages).toHaveLength(1);
  });

  it('answers 451 naming the hook when a behavior throws', async () => {
    const sink = await sinkWith({
      behavior: {
        rcptTo: () => {
          throw new Error('boom');
        },
      },
    });
    const error = await sendError(clientFor(sink).sendMail(simpleMessage));
    expect(error.responseCode).toBe(451);
    expect(error.message).toContain('sink behavior.rcptTo threw: boom');
  });

  it('can be flipped from failing to healthy at runtime', async () => {
    const sink = await sinkWith({ behavior: { mailFrom: () => ({ code: 451 }) } });
    expect((await sendError(clientFor(sink).sendMail(simpleMessage))).responseCode).toBe(451);
    sink.behavior = {};
    await clientFor(sink).sendMail(simpleMessage);
    expect(sink.messages).toHaveLength(1);
    sink.behavior.rcptTo = () => ({ code: 550 });
    expect((await sendError(clientFor(sink).sendMail(simpleMessage))).responseCode).toBe(550);
    expect(sink.stats).toMatchObject({ connections: 3, messages: 1, rejected: 2 });
  });

  it('keeps only envelope and raw bytes with parse: false', async () => {
    const sink = await sinkWith({ parse: false });
    await clientFor(sink).sendMail(simpleMessage);
    const message = sink.messages[0]!;
    expect(message.envelope).toEqual({ from: 'agent@example.com', to: ['ann@example.com'] });
    expect(message.raw.toString()).toMatch(/^Subject: hello\r$/m);
    expect(message.subject).toBeUndefined();
    expect(message.text).toBeUndefined();
    expect(message.headers.size).toBe(0);
    expect(message.attachments).toEqual([]);
  });

  it('keeps at most maxMessages, dropping the oldest', async () => {
    const sink = await sinkWith({ maxMessages: 2 });
    const client = clientFor(sink);
    for (const subject of ['one', 'two', 'three']) await client.sendMail({ ...simpleMessage, subject });
    expect(sink.messages.map((message) => message.subject)).toEqual(['two', 'three']);
    expect(sink.stats.messages).toBe(3);
  });

  it('refuses messages over the SIZE limit with 552', async () => {
    const sink = await sinkWith({ size: 1000 });
    expect(await rawEhlo(sink.port)).toContain('SIZE 1000');
    const error = await sendError(clientFor(sink).sendMail({ ...simpleMessage, text: 'x'.repeat(5000) }));
    expect(error.responseCode).toBe(552);
    expect(sink.messages).toHaveLength(0);
  });

  it('waitForMessages resolves once enough messages arrived', async () => {
    const sink = await sinkWith();
    const waiting = sink.waitForMessages(2);
    const client = clientFor(sink);
    await client.sendMail({ ...simpleMessage, subject: 'a' });
    await client.sendMail({ ...simpleMessage, subject: 'b' });
    expect((await waiting).map((message) => message.subject)).toEqual(['a', 'b']);
    expect(await sink.waitForMessages(1, 10)).toHaveLength(2);
  });

  it('waitForMessages rejects after the timeout saying how many arrived', async () => {
    const sink = await sinkWith();
    await clientFor(sink).sendMail(simpleMessage);
    await expect(sink.waitForMessages(3, 50)).rejects.toThrow(/only 1 message\(s\) arrived within 50 ms/);
    sink.clear();
    expect(sink.messages).toHaveLength(0);
    await expect(sink.waitForMessages(1, 20)).rejects.toThrow(/only 0 message\(s\)/);
  });

  it('serverConfig describes how to reach the sink', async () => {
    const sink = await sinkWith({ tls: 'starttls', auth: { user: 'u', pass: 'p' } });
    expect(sink.serverConfig({ name: 'primary' })).toEqual({
      name: 'primary',
      host: '127.0.0.1',
      port: sink.port,
      secure: false,
      starttls: 'required',
      auth: { user: 'u', pass: 'p' },
      tls: { ca: sink.certificate, servername: 'localhost' },
    });
    const implicit = await sinkWith({ tls: 'implicit' });
    expect(implicit.serverConfig()).toMatchObject({ secure: true, port: implicit.port });
    expect(implicit.serverConfig()).not.toHaveProperty('auth');
  });

  it('close() finishes promptly with a hung client and sockets still open', async () => {
    const sink = await startSmtpSink({ tls: 'starttls', behavior: { data: () => 'hang' } });
    const hung = clientFor(sink, { socketTimeout: 60_000, tls: { ca: sink.certificate, servername: 'localhost' } }).sendMail(simpleMessage);
    await sink.waitForMessages(1);
    const { socket: idle } = await rawSession(sink.port, []);
    const idleClosed = new Promise((resolve) => idle.once('close', resolve));
    const started = Date.now();
    await sink.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await sendError(hung)).code).toBe('ECONNECTION');
    await idleClosed;
    await expect(sink.waitForMessages(5)).rejects.toThrow(/closed/);
  });

  it('close() finishes promptly with clients stuck in a TLS handshake', async () => {
    const starttls = await startSmtpSink({ tls: 'starttls' });
    const implicit = await startSmtpSink({ tls: 'implicit' });
    // A client that asks for STARTTLS and then never sends a ClientHello leaves the session mid-upgrade.
    const { transcript, socket: upgrading } = await rawSession(starttls.port, ['EHLO client.test', 'STARTTLS']);
    // A plain TCP client on the implicit TLS port never completes the handshake either.
    const silent = net.connect(implicit.port, implicit.host);
    await new Promise((resolve) => silent.once('connect', resolve));
    const closedByServer = Promise.all([upgrading, silent].map((socket) => new Promise((resolve) => socket.once('close', resolve))));

    const started = Date.now();
    await Promise.all([starttls.close(), implicit.close()]);
    await closedByServer;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(transcript).toMatch(/^220 .*TLS/m);
  });
});

/**
 * A bare SMTP client: sends each command once the previous reply is complete and resolves with the transcript,
 * leaving the socket open (the caller destroys it, or leaves it for close() to deal with).
 */
async function rawSession(port: number, commands: string[]): Promise<{ transcript: string; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  const queue = [...commands];
  let transcript = '';
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk) => {
      transcript += chunk.toString();
      // a reply is complete when its last line has a space after the code
      if (!/(?:^|\r\n)\d{3} [^\r\n]*\r\n$/.test(transcript)) return;
      const command = queue.shift();
      if (command === undefined) {
        socket.removeAllListeners('data');
        resolve();
      } else {
        socket.write(command + '\r\n');
      }
    });
    socket.once('error', reject);
  });
  return { transcript, socket };
}

async function rawEhlo(port: number): Promise<string> {
  const { transcript, socket } = await rawSession(port, ['EHLO client.test']);
  socket.destroy();
  return transcript;
}
