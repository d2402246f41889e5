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
