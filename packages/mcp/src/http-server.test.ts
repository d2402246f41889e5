import { request } from 'node:http';
import { AgentSmtpError, ConfigError, createMailer, type Mailer } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopbackHost, type McpHttpServer, type McpHttpServerOptions, startMcpHttpServer } from './index.js';

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

type Limits = Pick<McpHttpServerOptions, 'maxRequestBytes' | 'maxInFlightBytes' | 'maxConcurrentRequests' | 'retryAfterSeconds'>;

async function start(options: { token?: string; auth?: boolean; unnamed?: boolean; limits?: Limits } = {}): Promise<McpHttpServer> {
  sink = await startSmtpSink(options.auth ? { auth: { user: USER, pass: PASSWORD } } : {});
  const config = options.unnamed ? sink.serverConfig() : sink.serverConfig({ name: 'sink' });
  mailer = createMailer({ servers: [config], defaults: { from: 'agent@example.com' }, env: {} });
  http = await startMcpHttpServer({ mailer, port: 0, ...(options.token ? { token: options.token } : {}), ...options.limits });
  return http;
}

async function connectClient(url: string, headers?: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'http-test', version: '1.0.0' });
  clients.push(client);
  const transport = new StreamableHTTPClientTransport(new URL(url), headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return client;
}

/**
 * A request whose headers and first half of the body are sent now and the rest on `finish()`: it is in flight (and
 * holds its announced bytes of the server's budget) for as long as the test wants.
 */
