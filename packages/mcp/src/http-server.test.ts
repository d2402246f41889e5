import { request } from 'node:http';
import { AgentSmtpError, ConfigError, createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/core/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopbackHost, type McpHttpServer, startMcpHttpServer } from './index.js';

const PASSWORD = 'hunter2-very-secret';
const USER = 'smtp-login-name';

let sink: SmtpSink | undefined;
let mailer: Mailer | undefined;
let http: McpHttpServer | undefined;
const clients: Client[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await http?.close();
  await mailer?.close();
  await sink?.close();
  http = mailer = sink = undefined;
});

async function start(options: { token?: string; auth?: boolean; unnamed?: boolean } = {}): Promise<McpHttpServer> {
  sink = await startSmtpSink(options.auth ? { auth: { user: USER, pass: PASSWORD } } : {});
  const config = options.unnamed ? sink.serverConfig() : sink.serverConfig({ name: 'sink' });
  mailer = createMailer({ servers: [config], defaults: { from: 'agent@example.com' }, env: {} });
  http = await startMcpHttpServer({ mailer, port: 0, ...(options.token ? { token: options.token } : {}) });
  return http;
}

async function connectClient(url: string, headers?: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'http-test', version: '1.0.0' });
  clients.push(client);
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return client;
}

/** A raw request, so tests control the Host header and see status, headers and body exactly. */
function raw(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const mcpHeaders = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

describe('startMcpHttpServer', () => {
  it('listens on a free port when given 0 and reports it in url and port', async () => {
    const server = await start();
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it('binds to IPv6 loopback, written bare or in brackets, and reports a bracketed URL', async () => {
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
    for (const host of ['::1', '[::1]']) {
      const server = await startMcpHttpServer({ mailer, host, port: 0 });
      try {
        expect(server.url, host).toBe(`http://[::1]:${server.port}`);
        const client = await connectClient(server.url);
        await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `via ${host}`, body: 'x' } });
      } finally {
        await Promise.all(clients.splice(0).map((c) => c.close()));
        await server.close();
      }
    }
    expect((await sink.waitForMessages(2)).map((m) => m.subject)).toEqual(['via ::1', 'via [::1]']);
  });

  it('serves the tools over stateless Streamable HTTP: send_email reaches the SMTP server', async () => {
    const server = await start();
    const client = await connectClient(server.url);
    const { tools } = await client.listTools();
    expect(tools).toHaveLength(7);
    const result = (await client.callTool({
      name: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'Over HTTP', body: 'Streamable.' },
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const [received] = await sink!.waitForMessages(1);
    expect(received!.subject).toBe('Over HTTP');
    expect(received!.envelope.to).toEqual(['ada@example.com']);
    expect(result.structuredContent).toMatchObject({ status: 'sent', message_id: received!.messageId });
  });

  it('answers JSON, not SSE, and sets no session id (stateless)', async () => {
    const server = await start();
    const res = await raw(server.url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body: initialize });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.headers['mcp-session-id']).toBeUndefined();
    expect(JSON.parse(res.body)).toMatchObject({ id: 1, result: { serverInfo: { name: 'agent-smtp' } } });
  });

  it('answers GET and DELETE on /mcp with 405 and a JSON-RPC error', async () => {
    const server = await start();
    for (const method of ['GET', 'DELETE']) {
      const res = await raw(server.url, { method, path: '/mcp', headers: { Accept: 'text/event-stream' } });
      expect(res.status, method).toBe(405);
      expect(JSON.parse(res.body), method).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 }, id: null });
    }
  });

  it('answers unknown paths with 404 JSON, a bad body with 400 and an oversized one with 413', async () => {
    const server = await start();
    const missing = await raw(server.url, { path: '/nope' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error).toContain('/nope');

    const bad = await raw(server.url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body: '{not json' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ error: { code: -32700 } });

    const big = await raw(server.url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body: `"${'x'.repeat(10 * 1024 * 1024)}"` });
    expect(big.status).toBe(413);
  });

  it('GET /health reports status, version and per-server health without credentials', async () => {
    const server = await start({ auth: true });
    // One real send, so the pool has logged in with the credentials at least once.
    const client = await connectClient(server.url);
    await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'auth', body: 'x' } });
    const [received] = await sink!.waitForMessages(1);
    expect(received!.user).toBe(USER);

    const res = await raw(server.url, { path: '/health' });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body).toEqual({
      status: 'ok',
      name: 'agent-smtp',
      version: expect.any(String),
      servers: [{ name: 'sink', state: 'healthy', healthy: true }],
    });
    expect(res.body).not.toContain(PASSWORD);
    expect(res.body).not.toContain(USER);
    expect(res.body).not.toContain(String(sink!.port));
  });

  it('GET /health does not reveal the host and port of a server named by default', async () => {
    const server = await start({ unnamed: true });
    expect(mailer!.status().servers[0]!.name).toBe(`127.0.0.1:${sink!.port}`);
    const res = await raw(server.url, { path: '/health' });
    expect(JSON.parse(res.body).servers).toEqual([{ name: 'server-1', state: 'healthy', healthy: true }]);
    expect(res.body).not.toContain(String(sink!.port));
  });

  it('refuses a request a web page on another origin sends to the loopback server', async () => {
    const server = await start();
    const cross = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Origin: 'https://evil.example' }, body: initialize });
    expect(cross.status).toBe(403);
    const same = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Origin: server.url }, body: initialize });
    expect(same.status).toBe(200);
  });

  it('refuses a Host header that is not this machine while bound to loopback (DNS rebinding)', async () => {
    const server = await start();
    const evil = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Host: `evil.example:${server.port}` }, body: initialize });
    expect(evil.status).toBe(403);
    const wrongPort = await raw(server.url, { path: '/health', headers: { Host: `localhost:${server.port + 1}` } });
    expect(wrongPort.status).toBe(403);
    for (const host of [`localhost:${server.port}`, `127.0.0.1:${server.port}`, `[::1]:${server.port}`]) {
      const ok = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Host: host }, body: initialize });
      expect(ok.status, host).toBe(200);
    }
  });

  describe('with a bearer token', () => {
    const token = 'correct-horse-battery-staple-0123456789';

    it('rejects a client without the header (401, WWW-Authenticate: Bearer) and accepts one with it', async () => {
      const server = await start({ token });
      const anonymous = new Client({ name: 'anonymous', version: '1.0.0' });
      clients.push(anonymous);
      const failure = await anonymous.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`))).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(StreamableHTTPError);
      expect((failure as StreamableHTTPError).code).toBe(401);

      const res = await raw(server.url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body: initialize });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
      const wrong = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Authorization: 'Bearer nope' }, body: initialize });
      expect(wrong.status).toBe(401);
      expect(wrong.headers['www-authenticate']).toContain('invalid_token');

      const client = await connectClient(server.url, { Authorization: `Bearer ${token}` });
      await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Authorized', body: 'x' } });
      const [received] = await sink!.waitForMessages(1);
      expect(received!.subject).toBe('Authorized');
      expect(sink!.messages).toHaveLength(1);
    });

    it('leaves /health open', async () => {
      const server = await start({ token });
      const res = await raw(server.url, { path: '/health' });
      expect(res.status).toBe(200);
      expect(res.body).not.toContain(token);
    });

    it('may bind to every interface', async () => {
      sink = await startSmtpSink();
      mailer = createMailer({ servers: [sink.serverConfig()], env: {} });
      http = await startMcpHttpServer({ mailer, host: '0.0.0.0', port: 0, token });
      const res = await raw(`http://127.0.0.1:${http.port}`, { path: '/health', headers: { Host: `203.0.113.7:${http.port}` } });
      expect(res.status).toBe(200);
    });
  });

  it('refuses to bind to a non-loopback address without a token: ConfigError naming AGENT_SMTP_MCP_TOKEN', async () => {
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig()], env: {} });
    const failure = await startMcpHttpServer({ mailer, host: '0.0.0.0', port: 0 }).catch((err: unknown) => err);
    expect(AgentSmtpError.isInstance(failure)).toBe(true);
    expect(failure).toBeInstanceOf(ConfigError);
    expect(failure).toMatchObject({ code: 'CONFIG_ERROR', setting: 'AGENT_SMTP_MCP_TOKEN' });
    expect((failure as Error).message).toContain('AGENT_SMTP_MCP_TOKEN');
  });

  it('knows which hosts are loopback', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'example.com', '128.0.0.1', '::ffff:10.0.0.1', 'localhost.evil.com']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});
