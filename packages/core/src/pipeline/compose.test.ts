import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { ValidationError } from '../errors/validation-error.js';
import { createMailer, type Mailer, type MailerOptions } from '../mailer/mailer.js';
import { ACCEPTED_ADDRESSES, REFUSED_ADDRESSES } from '../message/__fixtures__/address-corpus.js';
import type { OutgoingEmail } from '../message/email-schema.js';
import { toDisplayAddress } from '../message/address.js';
import type { SmtpSink } from '@agent-smtp/testing';
import { startSmtpWireTap } from './__fixtures__/smtp-wire-tap.js';

// The compose pipeline end to end: what it accepts is what a real SMTP server receives, and what it refuses never
// reaches one.

const resources = useTestResources();
const MiB = 1024 * 1024;

function mailer(sink: SmtpSink, options: Partial<MailerOptions> = {}): Mailer {
  return resources.track(createMailer({ servers: [sink.serverConfig()], defaults: { from: 'agent@example.com' }, env: {}, ...options }));
}

/** Sends each input and reports how it was refused: a ValidationError's code and field, or what else happened. */
async function refusals(m: Mailer, inputs: readonly OutgoingEmail[]): Promise<unknown[]> {
  return Promise.all(
    inputs.map((input) =>
      m.send(input).then(
        (result) => ({ sent: result.status }),
        (err: unknown) => (err instanceof ValidationError ? { code: err.code, field: err.field } : { unexpected: String(err) }),
      ),
    ),
  );
}

describe('addresses: what we record is what RCPT TO said', () => {
  it('for every accepted address, the RCPT TO on the wire is what the result and getStatus show', async () => {
    const sink = await resources.sink();
    const tap = await startSmtpWireTap(sink);
    const m = mailer(sink, { servers: [sink.serverConfig({ port: tap.port })] });
    const rows = [];
    try {
      for (const [i, { input, wire }] of ACCEPTED_ADDRESSES.entries()) {
        const result = await m.send({ to: input, subject: `corpus ${i}`, text: 'x' });
        const status = await m.getStatus(result.id);
        rows.push({
          expected: wire,
          rcptTo: tap.rcptTo().slice(i),
          // smtp-server decodes A-labels before its callbacks see them: the sink holds the display form.
          sinkEnvelope: sink.messages[i]?.envelope.to,
          accepted: result.accepted,
          recorded: status?.email.to.map((a) => a.address),
          display: status?.email.to.map(toDisplayAddress),
        });
      }
    } finally {
      await m.close();
      await tap.close();
    }
    for (const row of rows) {
      expect(row).toEqual({ ...row, rcptTo: [row.expected], sinkEnvelope: row.display, accepted: [row.expected], recorded: [row.expected] });
    }
    expect(rows).toHaveLength(ACCEPTED_ADDRESSES.length);
    expect(sink.messages).toHaveLength(ACCEPTED_ADDRESSES.length);
  });

  it('refuses every hostile address with a ValidationError naming the field, before connecting', async () => {
    const sink = await resources.sink();
    const m = mailer(sink);
    const outcomes = await refusals(
      m,
      REFUSED_ADDRESSES.map(({ input }) => ({ to: 'ok@example.com', cc: [input], subject: 's', text: 'x' })),
    );
    for (const outcome of outcomes) expect(outcome).toEqual({ code: 'VALIDATION_ERROR', field: expect.stringMatching(/^cc\[0\](\.address|\.name)?$/) });
    expect(sink.messages).toHaveLength(0);
    expect(sink.stats.connections).toBe(0);
  });
});

