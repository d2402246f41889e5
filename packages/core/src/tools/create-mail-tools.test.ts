import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod/v4';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import { type SmtpSink, startSmtpSink } from '../testing/smtp-sink.js';
import { createMailTools, MAIL_TOOL_NAMES, type MailToolName } from './create-mail-tools.js';
import type { MailTool } from './define-tool.js';

let sink: SmtpSink;
let mailer: Mailer;
let tools: Map<string, MailTool>;

beforeEach(async () => {
  sink = await startSmtpSink({ auth: { user: 'robot', pass: 'tool-secret-pw' } });
  mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
  tools = new Map(createMailTools(mailer).map((t) => [t.name, t]));
});
afterEach(async () => {
  await mailer.close();
  await sink.close();
});

async function call(name: MailToolName, input: unknown, toolCallId?: string) {
  const tool = tools.get(name)!;
  return tool.execute(tool.inputSchema.parse(input), { toolCallId });
}

describe('createMailTools', () => {
  it('defines the tools with names, titles, descriptions, schemas and honest annotations', () => {
    expect([...tools.keys()]).toEqual(MAIL_TOOL_NAMES);
    for (const tool of tools.values()) {
      expect(tool.title.length).toBeGreaterThan(3);
      expect(tool.description.length).toBeGreaterThan(80);
      expect(() => z.toJSONSchema(tool.inputSchema)).not.toThrow();
      expect(() => z.toJSONSchema(tool.outputSchema)).not.toThrow();
    }
    expect(tools.get('send_email')!.annotations).toEqual({ readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true });
    expect(tools.get('get_smtp_status')!.annotations.readOnlyHint).toBe(true);
  });

  it('send_email delivers and returns id, status and recipients', async () => {
    const outcome = await call('send_email', { to: ['ada@example.com', 'Grace <grace@example.com>'], cc: 'c@example.com', subject: 'Hi {name}', body: 'Hello {name}', variables: { name: 'Ada' } });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.value).toMatchObject({ status: 'sent', server: 'sink', accepted: ['ada@example.com', 'grace@example.com', 'c@example.com'], rejected: [], replayed: false });
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Hi Ada');
    expect(received!.text?.trim()).toBe('Hello Ada');
    expect(received!.envelope.to).toEqual(['ada@example.com', 'grace@example.com', 'c@example.com']);
  });

  it('send_email sends markdown as HTML and text parts, and attachments from base64', async () => {
    await call('send_email', {
      to: 'ada@example.com',
      subject: 'Report',
      body: '## Weekly report\n\n- **3** incidents\n- all resolved',
      format: 'markdown',
      attachments: [{ filename: 'r.csv', content_base64: Buffer.from('a,b\n1,2\n').toString('base64'), content_type: 'text/csv' }],
    });
    const [received] = await sink.waitForMessages(1);
    expect(received!.html).toContain('<h2>Weekly report</h2>');
    expect(received!.html).toContain('<li><strong>3</strong> incidents</li>');
    expect(received!.text).toContain('## Weekly report');
    expect(received!.attachments[0]).toMatchObject({ filename: 'r.csv', contentType: 'text/csv' });
    expect(received!.attachments[0]!.content.toString()).toBe('a,b\n1,2\n');
  });

  it('uses the tool-call id as the idempotency key, so a retried call sends once', async () => {
    const input = { to: 'ada@example.com', subject: 'Once', body: 'x' };
    const first = await call('send_email', input, 'call_123');
    const retry = await call('send_email', input, 'call_123');
    expect(first.ok && retry.ok).toBe(true);
    if (!first.ok || !retry.ok) return;
    expect(retry.value).toMatchObject({ id: first.value.id, replayed: true });
    await call('send_email', input, 'call_456');
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.messages).toHaveLength(2);
  });

  it('returns errors a model can act on, naming the tool’s own fields, with no secrets', async () => {
    const badAddress = await call('send_email', { to: 'not an address', subject: 's', body: 'b' });
    expect(badAddress).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR', field: 'to', retryable: false } });
    const badReplyTo = await call('send_email', { to: 'a@example.com', reply_to: 'nope', subject: 's', body: 'b' });
    expect(badReplyTo).toMatchObject({ ok: false, error: { field: 'reply_to' } });
    const missing = await call('send_email', { to: 'a@example.com', subject: 'Hi {name}', body: '{greeting}' , variables: {} });
    expect(missing).toMatchObject({ ok: false, error: { code: 'TEMPLATE_ERROR', missing: ['name', 'greeting'] } });
    if (!missing.ok) expect(missing.error.hint).toContain('missing');

    sink.behavior.rcptTo = () => ({ code: 550, message: '5.1.1 No such user here' });
    const rejected = await call('send_email', { to: 'gone@example.com', subject: 's', body: 'b' });
    expect(rejected).toMatchObject({ ok: false, error: { code: 'SMTP_REJECTED', retryable: false } });
    if (!rejected.ok) {
      expect(rejected.error.message).toContain('5.1.1 No such user here');
      expect(rejected.error.hint).toContain('Do not retry');
    }
    const everything = JSON.stringify([badAddress, badReplyTo, missing, rejected]);
    expect(everything).not.toContain('tool-secret-pw');
    expect(everything).not.toMatch(/at .*\.ts:\d+/);
    expect(sink.messages).toHaveLength(0);
  });

  it('get_email_status returns the history, and an error for an unknown id', async () => {
    const sent = await call('send_email', { to: 'ada@example.com', subject: 's', body: 'b' });
    if (!sent.ok) throw new Error('send failed');
    const status = await call('get_email_status', { id: sent.value.id });
    expect(status).toMatchObject({ ok: true, value: { id: sent.value.id, status: 'sent', to: ['ada@example.com'], subject: 's' } });
    if (status.ok) expect((status.value as { history: { event: string }[] }).history.map((h) => h.event)).toEqual(['queued', 'claimed', 'sent']);
    expect(await call('get_email_status', { id: 'msg_nope' })).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR', field: 'id' } });
  });

  it('server tools test, show, switch, reload and reconnect without leaking credentials', async () => {
    const tested = await call('test_smtp_connection', {});
    expect(tested).toMatchObject({ ok: true, value: { servers: [{ name: 'sink', ok: true }] } });
    expect(await call('get_smtp_status', {})).toMatchObject({ ok: true, value: { servers: [{ name: 'sink', state: 'healthy', preferred: false }] } });
    expect(await call('switch_smtp_server', { name: 'sink' })).toMatchObject({ ok: true, value: { servers: [{ preferred: true }] } });
    expect(await call('switch_smtp_server', { name: 'other' })).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR', field: 'server' } });
    expect(await call('reconnect_smtp_servers', {})).toMatchObject({ ok: true });
    // This mailer was given its servers in code: reloading keeps them (it never reads the environment instead).
    expect(await call('reload_smtp_configuration', {})).toMatchObject({ ok: true, value: { servers: [{ name: 'sink' }] } });
    const all = JSON.stringify(await Promise.all(['get_smtp_status', 'test_smtp_connection'].map((n) => call(n as MailToolName, {}))));
    expect(all).not.toContain('tool-secret-pw');
  });

  it('exposes only the tools asked for', () => {
    expect(createMailTools(mailer, { readOnly: true }).map((t) => t.name)).toEqual(['get_email_status', 'test_smtp_connection', 'get_smtp_status']);
    expect(createMailTools(mailer, { include: ['send_email'] }).map((t) => t.name)).toEqual(['send_email']);
    expect(createMailTools(mailer, { exclude: ['send_email', 'reload_smtp_configuration'] })).toHaveLength(5);
    expect(createMailTools(mailer, { descriptions: { send_email: 'Only write to the user.' } })[0]!.description).toBe('Only write to the user.');
  });
});
