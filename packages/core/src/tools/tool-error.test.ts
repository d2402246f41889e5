import { describe, expect, it } from 'vitest';
import { sampleToolInputs } from './__fixtures__/tool-inputs.js';
import { AgentSmtpError, type AgentSmtpErrorCode } from '../errors/agent-smtp-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import { TemplateError } from '../errors/template-error.js';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import { createMailTools, MAIL_TOOL_NAMES, type MailToolName, OPERATOR_TOOL_NAMES } from './create-mail-tools.js';
import type { ToolErrorPayload } from './define-tool.js';
import { formatToolError, TOOL_ERROR_HINTS, toToolError } from './tool-error.js';

const CODES = Object.keys(TOOL_ERROR_HINTS.sending) as AgentSmtpErrorCode[];

/** A mailer whose every method fails with `error`: each tool then reports it as it would a real failure. */
function failingWith(mailer: Mailer, error: unknown): Mailer {
  return new Proxy(mailer, {
    get: (target, key) => {
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? () => { throw error; } : value;
    },
  });
}

const INPUTS = sampleToolInputs({ send_email: { to: 'ada@example.com', subject: 's', body: 'b' } });

// What only a tool that sends may say: whether anything was sent, and how to send again without a duplicate.
const ABOUT_SENDING = /\bsent\b|\bsend(?:ing)? again\b|\bresend\b|idempotency_key/i;

describe('tool error hints', () => {
  it('fit the tool: no tool that sends nothing says "Nothing was sent" or how to resend, for any code', async () => {
    const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: 2525 }], defaults: { from: 'agent@example.com' }, env: {} });
    try {
      const hints: [MailToolName, string, string][] = [];
      for (const code of [...CODES, 'a thrown string'] as const) {
        const error = code === 'a thrown string' ? 'driver exploded' : new AgentSmtpError(code, `failed with ${code}`);
        for (const tool of createMailTools(failingWith(mailer, error), { operator: true })) {
          const outcome = await tool.execute(tool.inputSchema.parse(INPUTS[tool.name as MailToolName]));
          if (outcome.ok) throw new Error(`${tool.name} succeeded although its mailer throws`);
          hints.push([tool.name as MailToolName, outcome.error.code, outcome.error.hint]);
        }
      }
      // Every tool answered for every code (plus the foreign error), so the assertions below cover them all.
      expect(hints).toHaveLength((CODES.length + 1) * (MAIL_TOOL_NAMES.length + OPERATOR_TOOL_NAMES.length));
      for (const [tool, code, hint] of hints.filter(([tool]) => tool !== 'send_email')) expect(hint, `${tool} ${code}`).not.toMatch(ABOUT_SENDING);
      // The control: send_email does say it, where it matters.
      const sendHints = new Map(hints.filter(([tool]) => tool === 'send_email').map(([, code, hint]) => [code, hint]));
      expect(sendHints.get('VALIDATION_ERROR')).toContain('Nothing was sent.');
      expect(sendHints.get('SMTP_UNAVAILABLE')).toContain('same idempotency_key');
    } finally {
      await mailer.close();
    }
  });

  it('get_email_status of an unknown id is NOT_FOUND, with a hint about the id only', async () => {
    const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: 2525 }], env: {} });
    try {
      const [status] = createMailTools(mailer, { include: ['get_email_status'] });
      const outcome = await status!.execute({ id: 'msg_does_not_exist' });
      expect(outcome).toMatchObject({ ok: false, error: { code: 'NOT_FOUND', retryable: false } });
      expect((outcome as { error: ToolErrorPayload }).error.hint).not.toMatch(ABOUT_SENDING);
    } finally {
      await mailer.close();
    }
  });
});

describe('toToolError', () => {
  const retryAt = new Date('2030-01-01T00:00:00.000Z');

  it('an auth or TLS refusal is not retryable for the model and carries no retry time', () => {
    const payload = toToolError(new SmtpError('SMTP_AUTH', 'The SMTP server refused the configured login.', { retryAt }), { tool: 'send_email' });
    expect(payload).toMatchObject({ code: 'SMTP_AUTH', retryable: false });
    expect(payload).not.toHaveProperty('retry_at');
    expect(formatToolError(payload)).not.toMatch(/retry after|try again/i);
  });

  it('a server that may recover keeps retryable and retry_at', () => {
    const payload = toToolError(new SmtpError('SMTP_UNAVAILABLE', 'No server.', { retryAt }), { tool: 'send_email' });
    expect(payload).toMatchObject({ retryable: true, retry_at: retryAt.toISOString() });
  });
});

describe('formatToolError', () => {
  /** Sentences of a paragraph, for "nothing is said twice". */
  const sentences = (text: string): string[] => text.split(/(?<=\.)\s+/).map((s) => s.trim().toLowerCase());

  it.each([
    ['a retry time the message already gives', toToolError(new SmtpError('SMTP_UNAVAILABLE', 'No server took it. Try again after 2030-01-01T00:00:00.000Z.', { retryAt: new Date('2030-01-01T00:00:00.000Z') }))],
    ['missing variables the message already names', toToolError(new TemplateError('Missing template variables: code; pass them in variables', { missing: ['code'] }))],
  ])('does not repeat %s', (_, payload) => {
    const text = formatToolError(payload);
    const time = payload.retry_at ?? payload.missing!.join(', ');
    expect(text.split(time)).toHaveLength(2);
    const all = sentences(text);
    expect(new Set(all).size).toBe(all.length);
  });
});