describe('size: the final message is checked, headers included', () => {
  it('refuses what renders or adds up to more than the limit, naming the field, and sends nothing', async () => {
    const sink = await resources.sink();
    const m = mailer(sink, { limits: { maxMessageBytes: MiB } });
    const big = 'x'.repeat(50_000);
    const repeated = '{v}'.repeat(40);
    const headers = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`X-Big-${i}`, 'h'.repeat(MiB)]));
    const cases: [expected: string, input: OutgoingEmail][] = [
      ['html', { to: 'a@example.com', subject: 's', html: `<p>${repeated}</p>`, variables: { v: big } }],
      ['text', { to: 'a@example.com', subject: 's', text: repeated, variables: { v: big } }],
      ['markdown', { to: 'a@example.com', subject: 's', markdown: repeated, variables: { v: big } }],
      ['subject', { to: 'a@example.com', subject: '{v}', text: 'x', variables: { v: 'y'.repeat(50_001) } }],
      ['subject', { to: 'a@example.com', subject: 'y'.repeat(50_001), text: 'x' }],
      ['headers.X-Big-0', { to: 'a@example.com', subject: 's', text: 'x', headers }],
      ['headers.X-Long', { to: 'a@example.com', subject: 's', text: 'x', headers: { 'X-Long': 'v'.repeat(991) } }],
      ['headers', { to: 'a@example.com', subject: 's', text: 'x', headers: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-${i}`, 'v'])) }],
      ['text', { to: 'a@example.com', subject: 's', text: 't'.repeat(MiB), attachments: [{ filename: 'a.bin', content: 'a'.repeat(1000) }] }],
    ];
    const outcomes = await refusals(m, cases.map(([, input]) => input));
    expect(outcomes).toEqual(cases.map(([field]) => ({ code: 'VALIDATION_ERROR', field })));
    expect(sink.messages).toHaveLength(0);
    expect(sink.stats.connections).toBe(0);
  });

  it('sends a templated message that fits, every header intact', async () => {
    const sink = await resources.sink();
    const m = mailer(sink, { limits: { maxMessageBytes: MiB } });
    await m.send({ to: 'a@example.com', subject: 'Hi {name}', text: 'Dear {name}', headers: { 'X-Long': 'v'.repeat(900) }, variables: { name: 'Ada' } });
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Hi Ada');
    expect(received!.headers.get('x-long')).toBe('v'.repeat(900));
  });
});

describe('attachments: no containers, safe file names', () => {
  it('refuses multipart/* and message/* content types, naming the attachment', async () => {
    const sink = await resources.sink();
    const m = mailer(sink);
    const types = ['multipart/mixed', 'multipart/alternative; boundary="x"', 'Multipart/Related ; type=text/html', 'message/rfc822', 'MESSAGE/partial', 'text', 'text/plain/x'];
    const outcomes = await refusals(
      m,
      types.map((contentType) => ({ to: 'a@example.com', subject: 's', text: 'x', attachments: [{ filename: 'ok.txt', content: 'x' }, { filename: 'f', content: 'x', contentType }] })),
    );
    expect(outcomes).toEqual(types.map(() => ({ code: 'VALIDATION_ERROR', field: 'attachments[1].contentType' })));
    expect(sink.stats.connections).toBe(0);
  });

  it('reduces every file name to a safe base name, as the recipient sees it', async () => {
    const sink = await resources.sink();
    const m = mailer(sink);
    const names: [given: string, received: string][] = [
      ['../../x.sh', 'x.sh'],
      ['/tmp/x', 'x'],
      ['C:\\Windows\\x.bat', 'x.bat'],
      ['..\\..\\evil.exe', 'evil.exe'],
      ['a/b/../c.txt', 'c.txt'],
      ['invoice\u202Efdp.exe', 'invoicefdp.exe'],
      ['\u0007bell\u001b.txt', 'bell.txt'],
      ['..', 'attachment-8'],
      ['dir/.hidden', 'hidden'],
      ['report.pdf. . ', 'report.pdf'],
      ['résumé 2024.pdf', 'résumé 2024.pdf'],
    ];
    await m.send({ to: 'a@example.com', subject: 's', text: 'x', attachments: names.map(([filename]) => ({ filename, content: 'data' })) });
    const [received] = await sink.waitForMessages(1);
    expect(received!.attachments.map((a) => a.filename)).toEqual(names.map(([, name]) => name));
  });

  it('sends a file whose name implies a container type as plain bytes', async () => {
    const sink = await resources.sink();
    const m = mailer(sink);
    const eml = 'From: a@example.com\r\nSubject: old\r\n\r\nbody\r\n';
    await m.send({ to: 'a@example.com', subject: 's', text: 'x', attachments: [{ filename: 'forwarded.eml', content: eml }] });
    const [received] = await sink.waitForMessages(1);
    // mailparser guesses a type from the file name, so the part's own header is read from the raw message.
    expect(received!.raw.toString('utf8')).toContain('Content-Type: application/octet-stream; name=forwarded.eml\r\n');
    expect(received!.attachments.map((a) => [a.filename, a.content.toString('utf8')])).toEqual([['forwarded.eml', eml]]);
  });
});

describe('idempotency and threading', () => {
  it('treats different tags or metadata under one key as a conflict, and reordered ones as the same message', async () => {
    const sink = await resources.sink();
    const m = mailer(sink);
    const email = { to: 'a@example.com', subject: 's', text: 'x', idempotencyKey: 'k-1', tags: ['a', 'b'], metadata: { order: 1, ref: 'r' } };
    const first = await m.send(email);
    const replay = await m.send({ ...email, tags: ['b', 'a'], metadata: { ref: 'r', order: 1 } });
    const conflicts = await Promise.all(
      ([{ tags: ['a'] }, { tags: ['a', 'c'] }, { metadata: { order: 2, ref: 'r' } }, { metadata: { order: 1 } }] as Partial<OutgoingEmail>[]).map((patch) =>
        m.send({ ...email, ...patch }).then(
          () => 'sent',
          (err: { code?: string }) => err.code,
        ),
      ),
    );
    expect(replay).toMatchObject({ id: first.id, replayed: true });
    expect(conflicts).toEqual(['IDEMPOTENCY_CONFLICT', 'IDEMPOTENCY_CONFLICT', 'IDEMPOTENCY_CONFLICT', 'IDEMPOTENCY_CONFLICT']);
    expect(sink.messages).toHaveLength(1);
  });

  it('sends In-Reply-To and References as Message-IDs and refuses anything else, naming the field', async () => {
    const sink = await resources.sink();
    const m = mailer(sink);
    const base = { to: 'a@example.com', subject: 'Re: s', text: 'x' };
    const bad: [field: string, patch: Partial<OutgoingEmail>][] = [
      ['inReplyTo', { inReplyTo: 'abc@example.com' }],
      ['inReplyTo', { inReplyTo: '<abc>' }],
      ['inReplyTo', { inReplyTo: '<a@b> <c@d>' }],
      ['inReplyTo', { inReplyTo: '<a@b@c>' }],
      ['references[1]', { references: ['<a@example.com>', 'plain'] }],
      ['references', { references: '<a@example.com> <b@example.com' }],
      ['references[0]', { references: ['<a@exa\u0000mple.com>'] }],
    ];
    const outcomes = await refusals(m, bad.map(([, patch]) => ({ ...base, ...patch })));
    expect(outcomes).toEqual(bad.map(([field]) => ({ code: 'VALIDATION_ERROR', field })));
    expect(sink.stats.connections).toBe(0);

    await m.send({ ...base, inReplyTo: '<first@example.com>', references: '<root@example.com>  <first@example.com>' });
    const [received] = await sink.waitForMessages(1);
    expect(received!.headers.get('in-reply-to')).toBe('<first@example.com>');
    expect(received!.headers.get('references')).toEqual(['<root@example.com>', '<first@example.com>']);
  });
});
