import { createMailService, type MailService, MemoryStore, OPERATOR_TOOL_NAMES, type PendingEmail, type Policy } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { type CallToolResult, type ElicitRequest, ElicitRequestSchema, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { approvalMessage } from './elicit-approval.js';
import { createMcpServer, type CreateMcpServerOptions } from './index.js';

const TOKEN = 'mcp-token-Zq9-never-shown';
const SMTP_PASSWORD = 'smtp-pass-Xy7-never-shown';
const OWNER = 'alice';
const AGENT = 'support';

let sink: SmtpSink;
let service: MailService;
let server: McpServer | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.close();
  await server?.close();
  client = server = undefined;
  await service?.close();
  await sink?.close();
});

async function start(policy: Policy): Promise<void> {
  sink = await startSmtpSink();
  service = createMailService({
    store: new MemoryStore(),
    credentials: { resolve: async () => [sink.serverConfig({ name: 'sink', auth: { user: 'agent', pass: SMTP_PASSWORD } })] },
    defaults: { from: 'agent@example.com' },
    policies: { [AGENT]: policy },
  });
}

type Answer = (request: ElicitRequest['params']) => ElicitResult | Promise<ElicitResult>;

/** A real MCP client of `alice`'s support agent (its token in authInfo), answering elicitation with `answer` when given. */
async function connect(answer?: Answer, options: Partial<CreateMcpServerOptions> = {}): Promise<{ mcp: Client; asked: ElicitRequest['params'][] }> {
  // Asking is opted into for a service (its client could answer for the agent); these tests are about asking.
  server = createMcpServer({ service, elicitApproval: true, ...options });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  const authInfo: AuthInfo = { token: TOKEN, clientId: 'app', scopes: [], extra: { ownerId: OWNER, agentId: AGENT } };
  const send = clientTransport.send.bind(clientTransport);
  clientTransport.send = (message, sendOptions) => send(message, { ...sendOptions, authInfo });
  const asked: ElicitRequest['params'][] = [];
  client = new Client({ name: 'approval-test', version: '1.0.0' }, answer ? { capabilities: { elicitation: {} } } : {});
  if (answer) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params);
      return answer(request.params);
    });
  }
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);
  return { mcp: client, asked };
}

const sendEmail = (mcp: Client) =>
  mcp.callTool({
    name: 'send_email',
    arguments: { to: ['Ada <ada@example.com>', 'bob@partner.test'], subject: 'Quarterly figures', body: 'Please find the figures below.\nRevenue: 42',
      attachments: [{ filename: 'figures.csv', content_base64: Buffer.from('a,b\n1,2\n3').toString('base64') }],
    },
  }) as Promise<CallToolResult>;

/** Closes everything that could still send, then reads the sink: nothing can arrive after this. */
async function sinkAfterAllClosed(): Promise<SmtpSink> {
  await client?.close();
  await server?.close();
  await service.close();
  return sink;
}

describe('createMcpServer: approval by elicitation', () => {
  it('a user who accepts gets the email sent once; the form showed recipients and subject, never a secret', async () => {
    await start({ approval: { always: true } });
    const { mcp, asked } = await connect(() => ({ action: 'accept', content: { approve: true } }));
    const result = await sendEmail(mcp);
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ status: 'sent', accepted: ['ada@example.com', 'bob@partner.test'] });
    expect(asked).toHaveLength(1);
    const { message, requestedSchema } = asked[0] as { message: string; requestedSchema: { properties: Record<string, { type: string }> } };
    for (const shown of ['ada@example.com', 'bob@partner.test', 'Quarterly figures', 'agent@example.com', 'Revenue: 42', 'figures.csv (9 B)', 'every email']) expect(message).toContain(shown);
    for (const secret of [TOKEN, SMTP_PASSWORD]) expect(message).not.toContain(secret);
    expect(requestedSchema.properties['approve']).toMatchObject({ type: 'boolean' });
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Quarterly figures');
    expect((await sinkAfterAllClosed()).messages).toHaveLength(1);
    const audit = await service.forAgent({ ownerId: OWNER }).listAudit({ action: 'approve' });
    expect(audit.entries[0]?.actor).toBe('mcp-elicitation client "approval-test" user "alice"');
  });

  it('a user who declines gets it rejected: nothing sent, status rejected', async () => {
    await start({ approval: { always: true } });
    const { mcp, asked } = await connect(() => ({ action: 'decline' }));
    const result = await sendEmail(mcp);
    expect(asked).toHaveLength(1);
    expect(result.structuredContent).toMatchObject({ status: 'rejected' });
    const id = (result.structuredContent as { id: string }).id;
    expect((await service.forAgent({ ownerId: OWNER, agentId: AGENT }).getStatus(id))?.status).toBe('rejected');
    const done = await sinkAfterAllClosed();
    expect(done.messages).toHaveLength(0);
    expect(done.stats.messages).toBe(0);
  });

  it('a user who cancels, or does not answer in time, leaves it pending', async () => {
    await start({ approval: { always: true } });
    const cancelled = await connect(() => ({ action: 'cancel' }));
    expect((await sendEmail(cancelled.mcp)).structuredContent).toMatchObject({ status: 'pending_approval' });
    await client!.close();
    const silent = await connect(() => new Promise<ElicitResult>(() => {}), { approvalTimeoutMs: 50 });
    const result = await sendEmail(silent.mcp);
    expect(silent.asked).toHaveLength(1);
    expect(result.structuredContent).toMatchObject({ status: 'pending_approval', approval: { reason: expect.any(String) } });
    expect((await sinkAfterAllClosed()).messages).toHaveLength(0);
  });

  it('a client without elicitation gets pending_approval with the id; approving later sends it', async () => {
    await start({ approval: { always: true } });
    const { mcp } = await connect();
    const result = await sendEmail(mcp);
    const value = result.structuredContent as { id: string; status: string; note: string; approval: { expires_at: string } };
    expect(value).toMatchObject({ status: 'pending_approval', id: expect.stringMatching(/^msg_/) });
    expect(value.note).toContain('Do not send it again');
    expect(sink.stats.connections).toBe(0);
    const approved = await service.approve(OWNER, value.id, { by: 'ops@example.com' });
    expect(approved.status).toBe('sent');
    const [received] = await sink.waitForMessages(1);
    expect(received!.subject).toBe('Quarterly figures');
    expect((await sinkAfterAllClosed()).messages).toHaveLength(1);
  });

  it('elicitApproval: false never asks, even a client that could answer', async () => {
    await start({ approval: { always: true } });
    const { mcp, asked } = await connect(() => ({ action: 'accept', content: { approve: true } }), { elicitApproval: false });
    expect((await sendEmail(mcp)).structuredContent).toMatchObject({ status: 'pending_approval' });
    expect(asked).toHaveLength(0);
    expect((await sinkAfterAllClosed()).messages).toHaveLength(0);
  });

  it('a service server does not ask by default: its client holds the agent\'s token and could approve for it', async () => {
    await start({ approval: { always: true } });
    const { mcp, asked } = await connect(() => ({ action: 'accept', content: { approve: true } }), { elicitApproval: undefined });
    expect((await sendEmail(mcp)).structuredContent).toMatchObject({ status: 'pending_approval' });
    expect(asked).toHaveLength(0);
    expect((await sinkAfterAllClosed()).messages).toHaveLength(0);
  });
});

