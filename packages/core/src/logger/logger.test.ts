import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { type Logger, redact, safeLogger, silentLogger } from './logger.js';

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const push = (obj: object, msg?: string): void => {
    lines.push(JSON.stringify({ ...obj, msg }));
  };
  return { logger: { debug: push, info: push, warn: push, error: push }, lines };
}

describe('logging', () => {
  let sink: SmtpSink | undefined;
  let mailer: Mailer | undefined;
  afterEach(async () => {
    await mailer?.close();
    await sink?.close();
  });

  it('redacts secret-looking fields and reduces errors to name, message and code', () => {
    const err = Object.assign(new Error('boom'), { code: 'EAUTH', responseCode: 535, pass: 'x' });
    expect(
      redact({ auth: { user: 'u', pass: 'p1' }, password: 'p2', apiKey: 'k', Authorization: 'Bearer t', nested: [{ token: 't2' }], err }),
    ).toEqual({
      auth: { user: 'u', pass: '[redacted]' },
      password: '[redacted]',
      apiKey: '[redacted]',
      Authorization: '[redacted]',
      nested: [{ token: '[redacted]' }],
      err: { name: 'Error', message: 'boom', code: 'EAUTH', responseCode: 535 },
    });
  });

  it('never writes the SMTP password to the logs, even when authentication fails', async () => {
    sink = await startSmtpSink({ auth: { user: 'robot', pass: 'correct-horse' } });
    const { logger, lines } = capture();
    mailer = createMailer({
      servers: [{ ...sink.serverConfig(), auth: { user: 'robot', pass: 'battery-staple-secret' }, maxRetries: 0 }],
      defaults: { from: 'agent@example.com' },
      logger,
    });
    await expect(mailer.send({ to: 'ada@example.com', subject: 's', text: 't' })).rejects.toMatchObject({ code: 'SMTP_AUTH' });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain('battery-staple-secret');
  });

  it('writes nothing anywhere by default, even while failing over', async () => {
    sink = await startSmtpSink({ behavior: { mailFrom: () => ({ code: 451, message: '4.3.0 later' }) } });
    mailer = createMailer({ servers: [{ ...sink.serverConfig(), maxRetries: 0 }], defaults: { from: 'agent@example.com' }, env: {} });
    const written: string[] = [];
    const spies = [
      vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (written.push(String(chunk)), true)),
      vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (written.push(String(chunk)), true)),
      ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((level) =>
        vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void written.push(args.join(' '))),
      ),
    ];
    try {
      await expect(mailer.send({ to: 'ada@example.com', subject: 's', text: 't' })).rejects.toMatchObject({ code: 'SMTP_UNAVAILABLE' });
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(written).toEqual([]);
    expect(safeLogger(undefined)).toBe(silentLogger);
  });
});
