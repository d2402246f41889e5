import { createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createMcpServer } from './index.js';

let sink: SmtpSink | undefined;
let mailer: Mailer | undefined;
let server: McpServer | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.close();
  await server?.close();
  await mailer?.close();
  await sink?.close();
  client = server = mailer = sink = undefined;
});

async function connect(m: Mailer): Promise<Client> {
  server = createMcpServer({ mailer: m });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  client = new Client({ name: 'test-client', version: '1.0.0' });
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);
  return client;
}

async function send(c: Client, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await c.callTool({ name: 'send_email', arguments: args })) as CallToolResult;
}

function text(result: CallToolResult): string {
  return result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

/** The sentences of an answer, to check that none is said twice. */
function sentences(answer: string): string[] {
  return answer.split(/(?<=[.:;])\s+/).map((s) => s.trim().toLowerCase()).filter((s) => s.length > 3);
}

describe('send_email over MCP after a wrong SMTP password', () => {
  it('says, on the first call and the next, that the login was refused and the user must fix it, with no retry advice', async () => {
    sink = await startSmtpSink({ auth: { user: 'agent', pass: 'the-right-password' } });
    mailer = createMailer({
      servers: [sink.serverConfig({ name: 'sink', auth: { user: 'agent', pass: 'a-wrong-password' } })],
      defaults: { from: 'agent@example.com' },
      env: {},
    });
    const c = await connect(mailer);
    const email = { to: 'ada@example.com', subject: 'Hello', body: 'Hi.', idempotency_key: 'hello-1' };

    const first = await send(c, email);
    // The second call finds the server backing off after the refusal: the refusal must still be the cause it names.
    const second = await send(c, email);

    for (const [which, result] of [['first', first], ['second', second]] as const) {
      const answer = text(result);
      expect(result.isError, which).toBe(true);
      expect(answer, which).toMatch(/^Error SMTP_AUTH: /);
      expect(answer, which).toContain('535 5.7.8 Authentication credentials invalid');
      expect(answer, which).toContain('username, password, port or TLS');
      expect(answer, which).toContain('Do not call send_email again until the user has fixed the SMTP configuration');
      expect(answer, which).not.toMatch(/try again after|retry after|every server is backing off/i);
      expect(answer, which).not.toContain('a-wrong-password');
      const said = sentences(answer);
      expect(new Set(said).size, `${which}: ${answer}`).toBe(said.length);
    }
    // The server really was backing off for the second call: it did not try the login again.
    expect(mailer.status().servers[0]).toMatchObject({ state: 'backoff', consecutiveFailures: 1 });
    expect(sink.messages).toHaveLength(0);
  });
});

describe('send_email variables over MCP', () => {
  it('renders nested objects and arrays of them, as in the README’s {order.id}', async () => {
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
    const c = await connect(mailer);
    const result = await send(c, {
      to: 'ada@example.com',
      subject: 'Your order {order.id} has shipped',
      body: 'Hi {name}, order {order.id} ({order.items.0.sku} x{order.items.0.qty}, {order.items.1.sku}) ships to {order.address.city}.',
      variables: {
        name: 'Ada',
        order: { id: 'A-1042', items: [{ sku: 'KB-1', qty: 2 }, { sku: 'MS-7', qty: 1 }], address: { city: 'London' } },
      },
    });
    expect(result.isError, text(result)).toBeFalsy();
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Your order A-1042 has shipped');
    expect(received!.text?.trim()).toBe('Hi Ada, order A-1042 (KB-1 x2, MS-7) ships to London.');
  });

  it('refuses nesting deeper than the schema holds, naming variables', async () => {
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
    const c = await connect(mailer);
    const result = await send(c, { to: 'ada@example.com', subject: 's', body: '{a.b.c.d.e}', variables: { a: { b: { c: { d: { e: 'too deep' } } } } } });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('variables');
    expect(sink.messages).toHaveLength(0);
  });
});

describe('send_email over MCP with input a model got wrong', () => {
  async function sinkClient(): Promise<Client> {
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
    return connect(mailer);
  }

  it('a missing "to" says it is required and what it takes', async () => {
    const answer = text(await send(await sinkClient(), { subject: 'Hi', body: 'Hello.' }));
    expect(answer).toContain('to is required: one address or a list');
    expect(answer).not.toMatch(/Invalid input at to\b/);
  });

  it('variables nested too deep say the limit', async () => {
    const c = await sinkClient();
    const answer = text(await send(c, { to: 'ada@example.com', subject: 'Hi', body: 'Hello {a.b.c.d.e}.', variables: { a: { b: { c: { d: { e: 'deep' } } } } } }));
    expect(answer).toContain('variables nest at most 4 levels');
    const tools = await c.listTools();
    const schema = tools.tools.find((t) => t.name === 'send_email')!.inputSchema as unknown as { properties: { variables: { description: string } } };
    expect(schema.properties.variables.description).toContain('at most 4 levels');
  });

  it('placeholders without variables name the missing ones in the text, and say nothing twice', async () => {
    const result = await send(await sinkClient(), { to: 'ada@example.com', subject: 'Hi {name}', body: 'Your code is {code}.' });
    expect(result.isError).toBe(true);
    const answer = text(result);
    expect(answer).toContain('TEMPLATE_ERROR');
    expect(answer).toContain('name');
    expect(answer).toContain('code');
    expect(answer).toContain('variables');
    const said = sentences(answer);
    expect(new Set(said).size).toBe(said.length);
    expect(sink!.messages).toHaveLength(0);
  });

  it('an unclosed section names body and does not ask for missing variables', async () => {
    const answer = text(await send(await sinkClient(), { to: 'ada@example.com', subject: 'Hi', body: '{?vip}Hello', format: 'html', variables: { vip: true } }));
    expect(answer).toContain('body: ');
    expect(answer).not.toMatch(/\bhtml: /);
    expect(answer).not.toContain('every variable named in "missing"');
  });

  it('get_email_status of an unknown id says nothing twice', async () => {
    const c = await sinkClient();
    const answer = text((await c.callTool({ name: 'get_email_status', arguments: { id: 'msg_nope' } })) as CallToolResult);
    expect(answer).toContain('NOT_FOUND');
    const said = sentences(answer);
    expect(new Set(said).size).toBe(said.length);
    expect(answer.match(/check the id/gi)).toHaveLength(1);
  });
});
