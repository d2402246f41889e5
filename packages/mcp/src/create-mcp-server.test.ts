import { createMailer, MAIL_TOOL_NAMES, type Mailer, type MailTool, MemoryStore } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod/v4';
import { createMcpServer, type CreateMcpServerOptions } from './index.js';

let sink: SmtpSink;
let mailer: Mailer;
let server: McpServer | undefined;
let client: Client | undefined;

beforeEach(async () => {
  sink = await startSmtpSink();
  mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
});
afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
  await mailer.close();
  await sink.close();
});

async function connect(options: Partial<CreateMcpServerOptions> = {}): Promise<Client> {
  server = createMcpServer({ mailer, ...options });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  client = new Client({ name: 'test-client', version: '1.0.0' });
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);
  return client;
}

function text(result: unknown): string {
  return (result as CallToolResult).content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

describe('createMcpServer over an in-memory transport', () => {
  it('lists the 7 tools with titles, descriptions, annotations and input and output schemas', async () => {
    const c = await connect();
    expect(c.getServerVersion()).toMatchObject({ name: 'agent-smtp' });
    expect(c.getInstructions()).toContain('send_email');
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...MAIL_TOOL_NAMES].sort());
    for (const tool of tools) {
      expect(tool.title, tool.name).toBeTruthy();
      expect(tool.description!.length, tool.name).toBeGreaterThan(40);
      expect(tool.annotations, tool.name).toMatchObject({ readOnlyHint: expect.any(Boolean), openWorldHint: expect.any(Boolean) });
      expect(tool.inputSchema.type, tool.name).toBe('object');
      expect(tool.outputSchema?.type, tool.name).toBe('object');
    }
    const send = tools.find((t) => t.name === 'send_email')!;
    expect(send.title).toBe('Send email');
    expect(send.annotations).toMatchObject({ title: 'Send email', readOnlyHint: false, openWorldHint: true });
    expect(send.inputSchema.required).toEqual(expect.arrayContaining(['to', 'subject', 'body']));
    expect(Object.keys(send.inputSchema.properties!)).toEqual(expect.arrayContaining(['cc', 'bcc', 'attachments', 'variables', 'idempotency_key']));
    expect(Object.keys(send.outputSchema!.properties!)).toEqual(expect.arrayContaining(['id', 'message_id', 'status', 'accepted', 'rejected']));
    const status = tools.find((t) => t.name === 'get_smtp_status')!;
    expect(status.annotations).toMatchObject({ readOnlyHint: true, destructiveHint: false });
  });

  it('names each output schema by tool and content ($id), so a client compiles its validators once, not on every tools/list', async () => {
    const c = await connect();
    const first = (await c.listTools()).tools;
    const again = (await c.listTools()).tools;
    const ids = first.map((t) => t.outputSchema?.$id);
    for (const [i, tool] of first.entries()) expect(ids[i], tool.name).toMatch(new RegExp(`^urn:agent-smtp:tool:${tool.name}:output:[0-9a-f]{16}$`));
    expect(new Set(ids).size).toBe(first.length);
    expect(again.map((t) => t.outputSchema?.$id)).toEqual(ids);
    // The result of a call still validates against the schema the client cached under that id.
    const sent = await c.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Hi', body: 'Hello' } });
    expect(sent.isError).toBeFalsy();
    expect(sent.structuredContent).toMatchObject({ status: 'sent' });
  });

  it('honours readOnly: only tools that change nothing are listed', async () => {
    const c = await connect({ readOnly: true });
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['get_email_stats', 'get_email_status', 'get_smtp_status', 'test_smtp_connection']);
  });

  it('send_email delivers to the SMTP server and returns structured content', async () => {
    const c = await connect();
    const result = (await c.callTool({
      name: 'send_email',
      arguments: { to: 'Ada Lovelace <ada@example.com>', subject: 'Hello from MCP', body: 'It works.' },
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Hello from MCP');
    expect(received!.envelope.to).toEqual(['ada@example.com']);
    expect(received!.envelope.from).toBe('agent@example.com');
    expect(received!.text?.trim()).toBe('It works.');
    expect(result.structuredContent).toMatchObject({ id: expect.stringMatching(/^msg_/), status: 'sent', accepted: ['ada@example.com'] });
    expect(received!.messageId).toBe(result.structuredContent!.message_id);
    expect(JSON.parse(text(result))).toEqual(result.structuredContent);

    const status = (await c.callTool({ name: 'get_email_status', arguments: { id: result.structuredContent!.id } })) as CallToolResult;
    expect(status.structuredContent).toMatchObject({ status: 'sent', to: ['ada@example.com'], subject: 'Hello from MCP' });
  });

  it('rejects arguments the schema refuses (missing "to") as an error result, and sends nothing', async () => {
    const c = await connect();
    const result = (await c.callTool({ name: 'send_email', arguments: { subject: 'No recipient', body: 'x' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/to/);
    await expectOnlyNextEmailArrives(c);
  });

  it('rejects a malformed address with VALIDATION_ERROR naming the field, and sends nothing', async () => {
    const c = await connect();
    const result = (await c.callTool({ name: 'send_email', arguments: { to: 'not an address', subject: 'Bad', body: 'x' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('VALIDATION_ERROR');
    expect(text(result)).toContain('Nothing was sent');
    await expectOnlyNextEmailArrives(c);
  });

  it('names TEMPLATE_ERROR and the missing variable when a template variable is not given', async () => {
    const c = await connect();
    const result = (await c.callTool({
      name: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'Hi {name}', body: 'Your code is {code}.', variables: { name: 'Ada' } },
    })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('TEMPLATE_ERROR');
    expect(text(result)).toContain('code');
    expect(result.structuredContent).toBeUndefined();
    await expectOnlyNextEmailArrives(c);
  });

  it('send_email reports deferred recipients with the follow-up id and what to do, valid against its output schema', async () => {
    sink.behavior.rcptTo = (to) => (to === 'bob@example.com' ? { code: 450, message: '4.2.0 Greylisted, try again later' } : undefined);
    const c = await connect();
    const result = (await c.callTool({
      name: 'send_email',
      arguments: { to: ['ada@example.com', 'bob@example.com'], subject: 'Greylisted', body: 'x' },
    })) as CallToolResult;
    // The client validates structuredContent against the advertised output schema; a mismatch would throw here.
    expect(result.isError).toBeFalsy();
    const value = result.structuredContent as { id: string; deferred: string[]; follow_up_id: string; note: string };
    expect(value.deferred).toEqual(['bob@example.com']);
    expect(value.follow_up_id).toMatch(/^msg_/);
    expect(value.note).toContain('retried automatically');
    expect(value.note).toContain(`get_email_status with id "${value.id}"`);
    const [received] = await sink.waitForMessages(1);
    expect(received!.envelope.to).toEqual(['ada@example.com']);
    const status = (await c.callTool({ name: 'get_email_status', arguments: { id: value.id } })) as CallToolResult;
    expect(status.isError).toBeFalsy();
    // Bob is greylisted for good here, so his follow-up waits for its retry; the client checked this against the schema.
    expect(status.structuredContent).toMatchObject({
      id: value.id,
      rejected: ['bob@example.com'],
      follow_ups: [{ id: value.follow_up_id, recipients: ['bob@example.com'], accepted: [] }],
    });
  });

  it('a store failing with raw database errors gives isError results with a code, never its text', async () => {
    const SECRET = 'postgres://app:db-secret-pw@10.0.0.5/mail';
    const store = new MemoryStore();
    const pgLike = Object.assign(new Error(`22P05: unsupported Unicode escape sequence (${SECRET})`), { code: '22P05', detail: SECRET });
    const failing = <T extends object>(part: T): T =>
      new Proxy(part, { get: (target, key) => (typeof Reflect.get(target, key) === 'function' ? () => Promise.reject(pgLike) : Reflect.get(target, key)) });
    Object.assign(store, { outbox: failing(store.outbox), events: failing(store.events) });
    await mailer.close();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, store, env: {} });
    const c = await connect();
    const send = (await c.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Store down', body: 'x' } })) as CallToolResult;
    const status = (await c.callTool({ name: 'get_email_status', arguments: { id: 'msg_123' } })) as CallToolResult;
    for (const result of [send, status]) {
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/^Error [A-Z_]+: /);
      expect(text(result)).not.toContain('22P05');
      expect(text(result)).not.toContain('db-secret-pw');
    }
    expect(text(send)).toContain('idempotency_key');
    expect(sink.messages).toHaveLength(0);
  });

  it("turns a caller's own tool that throws into the same generic error result, not the raw message", async () => {
    const tool: MailTool = {
      name: 'custom',
      title: 'Custom',
      description: 'A tool of the caller that fails with a raw database error.',
      inputSchema: z.strictObject({}),
      outputSchema: z.object({}),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      execute: () => Promise.reject(new Error('relation "secret_table" does not exist')),
    };
    const c = await connect({ tools: [tool] });
    const result = (await c.callTool({ name: 'custom', arguments: {} })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^Error [A-Z_]+: /);
    expect(text(result)).not.toContain('secret_table');
  });
});

/** The failed call sent nothing: the next good email is the only one the server ever gets. */
async function expectOnlyNextEmailArrives(c: Client): Promise<void> {
  expect(sink.messages).toHaveLength(0);
  const ok = (await c.callTool({ name: 'send_email', arguments: { to: 'grace@example.com', subject: 'The good one', body: 'ok' } })) as CallToolResult;
  expect(ok.isError).toBeFalsy();
  await sink.waitForMessages(1);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(sink.messages.map((m) => m.subject)).toEqual(['The good one']);
}
