import { createMailer, MAIL_TOOL_NAMES, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/core/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

  it('honours readOnly: only tools that change nothing are listed', async () => {
    const c = await connect({ readOnly: true });
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['get_email_status', 'get_smtp_status', 'test_smtp_connection']);
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