describe('createMcpServer: tools/list for the caller', () => {
  it("send_email's description names the agent's allowed domains and the quota left today", async () => {
    await start({ recipients: { allow: ['@example.com'] }, dailyLimit: 100 });
    const { mcp } = await connect();
    const before = (await mcp.listTools()).tools.find((t) => t.name === 'send_email')!;
    expect(before.description).toContain('@example.com');
    expect(before.description).toContain('100 of 100 emails left today');
    await mcp.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'One', body: 'x' } });
    const after = (await mcp.listTools()).tools.find((t) => t.name === 'send_email')!;
    expect(after.description).toContain('99 of 100 emails left today');
  });

  it('operator tools are listed only with operator: true', async () => {
    await start({});
    const agent = await connect();
    const names = (await agent.mcp.listTools()).tools.map((t) => t.name);
    for (const name of OPERATOR_TOOL_NAMES) expect(names).not.toContain(name);
    await client!.close();
    const operator = await connect(undefined, { operator: true });
    const operatorNames = (await operator.mcp.listTools()).tools.map((t) => t.name);
    for (const name of OPERATOR_TOOL_NAMES) expect(operatorNames).toContain(name);
  });
});

describe('approvalMessage', () => {
  const pending = (over: Partial<PendingEmail>): PendingEmail => ({
    id: 'msg_1',
    agentId: AGENT,
    from: 'agent@example.com',
    recipients: ['ada@example.com'],
    subject: 'Hi',
    preview: 'x',
    bodyChars: 1,
    links: [],
    attachments: [],
    reason: 'policy',
    expiresAt: new Date('2030-01-01T00:00:00Z'),
    createdAt: new Date('2029-12-31T00:00:00Z'),
    ...over,
  });
  const hostile = ['\u202eevil.com@example.com', 'a\u001b[2Jb', 'line\r\nBcc: x@evil.test', 'zero\u200bwidth', 'del\u007f'];

  it('shows no control, bidi or zero-width characters, and keeps every header on its line', () => {
    for (const text of hostile) {
      const message = approvalMessage(pending({ subject: text, from: text, recipients: [text], reason: text, links: [`https://x.test/${text}`], attachments: [{ filename: text, bytes: 1 }] }));
      expect(message, JSON.stringify(text)).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/);
      expect(message.split('\n').filter((line) => line.startsWith('Bcc:')), JSON.stringify(text)).toEqual([]);
    }
  });

  it('bounds the preview, the recipients and the attachments it lists', () => {
    const message = approvalMessage(
      pending({
        preview: 'y'.repeat(50_000),
        recipients: Array.from({ length: 100 }, (_, i) => `r${i}@example.com`),
        attachments: Array.from({ length: 30 }, (_, i) => ({ filename: `f${i}.pdf`, bytes: 2_500_000 })),
      }),
    );
    expect(message.length).toBeLessThan(4_000);
    expect(message).toContain('and 80 more');
    expect(message).toContain('f0.pdf (2.4 MB)');
    expect(message).toContain('and 20 more');
  });

  it('says how long the body is and lists its links, so nothing past the preview passes unseen', () => {
    const message = approvalMessage(pending({ preview: 'Hello…', bodyChars: 12_000, links: ['https://evil.test/collect?d=secret'] }));
    expect(message).toContain('12000 characters, first');
    expect(message).toContain('https://evil.test/collect?d=secret');
  });
});

describe('createMcpServer: approvalTimeoutMs', () => {
  it('refuses a timeout a timer cannot hold, naming the option', async () => {
    await start({});
    for (const approvalTimeoutMs of [0, -1, Number.NaN, 2 ** 31]) {
      expect(() => createMcpServer({ service, approvalTimeoutMs }), String(approvalTimeoutMs)).toThrow(/approvalTimeoutMs/);
    }
  });
});
