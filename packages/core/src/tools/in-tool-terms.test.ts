import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import { createMailTools, type MailToolName } from './create-mail-tools.js';
import type { MailTool, ToolErrorPayload, ToolOutcome } from './define-tool.js';

let sink: SmtpSink;
let mailer: Mailer;
let tools: Map<string, MailTool>;

beforeEach(async () => {
  sink = await startSmtpSink();
  mailer = createMailer({
    servers: [sink.serverConfig({ name: 'sink' })],
    defaults: { from: 'agent@example.com' },
    limits: { maxMessageBytes: 1024 * 1024, maxRecipients: 100, maxMarkdownBytes: 2_000 },
    env: {},
  });
  tools = new Map(createMailTools(mailer).map((t) => [t.name, t]));
});
afterEach(async () => {
  await mailer.close();
  await sink.close();
});

async function call(name: MailToolName, input: unknown): Promise<ToolOutcome<Record<string, unknown>>> {
  const tool = tools.get(name)!;
  return tool.execute(tool.inputSchema.parse(input));
}

/** The error of a failed call; a successful one fails the test. */
function errorOf(outcome: ToolOutcome<Record<string, unknown>>): ToolErrorPayload {
  if (outcome.ok) throw new Error(`expected an error result, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

const email = { to: 'ada@example.com', subject: 'Hello', body: 'Hi.' };

/** Inputs the core refuses, each with the tool field the model must be told to fix. */
const REFUSED: [what: string, tool: MailToolName, input: Record<string, unknown>, field: string][] = [
  ['an address that is not one', 'send_email', { ...email, to: 'not an address' }, 'to'],
  ['a bad reply_to', 'send_email', { ...email, reply_to: 'nope' }, 'reply_to'],
  ['an in_reply_to that is not a Message-ID', 'send_email', { ...email, in_reply_to: 'abc' }, 'in_reply_to'],
  ['attachment content that is not base64', 'send_email', { ...email, attachments: [{ filename: 'a.txt', content_base64: '!!not base64!!' }] }, 'attachments[0].content_base64'],
  ['an attachment type that is not a media type', 'send_email', { ...email, attachments: [{ filename: 'a.txt', content_base64: 'aGk=', content_type: 'text' }] }, 'attachments[0].content_type'],
  ['a Markdown body over the Markdown limit', 'send_email', { ...email, format: 'markdown', body: 'word '.repeat(1_000) }, 'body'],
  ['an idempotency_key with a NUL', 'send_email', { ...email, idempotency_key: 'key\u0000' }, 'idempotency_key'],
  ['a server name that is not configured', 'switch_smtp_server', { name: 'other' }, 'name'],
];

// Names the core uses that no tool takes, and advice only a programmer calling the core could follow.
const CORE_ONLY = [/\bcontent:/, /\bencoding\b/, /\breplyTo\b/, /\binReplyTo\b/, /\bidempotencyKey\b/, /\bcontentType\b/, /\bmarkdown:/, /limits\.\w+/, /\bas html\b/, /^server:/];

describe('tool errors in the tool’s own terms', () => {
  it.each(REFUSED)('%s: names the tool field and gives only advice the model can follow', async (_, tool, input, field) => {
    const error = errorOf(await call(tool, input));
    expect(error).toMatchObject({ code: 'VALIDATION_ERROR', field, retryable: false });
    // The field is one the tool's input has, and the message opens with it.
    expect(Object.keys(tools.get(tool)!.inputSchema.shape)).toContain(field.split(/[.[]/)[0]);
    expect(error.message.startsWith(`${field}: `), error.message).toBe(true);
    for (const pattern of CORE_ONLY) expect(error.message, `${pattern}`).not.toMatch(pattern);
  });

  it('tells how to encode an attachment, in the tool’s field, not to set an encoding the tool does not have', async () => {
    const error = errorOf(await call('send_email', { ...email, attachments: [{ filename: 'a.txt', content_base64: 'héllo' }] }));
    expect(error.message).toBe('attachments[0].content_base64: is not valid base64: encode the file\'s bytes as base64 (A-Z, a-z, 0-9, "+" and "/", padded with "=")');
  });

  it('says a long Markdown body may go with format "html"', async () => {
    const error = errorOf(await call('send_email', { ...email, format: 'markdown', body: 'word '.repeat(1_000) }));
    expect(error.message).toContain('send a long body with format "html" instead');
  });

  it('a missing sender is the operator’s to fix: CONFIG_ERROR naming SMTP_FROM_EMAIL, never "pass from"', async () => {
    const noSender = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], env: {} });
    try {
      const [send] = createMailTools(noSender, { include: ['send_email'] });
      const error = errorOf(await send!.execute(send!.inputSchema.parse(email)));
      expect(error).toMatchObject({ code: 'CONFIG_ERROR', retryable: false });
      expect(error).not.toHaveProperty('field');
      expect(error.message).toContain('The operator must set SMTP_FROM_EMAIL');
      expect(error.message).not.toMatch(/pass from|from:/);
      expect(error.hint).toContain('Tell the user');
      expect(sink.messages).toHaveLength(0);
    } finally {
      await noSender.close();
    }
  });
});
