import { createMailer, type Mailer, type ToolErrorPayload } from '@agent-smtp/core';
import { createAiSdkTools } from '@agent-smtp/ai-sdk';
import { createLangChainTools } from '@agent-smtp/langchain';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { ToolMessage } from '@langchain/core/messages';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// A wrong password is for the user to fix. Every adapter must hand the model the same verdict: not retryable, no
// retry time, the server's words, on the first call and while the server backs off after it.
let sink: SmtpSink;
let mailer: Mailer;

beforeEach(async () => {
  sink = await startSmtpSink({ auth: { user: 'agent', pass: 'the-right-password' } });
  mailer = createMailer({
    servers: [sink.serverConfig({ name: 'sink', auth: { user: 'agent', pass: 'a-wrong-password' } })],
    defaults: { from: 'agent@example.com' },
    env: {},
  });
});
afterEach(async () => {
  await mailer.close();
  await sink.close();
});

const email = { to: 'ada@example.com', subject: 'Hello', body: 'Hi.' };

describe('a refused SMTP login, as each adapter reports it', () => {
  it('AI SDK: { error } with code SMTP_AUTH, retryable false and no retry_at, on both calls', async () => {
    const { send_email: sendEmail } = createAiSdkTools(mailer);
    for (const toolCallId of ['call-1', 'call-2']) {
      const result = (await sendEmail!.execute!(email, { toolCallId, messages: [] })) as { error: ToolErrorPayload };
      expect(result.error, toolCallId).toMatchObject({ code: 'SMTP_AUTH', retryable: false });
      expect(result.error, toolCallId).not.toHaveProperty('retry_at');
      expect(result.error.message, toolCallId).toContain('535 5.7.8');
      expect(result.error.message, toolCallId).not.toMatch(/try again|backing off after earlier failures/i);
    }
    expect(sink.messages).toHaveLength(0);
  });

  it('LangChain: an error ToolMessage whose artifact is not retryable, on both calls', async () => {
    const sendEmail = createLangChainTools(mailer).find((t) => t.name === 'send_email')!;
    for (const id of ['call-1', 'call-2']) {
      const message = (await sendEmail.invoke({ type: 'tool_call', id, name: 'send_email', args: email })) as ToolMessage;
      expect(ToolMessage.isInstance(message), id).toBe(true);
      expect(message.status, id).toBe('error');
      expect(message.artifact, id).toMatchObject({ code: 'SMTP_AUTH', retryable: false });
      expect(message.artifact, id).not.toHaveProperty('retry_at');
      expect(String(message.content), id).toContain('535 5.7.8');
      expect(String(message.content), id).not.toMatch(/try again after|retry after/i);
    }
    expect(sink.messages).toHaveLength(0);
  });
});
