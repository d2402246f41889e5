import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod/v4';
import { sampleToolInputs } from './__fixtures__/tool-inputs.js';
import type { Logger } from '../logger/logger.js';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import type { MailStore } from '../store/mail-store.js';
import { MemoryStore } from '../store/memory-store.js';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { createMailTools, MAIL_TOOL_NAMES, type MailToolName } from './create-mail-tools.js';
import type { MailTool, ToolErrorPayload, ToolOutcome } from './define-tool.js';
import { formatToolError, UNEXPECTED_FAILURE_CODE } from './tool-error.js';

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

/** The value of a successful call; a failed one fails the test with the error the model would have seen. */
function valueOf<T>(outcome: ToolOutcome<Record<string, unknown>>): T {
  if (!outcome.ok) throw new Error(formatToolError(outcome.error));
  return outcome.value as T;
}

/** The error of a failed call; a successful one fails the test. (No expect inside an `if` that may not be taken.) */
function errorOf(outcome: ToolOutcome<Record<string, unknown>>): ToolErrorPayload {
  if (outcome.ok) throw new Error(`expected an error result, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

/** Resolves once the sink has seen every connection it was opened close: after that, nothing more can arrive. */
async function sinkDone(target: SmtpSink): Promise<void> {
  await target.waitForIdle();
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
    expect(valueOf(outcome)).toMatchObject({ status: 'sent', server: 'sink', accepted: ['ada@example.com', 'grace@example.com', 'c@example.com'], rejected: [], replayed: false });
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
    const first = valueOf<{ id: string }>(await call('send_email', input, 'call_123'));
    const retry = valueOf(await call('send_email', input, 'call_123'));
    expect(retry).toMatchObject({ id: first.id, replayed: true });
    expect(valueOf(await call('send_email', input, 'call_456'))).toMatchObject({ replayed: false });
    // Nothing else arrived: counted once the mailer has closed its connections and the sink has seen them close.
    await mailer.close();
    await sinkDone(sink);
    expect(sink.messages).toHaveLength(2);
  });

  it('returns errors a model can act on, naming the tool’s own fields, with no secrets', async () => {
    const badAddress = await call('send_email', { to: 'not an address', subject: 's', body: 'b' });
    expect(badAddress).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR', field: 'to', retryable: false } });
    const badReplyTo = await call('send_email', { to: 'a@example.com', reply_to: 'nope', subject: 's', body: 'b' });
    expect(badReplyTo).toMatchObject({ ok: false, error: { field: 'reply_to' } });
    const missing = await call('send_email', { to: 'a@example.com', subject: 'Hi {name}', body: '{greeting}' , variables: {} });
    expect(missing).toMatchObject({ ok: false, error: { code: 'TEMPLATE_ERROR', missing: ['name', 'greeting'] } });
    expect(errorOf(missing).hint).toContain('missing');

    sink.behavior.rcptTo = () => ({ code: 550, message: '5.1.1 No such user here' });
    const rejected = await call('send_email', { to: 'gone@example.com', subject: 's', body: 'b' });
    expect(rejected).toMatchObject({ ok: false, error: { code: 'SMTP_REJECTED', retryable: false } });
    expect(errorOf(rejected).message).toContain('5.1.1 No such user here');
    expect(errorOf(rejected).hint).toContain('Do not retry');
    const everything = JSON.stringify([badAddress, badReplyTo, missing, rejected]);
    expect(everything).not.toContain('tool-secret-pw');
    expect(everything).not.toMatch(/at .*\.ts:\d+/);
    expect(sink.messages).toHaveLength(0);
  });

  it('get_email_status returns the history, and NOT_FOUND for an unknown id', async () => {
    const sent = valueOf<{ id: string }>(await call('send_email', { to: 'ada@example.com', subject: 's', body: 'b' }));
    const status = await call('get_email_status', { id: sent.id });
    expect(status).toMatchObject({ ok: true, value: { id: sent.id, status: 'sent', to: ['ada@example.com'], subject: 's' } });
    expect(valueOf<{ history: { event: string }[] }>(status).history.map((h) => h.event)).toEqual(['queued', 'claimed', 'sent']);
    const unknown = errorOf(await call('get_email_status', { id: 'msg_nope' }));
    expect(unknown).toMatchObject({ code: 'NOT_FOUND', retryable: false });
    expect(unknown.message).toContain('"msg_nope"');
  });

  it('server tools test, show, switch, reload and reconnect without leaking credentials', async () => {
    const tested = await call('test_smtp_connection', {});
    expect(tested).toMatchObject({ ok: true, value: { servers: [{ name: 'sink', ok: true }] } });
    expect(await call('get_smtp_status', {})).toMatchObject({ ok: true, value: { servers: [{ name: 'sink', state: 'healthy', preferred: false }] } });
    expect(await call('switch_smtp_server', { name: 'sink' })).toMatchObject({ ok: true, value: { servers: [{ preferred: true }] } });
    // The tool's own field: switch_smtp_server takes "name", whatever the pool calls it.
    expect(await call('switch_smtp_server', { name: 'other' })).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR', field: 'name' } });
    expect(await call('reconnect_smtp_servers', {})).toMatchObject({ ok: true });
    // This mailer was given its servers in code: reloading keeps them (it never reads the environment instead).
    expect(await call('reload_smtp_configuration', {})).toMatchObject({ ok: true, value: { servers: [{ name: 'sink' }] } });
    const all = JSON.stringify(await Promise.all(['get_smtp_status', 'test_smtp_connection'].map((n) => call(n as MailToolName, {}))));
    expect(all).not.toContain('tool-secret-pw');
  });

  it('exposes only the tools asked for', () => {
    expect(createMailTools(mailer, { readOnly: true }).map((t) => t.name)).toEqual(['get_email_status', 'get_email_stats', 'test_smtp_connection', 'get_smtp_status']);
    expect(createMailTools(mailer, { include: ['send_email'] }).map((t) => t.name)).toEqual(['send_email']);
    expect(createMailTools(mailer, { exclude: ['send_email', 'reload_smtp_configuration'] })).toHaveLength(6);
    expect(createMailTools(mailer, { descriptions: { send_email: 'Only write to the user.' } })[0]!.description).toBe('Only write to the user.');
  });

  it('send_email names the follow-up of deferred recipients and tells the model not to resend', async () => {
    sink.behavior.rcptTo = (to) => (to === 'bob@example.com' ? { code: 450, message: '4.2.0 Greylisted, try again later' } : undefined);
    const outcome = await call('send_email', { to: ['ada@example.com', 'bob@example.com'], subject: 'Greylisted', body: 'x' });
    expect(outcome).toMatchObject({ ok: true, value: { status: 'sent', accepted: ['ada@example.com'], deferred: ['bob@example.com'] } });
    const value = valueOf<{ id: string; follow_up_id?: string; note?: string }>(outcome);
    expect(value.follow_up_id).toMatch(/\S/);
    expect(value.follow_up_id).not.toBe(value.id);
    expect(value.note).toContain('bob@example.com');
    expect(value.note).toContain('retried automatically');
    expect(value.note).toContain(value.follow_up_id);
    expect(value.note).toContain(`get_email_status with id "${value.id}"`);
    // What the server saw: only Ada's copy went out; Bob's waits for the follow-up.
    const [received] = await sink.waitForMessages(1);
    expect(received!.envelope.to).toEqual(['ada@example.com']);
  });

  it('a send with nothing deferred carries no follow_up_id and no note', async () => {
    const value = valueOf<object>(await call('send_email', { to: 'ada@example.com', subject: 'Plain', body: 'x' }));
    expect(value).toMatchObject({ status: 'sent' });
    expect(Object.keys(value)).not.toContain('follow_up_id');
    expect(Object.keys(value)).not.toContain('note');
  });

  it('get_email_status of the original shows the follow-up delivering the deferred recipient', async () => {
    let greylisted = true;
    sink.behavior.rcptTo = (to) => (to === 'bob@example.com' && greylisted ? ((greylisted = false), { code: 450, message: '4.2.0 Greylisted' }) : undefined);
    // A short retry delay, so the follow-up is due at once; this mailer runs no worker: it delivers follow-ups itself.
    const quick = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {}, outbox: { retry: { baseMs: 20, maxMs: 100 } } });
    try {
      const quickTools = new Map(createMailTools(quick).map((t) => [t.name, t]));
      const run = (name: MailToolName, input: unknown) => quickTools.get(name)!.execute(quickTools.get(name)!.inputSchema.parse(input));
      const sent = await run('send_email', { to: ['ada@example.com', 'bob@example.com'], subject: 'Greylisted', body: 'x' });
      const { id, follow_up_id } = valueOf<{ id: string; follow_up_id: string }>(sent);
      await sink.waitForMessages(2);
      expect(sink.messages.map((m) => m.envelope.to)).toEqual([['ada@example.com'], ['bob@example.com']]);
      // The sink has Bob's copy; the follow-up's record settles right after the server's 250.
      const deadline = Date.now() + 10_000;
      let status = await run('get_email_status', { id });
      while (valueOf<{ follow_ups: { status: string }[] }>(status).follow_ups[0]?.status !== 'sent' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        status = await run('get_email_status', { id });
      }
      expect(status).toMatchObject({
        ok: true,
        value: { id, rejected: ['bob@example.com'], follow_ups: [{ id: follow_up_id, status: 'sent', recipients: ['bob@example.com'], accepted: ['bob@example.com'], rejected: [] }] },
      });
    } finally {
      await quick.close();
    }
  });

  describe('a store that fails with its own raw errors', () => {
    const SECRET = 'postgres://app:db-secret-pw@10.0.0.5/mail';
    const rawErrors: [string, unknown][] = [
      ['a plain Error with SQLSTATE text', new Error(`22P05: unsupported Unicode escape sequence \\u0000 in "body" (${SECRET})`)],
      ['a pg-like error', Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0xed 0xa0 0x80'), { code: '22021', severity: 'ERROR', detail: SECRET, where: 'COPY outbox' })],
      ['a connection error', Object.assign(new Error(`connect ECONNREFUSED 10.0.0.5:5432 (${SECRET})`), { code: 'ECONNREFUSED' })],
      ['a TypeError from a driver', new TypeError(`Cannot read properties of undefined (reading 'rows') ${SECRET}`)],
      ['a thrown string', `FATAL: password authentication failed for user "app" ${SECRET}`],
    ];

    function failingStore(error: unknown): MailStore {
      const store = new MemoryStore();
      const failing = <T extends object>(part: T): T =>
        new Proxy(part, { get: (target, key) => (typeof Reflect.get(target, key) === 'function' ? () => Promise.reject(error) : Reflect.get(target, key)) });
      return Object.assign(store, { outbox: failing(store.outbox), events: failing(store.events), audit: failing(store.audit) });
    }

    it.each(rawErrors)('%s: every tool returns a result, and the ones that need the store an error with a code and no raw text', async (_, error) => {
      const logged: unknown[] = [];
      const logger: Logger = { debug() {}, info() {}, warn() {}, error: (obj) => logged.push(obj) };
      const broken = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, store: failingStore(error), env: {} });
      try {
        const brokenTools = new Map(createMailTools(broken, { logger }).map((t) => [t.name, t]));
        const inputs = sampleToolInputs({
          send_email: { to: 'ada@example.com', subject: 'Store down', body: 'x', idempotency_key: 'k1' },
          get_email_status: { id: 'msg_123' },
          switch_smtp_server: { name: 'sink' },
        });
        const outcomes = await Promise.all(
          MAIL_TOOL_NAMES.map(async (name) => {
            const tool = brokenTools.get(name)!;
            return [name, await tool.execute(tool.inputSchema.parse(inputs[name]))] as const;
          }),
        );
        const byName = Object.fromEntries(outcomes);
        for (const name of ['send_email', 'get_email_status'] as const) {
          expect(byName[name], name).toMatchObject({ ok: false, error: { code: UNEXPECTED_FAILURE_CODE, retryable: true } });
        }
        // Only the tool that sends is told how to retry without sending twice.
        expect((byName.send_email as { error: { hint: string } }).error.hint).toContain('idempotency_key');
        expect((byName.get_email_status as { error: { hint: string } }).error.hint).not.toMatch(/idempotency_key|\bsent\b/);
        const text = JSON.stringify(outcomes);
        for (const leak of ['db-secret-pw', '10.0.0.5', '22P05', '22021', 'ECONNREFUSED', 'password authentication', 'rows']) expect(text).not.toContain(leak);
        // The operator still learns what happened: the original error, logged once per failing call.
        expect(logged).toHaveLength(2);
        expect(logged).toEqual(expect.arrayContaining([expect.objectContaining({ tool: 'send_email' }), expect.objectContaining({ tool: 'get_email_status' })]));
        expect(sink.messages).toHaveLength(0);
      } finally {
        await broken.close();
      }
    });
  });
});

describe('send_email template errors in the tool’s terms', () => {
  it('refuses placeholders when no variables are passed, naming them and saying to pass variables', async () => {
    const outcome = await call('send_email', { to: 'ada@example.com', subject: 'Hi {name}', body: 'Your code is {code}.' });
    const error = errorOf(outcome);
    expect(error).toMatchObject({ code: 'TEMPLATE_ERROR', missing: ['name', 'code'], retryable: false });
    expect(error.message).toContain('{name}');
    expect(error.message).toContain('{code}');
    expect(error.message).toContain('pass variables');
    expect(error.message).toContain('{{');
    await sinkDone(sink);
    expect(sink.messages).toHaveLength(0);
  });

  it('sends text without placeholders, and an escaped brace as one brace, when no variables are passed', async () => {
    valueOf(await call('send_email', { to: 'ada@example.com', subject: 'Plain', body: 'Use {{name} literally; {not a tag}.' }));
    const [received] = await sink.waitForMessages(1);
    expect(received!.text?.trim()).toBe('Use {name} literally; {not a tag}.');
  });

  it('names body, not text/html/markdown, and hints at the template when nothing is missing', async () => {
    for (const format of ['text', 'html', 'markdown'] as const) {
      const unclosed = errorOf(await call('send_email', { to: 'a@example.com', subject: 's', body: '{?vip}Hello', format, variables: { vip: true } }));
      expect(unclosed.code).toBe('TEMPLATE_ERROR');
      expect(unclosed.message).toMatch(/^body: /);
      expect(unclosed.message).not.toMatch(/\b(text|html|markdown):/);
      expect(unclosed.hint).not.toContain('missing');
      expect(unclosed.hint).toContain('Nothing was sent');
    }
    const objectValue = errorOf(await call('send_email', { to: 'a@example.com', subject: 's', body: 'Hi {user}', variables: { user: { first: 'Ada' } } }));
    expect(objectValue.code).toBe('TEMPLATE_ERROR');
    expect(objectValue.message).not.toMatch(/\btext:/);
    expect(objectValue.hint).not.toContain('"missing"');
    const missing = errorOf(await call('send_email', { to: 'a@example.com', subject: 's', body: 'Hi {name}', variables: {} }));
    expect(missing.hint).toContain('"missing"');
    expect(missing.message).not.toMatch(/\btext:/);
    await sinkDone(sink);
    expect(sink.messages).toHaveLength(0);
  });

  it('get_email_status of an unknown id says nothing twice', async () => {
    const unknown = errorOf(await call('get_email_status', { id: 'msg_nope' }));
    const sentences = formatToolError(unknown)
      .split(/(?<=[.:;])\s+/)
      .map((s) => s.trim().toLowerCase().replace(/[.:;]$/, ''))
      .filter((s) => s.length > 3);
    expect(new Set(sentences).size).toBe(sentences.length);
    // The hint and the message do not both tell the model to check the id.
    expect(`${unknown.message} ${unknown.hint}`.match(/check the id/gi)).toHaveLength(1);
    expect(unknown.message).toContain('"msg_nope"');
  });
});
