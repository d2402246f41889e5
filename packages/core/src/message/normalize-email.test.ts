import { describe, expect, it } from 'vitest';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { DEFAULT_LIMITS } from './limits.js';
import { normalizeEmail } from './normalize-email.js';

const base = { to: 'ada@example.com', subject: 'Hi', text: 'Hello' };

function refusal(input: unknown, limits = DEFAULT_LIMITS): ValidationError {
  try {
    normalizeEmail(input, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    expect(AgentSmtpError.isInstance(err)).toBe(true);
    expect((err as ValidationError).code).toBe('VALIDATION_ERROR');
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('normalizeEmail', () => {
  it('parses every address form into one structured form', () => {
    const email = normalizeEmail(
      {
        ...base,
        from: { name: 'Bot', address: 'bot@Agents.Example' },
        to: ['Ada Lovelace <ada@example.com>', { name: 'Grace', address: 'grace@navy.mil' }],
        cc: 'a@x.org, "Doe, John" <john@y.org>',
        bcc: 'hidden@z.org',
      },
      DEFAULT_LIMITS,
    );
    expect(email.from).toEqual({ name: 'Bot', address: 'bot@agents.example', domain: 'agents.example' });
    expect(email.to).toEqual([
      { name: 'Ada Lovelace', address: 'ada@example.com', domain: 'example.com' },
      { name: 'Grace', address: 'grace@navy.mil', domain: 'navy.mil' },
    ]);
    expect(email.cc.map((a) => a.address)).toEqual(['a@x.org', 'john@y.org']);
    expect(email.cc[1]!.name).toBe('Doe, John');
    expect(email.bcc).toEqual([{ name: undefined, address: 'hidden@z.org', domain: 'z.org' }]);
  });

  it.each([
    ['subject', { subject: 'Hi\r\nBcc: victim@example.com' }],
    ['subject', { subject: 'Hi\nthere' }],
    ['to[0].name', { to: [{ name: 'Eve\r\nBcc: x@y.z', address: 'eve@example.com' }] }],
    ['to', { to: 'Eve\r\n <eve@example.com>' }],
    ['headers.X-Campaign', { headers: { 'X-Campaign': 'a\r\nBcc: x@y.z' } }],
    ['attachments[0].filename', { attachments: [{ filename: 'a\r\n.txt', content: 'x' }] }],
    ['inReplyTo', { inReplyTo: '<a@b>\r\nX: y' }],
  ])('refuses a line break in %s', (field, patch) => {
    expect(refusal({ ...base, ...patch }).field).toBe(field);
  });

  it.each([
    ['to', 'not-an-address'],
    ['to', 'a@'],
    ['to', '@example.com'],
    ['to', 'a b@example.com'],
    ['to', 'a@exa mple.com'],
    ['to', 'a..b@example.com'],
    ['to', 'a@-example.com'],
    ['to', 'a@nodot'],
    ['to', 'Ada ada@example.com'],
  ])('refuses the malformed address %s -> %s', (field, to) => {
    const err = refusal({ ...base, to });
    expect(err.field).toBe(field);
    expect(err.message).toContain('not');
  });

  it('names the index of a bad address in a list', () => {
    expect(refusal({ ...base, to: ['ok@example.com', 'nope'] }).field).toBe('to[1]');
  });

  it('refuses a message without recipients or body, and unknown fields', () => {
    expect(refusal({ subject: 'x', text: 'y' }).message).toBe('to: needs at least one recipient (to, cc or bcc)');
    expect(refusal({ ...base, to: [] }).field).toBe('to');
    expect(refusal({ to: 'a@b.co', subject: 'x' }).field).toBe('text');
    expect(refusal({ ...base, subject: undefined }).message).toBe('subject: is required');
    const unknown = refusal({ ...base, bodyy: 'x' });
    expect(unknown.message).toContain('"bodyy"');
    const withPath = refusal({ ...base, attachments: [{ filename: 'passwd', path: '/etc/passwd' }] });
    // A path is read only by the mailer, from inside an agent's attachment folder; normalizing alone never reads one.
    expect(withPath.field).toBe('attachments[0].path');
    expect(withPath.message).toContain('no attachment folder');
  });

  it('refuses headers the SDK writes itself, and bad header names', () => {
    expect(refusal({ ...base, headers: { Bcc: 'x@y.z' } }).message).toContain('use the "bcc" field');
    expect(refusal({ ...base, headers: { 'Message-ID': '<x@y>' } }).field).toBe('headers.Message-ID');
    expect(refusal({ ...base, headers: { 'Bad Name': 'v' } }).field).toBe('headers.Bad Name');
  });

  it('refuses a message over the size limit, naming the limit', () => {
    const limits = { ...DEFAULT_LIMITS, maxMessageBytes: 1024 };
    const err = refusal({ ...base, attachments: [{ filename: 'big.bin', content: Buffer.alloc(2048).toString('base64'), encoding: 'base64' }] }, limits);
    expect(err.field).toBe('attachments[0].content');
    expect(err.message).toContain('maxMessageBytes');
    const two = Buffer.alloc(600).toString('base64');
    const both = refusal({ ...base, attachments: [{ filename: 'a', content: two, encoding: 'base64' }, { filename: 'b', content: two, encoding: 'base64' }] }, limits);
    expect(both.field).toBe('attachments');
    expect(refusal({ ...base, text: 'x'.repeat(2000) }, limits).field).toBe('text');
  });

  it('refuses too many recipients', () => {
    const to = Array.from({ length: 3 }, (_, i) => `r${i}@example.com`);
    expect(refusal({ ...base, to }, { ...DEFAULT_LIMITS, maxRecipients: 2 }).message).toContain('maxRecipients');
  });

  it('decodes base64 and utf8 attachments and refuses bad base64', () => {
    const email = normalizeEmail(
      {
        ...base,
        attachments: [
          { filename: 'a.txt', content: 'héllo' },
          { filename: 'b.bin', content: Buffer.from([0, 255, 1]).toString('base64'), encoding: 'base64' },
        ],
      },
      DEFAULT_LIMITS,
    );
    expect(email.attachments[0]!.content.toString('utf8')).toBe('héllo');
    expect([...email.attachments[1]!.content]).toEqual([0, 255, 1]);
    expect(refusal({ ...base, attachments: [{ filename: 'x', content: '***', encoding: 'base64' }] }).field).toBe('attachments[0].content');
  });
});