function holdRequest(url: string, body: string): { finish: () => Promise<RawResponse> } {
  const { hostname, port } = new URL(url);
  const bytes = Buffer.from(body);
  let req!: ReturnType<typeof request>;
  const response = new Promise<RawResponse>((resolve, reject) => {
    req = request(
      { host: hostname, port, method: 'POST', path: '/mcp', headers: { ...mcpHeaders, 'Content-Length': String(bytes.length) }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
  });
  req.write(bytes.subarray(0, bytes.length >> 1));
  return {
    finish: () => {
      req.end(bytes.subarray(bytes.length >> 1));
      return response;
    },
  };
}

type RawResponse = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** A tools/call of send_email with an attachment of `attachmentBytes`, as the raw JSON-RPC body. */
function sendEmailBody(id: number, attachmentBytes = 0): string {
  const attachments = attachmentBytes ? [{ filename: 'a.bin', content_base64: Buffer.alloc(attachmentBytes, 1).toString('base64') }] : undefined;
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'send_email', arguments: { to: 'ada@example.com', subject: `request ${id}`, body: 'x', ...(attachments ? { attachments } : {}) } },
  });
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
  it('listens on a free port when given 0 and reports it in port, url (the MCP endpoint) and healthUrl', async () => {
    const server = await start();
    expect(server.port).toBeGreaterThan(0);
    // Issue 9 item 12: url lacked the /mcp the CLI printed, so a client given it reached a 404.
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/mcp`);
    expect(server.healthUrl).toBe(`http://127.0.0.1:${server.port}/health`);
    expect((await fetch(server.healthUrl)).status).toBe(200);
    const client = await connectClient(server.url);
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('send_email');
  });

  it('binds to IPv6 loopback, written bare or in brackets, and reports a bracketed URL', async () => {
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, env: {} });
    for (const host of ['::1', '[::1]']) {
      const server = await startMcpHttpServer({ mailer, host, port: 0 });
      try {
        expect(server.url, host).toBe(`http://[::1]:${server.port}/mcp`);
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
    expect(tools).toHaveLength(8);
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
    const server = await start({ limits: { maxRequestBytes: 64 * 1024 } });
    const missing = await raw(server.url, { path: '/nope' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error).toContain('/nope');

    const bad = await raw(server.url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body: '{not json' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ error: { code: -32700 } });

    const big = await raw(server.url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body: `"${'x'.repeat(100 * 1024)}"` });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).error.message).toContain('maxRequestBytes');
  });

  describe('under load', () => {
    const post = (url: string, body: string): Promise<RawResponse> => raw(url, { method: 'POST', path: '/mcp', headers: mcpHeaders, body });

    /** Waits until the server holds `count` requests: from then on they hold their share of its budget. */
    async function waitForInFlight(server: McpHttpServer, count: number): Promise<void> {
      const deadline = Date.now() + 15_000;
      while (server.inFlight().requests < count) {
        if (Date.now() > deadline) throw new Error(`only ${server.inFlight().requests} of ${count} requests arrived`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }

    function expectBusy(res: RawResponse): void {
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('2');
      expect(JSON.parse(res.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000, message: expect.stringContaining('Retry after 2 s') } });
    }

    const subjectsOf = (responses: RawResponse[]): string[] => responses.map((res) => `request ${JSON.parse(res.body).id}`).sort();

    it('refuses requests over the in-flight byte cap with 503 and Retry-After, and serves the rest', async () => {
      // ~400 kB bodies (300 kB attachments as base64): two fit in 1 MB, a third does not.
      const server = await start({ limits: { maxRequestBytes: 500_000, maxInFlightBytes: 1_000_000, retryAfterSeconds: 2 } });
      const held = [holdRequest(server.url, sendEmailBody(1, 300_000)), holdRequest(server.url, sendEmailBody(2, 300_000))];
      await waitForInFlight(server, 2);
      expect(server.inFlight().bytes).toBeGreaterThan(800_000);
      const refused = await Promise.all([3, 4, 5].map((id) => post(server.url, sendEmailBody(id, 300_000))));
      for (const res of refused) expectBusy(res);
      // A small request still fits in what the held ones leave.
      const small = await post(server.url, sendEmailBody(6));
      const finished = await Promise.all(held.map((h) => h.finish()));
      const served = [small, ...finished];
      for (const res of served) {
        expect(res.status).toBe(200);
        expect(JSON.parse(res.body).result.isError).toBeFalsy();
      }
      // Every response is in, and a send is answered only after the SMTP server's 250: the sink has all it will get.
      expect(sink!.messages.map((m) => m.subject).sort()).toEqual(subjectsOf(served));
      expect(server.inFlight()).toEqual({ requests: 0, bytes: 0 });

      const after = await post(server.url, sendEmailBody(7, 300_000));
      expect(after.status).toBe(200);
      expect(sink!.messages.map((m) => m.subject).sort()).toEqual(subjectsOf([...served, after]));
    });

    it('refuses requests over the concurrency cap with 503 and Retry-After', async () => {
      const server = await start({ limits: { maxConcurrentRequests: 1, retryAfterSeconds: 2 } });
      const held = holdRequest(server.url, sendEmailBody(1));
      await waitForInFlight(server, 1);
      expectBusy(await post(server.url, sendEmailBody(2)));
      const finished = await held.finish();
      expect(finished.status).toBe(200);
      const after = await post(server.url, sendEmailBody(3));
      expect(after.status).toBe(200);
      expect(sink!.messages.map((m) => m.subject).sort()).toEqual(subjectsOf([finished, after]));
    });

    it('counts a body of unannounced length (chunked) as it arrives, and refuses it once over the cap', async () => {
      const server = await start({ limits: { maxRequestBytes: 500_000, maxInFlightBytes: 600_000, retryAfterSeconds: 2 } });
      const held = holdRequest(server.url, sendEmailBody(1, 300_000));
      await waitForInFlight(server, 1);
      const chunked = await new Promise<RawResponse>((resolve, reject) => {
        const { hostname, port } = new URL(server.url);
        const req = request({ host: hostname, port, method: 'POST', path: '/mcp', headers: mcpHeaders, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        });
        req.on('error', reject);
        // Two writes before end(): Node sends them chunked, with no Content-Length.
        const body = Buffer.from(sendEmailBody(2, 300_000));
        req.write(body.subarray(0, 1000));
        req.end(body.subarray(1000));
      });
      expectBusy(chunked);
      expect((await held.finish()).status).toBe(200);
      expect(sink!.messages.map((m) => m.subject)).toEqual(['request 1']);
    });

    it('refuses limits that could never serve the largest request', async () => {
      sink = await startSmtpSink();
      mailer = createMailer({ servers: [sink.serverConfig()], env: {} });
      const failure = await startMcpHttpServer({ mailer, port: 0, maxRequestBytes: 2_000_000, maxInFlightBytes: 1_000_000 }).catch((err: unknown) => err);
      expect(failure).toMatchObject({ code: 'CONFIG_ERROR', setting: 'maxInFlightBytes' });
      const zero = await startMcpHttpServer({ mailer, port: 0, maxConcurrentRequests: 0 }).catch((err: unknown) => err);
      expect(zero).toMatchObject({ code: 'CONFIG_ERROR', setting: 'maxConcurrentRequests' });
    });
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

  // Issue 9 item 12: /health said `server-1` where get_smtp_status said `127.0.0.1:<port>`.
  it('GET /health names a server as status() and get_smtp_status do, and a default name holds no host or port', async () => {
    const server = await start({ unnamed: true });
    const client = await connectClient(server.url);
    const tool = (await client.callTool({ name: 'get_smtp_status', arguments: {} })) as CallToolResult;
    const res = await raw(server.url, { path: '/health' });
    expect(JSON.parse(res.body).servers).toEqual([{ name: 'smtp-1', state: 'healthy', healthy: true }]);
    expect((tool.structuredContent as { servers: { name: string }[] }).servers.map((s) => s.name)).toEqual(['smtp-1']);
    expect(mailer!.status().servers.map((s) => s.name)).toEqual(['smtp-1']);
    expect(res.body).not.toContain(String(sink!.port));
  });

  it('refuses a request a web page on another origin sends to the loopback server', async () => {
    const server = await start();
    const cross = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Origin: 'https://evil.example' }, body: initialize });
    expect(cross.status).toBe(403);
    const same = await raw(server.url, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Origin: new URL(server.url).origin }, body: initialize });
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
      const failure = await anonymous.connect(new StreamableHTTPClientTransport(new URL(server.url))).catch((err: unknown) => err);
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
