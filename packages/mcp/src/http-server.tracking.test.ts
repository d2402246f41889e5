import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createMailer, createTrackingHandler, type Mailer, MemoryStore, type TrackingKeys } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { type McpHttpServer, startMcpHttpServer } from './index.js';

// The tracking routes on the MCP HTTP server: public (no token, any Host, as a proxy passes it), while /mcp keeps
// its token and its DNS-rebinding checks.

const TOKEN = 'mcp-bearer-token-for-tracking-tests';
const PUBLIC_HOST = 'mail.example.com';
const BASE_URL = `https://${PUBLIC_HOST}/t`;
const BROWSER = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

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

async function start() {
  const keys: TrackingKeys = { current: 'k1', keys: { k1: randomBytes(32).toString('base64') } };
  const store = new MemoryStore();
  sink = await startSmtpSink();
  mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'news@example.com' }, store, env: {}, tracking: { baseUrl: BASE_URL, keys } });
  // Hits come a minute after the send, so they count as a person's (the too-soon rule is core's to test).
  const handler = createTrackingHandler({ store, keys, basePath: '/t', now: () => new Date(Date.now() + 60_000) });
  http = await startMcpHttpServer({ mailer, port: 0, token: TOKEN, tracking: { handler, basePath: '/t' } });
  return { store, server: http };
}

type RawResponse = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** A raw request to the server, so the test sets the Host header a proxy would pass. */
function raw(server: McpHttpServer, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false },
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

/** A header exactly as sent (unfolded), from the raw message. */
function header(message: { raw: Buffer }, name: string): string | undefined {
  const head = message.raw.toString('utf8').split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return head
    .split(/\r?\n/)
    .find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    ?.slice(name.length + 1)
    .trim();
}

/** The path of a public tracking URL: what a proxy in front of the server forwards. */
const pathOf = (url: string): string => {
  expect(url.startsWith(`${BASE_URL}/`), url).toBe(true);
  return new URL(url).pathname;
};

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const mcpHeaders = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

describe('startMcpHttpServer with tracking', () => {
  it('send_email over MCP, then the click and one-click unsubscribe through the same server, with the public Host and no token', async () => {
    const { store, server } = await start();
    const client = new Client({ name: 'tracking-test', version: '1.0.0' });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: { Authorization: `Bearer ${TOKEN}` } } }));
    const result = (await client.callTool({
      name: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'News', format: 'html', body: '<p>Read <a href="https://example.com/article?id=7">the article</a>.</p>' },
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const id = (result.structuredContent as { id: string }).id;

    const [message] = await sink!.waitForMessages(1);
    const click = /href="([^"]+\/c\/[^"]+)"/.exec(String(message!.html))![1]!;
    const clicked = await raw(server, { path: pathOf(click), headers: { Host: PUBLIC_HOST, 'User-Agent': BROWSER } });
    expect(clicked.status).toBe(302);
    expect(clicked.headers.location).toBe('https://example.com/article?id=7');
    const clicks = await store.events.list('default', { messageId: id, type: 'clicked' });
    expect(clicks.map((e) => e.detail)).toEqual([expect.objectContaining({ machine: false, link: 0, url: 'https://example.com/article?id=7' })]);

    const unsubscribe = /^<([^>]+)>$/.exec(header(message!, 'list-unsubscribe')!)![1]!;
    const post = await raw(server, {
      method: 'POST',
      path: pathOf(unsubscribe),
      headers: { Host: PUBLIC_HOST, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(post.status).toBe(200);
    expect((await store.suppressions.list('default')).map((s) => [s.address, s.reason])).toEqual([['ada@example.com', 'unsubscribe']]);
  });

  it('keeps /mcp and /health as they were: no token 401, a foreign Host 403 (also with a token)', async () => {
    const { server } = await start();
    const noToken = await raw(server, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Host: `127.0.0.1:${server.port}` }, body: initialize });
    expect(noToken.status).toBe(401);
    const foreign = await raw(server, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Host: PUBLIC_HOST, Authorization: `Bearer ${TOKEN}` }, body: initialize });
    expect(foreign.status).toBe(403);
    const foreignOrigin = await raw(server, {
      method: 'POST',
      path: '/mcp',
      headers: { ...mcpHeaders, Host: `127.0.0.1:${server.port}`, Origin: `https://${PUBLIC_HOST}`, Authorization: `Bearer ${TOKEN}` },
      body: initialize,
    });
    expect(foreignOrigin.status).toBe(403);
    expect((await raw(server, { path: '/health', headers: { Host: PUBLIC_HOST } })).status).toBe(403);
    expect((await raw(server, { path: '/health', headers: { Host: `127.0.0.1:${server.port}` } })).status).toBe(200);
    const ok = await raw(server, { method: 'POST', path: '/mcp', headers: { ...mcpHeaders, Host: `127.0.0.1:${server.port}`, Authorization: `Bearer ${TOKEN}` }, body: initialize });
    expect(ok.status).toBe(200);
  });

  it('never lets a path under the tracking prefix reach /mcp or /health, and refuses forged tokens and big bodies', async () => {
    const { server } = await start();
    // Each of these is answered by the tracking handler, never by the MCP endpoint: no token, a foreign Host.
    const corpus = [
      { path: '/t/../mcp', method: 'POST', status: 404 },
      { path: '/t/%2e%2e/mcp', method: 'POST', status: 404 },
      { path: '/t/..%2fmcp', method: 'POST', status: 404 },
      { path: '/t/../health', method: 'GET', status: 404 },
      { path: '/t//mcp', method: 'POST', status: 404 },
      { path: '/t', method: 'GET', status: 404 },
      { path: '/t/', method: 'GET', status: 404 },
      { path: '/t/x/c/abc', method: 'GET', status: 404 },
      { path: '/t/c/forged.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', method: 'GET', status: 400 },
      { path: '/t/o/forged', method: 'GET', status: 400 },
      { path: '/t/u/forged', method: 'POST', status: 400 },
      { path: '/t/c/forged', method: 'POST', status: 405 },
      { path: '/t/u/forged?next=/mcp', method: 'POST', status: 400 },
    ];
    const answers = await Promise.all(
      corpus.map(async ({ path, method }) => {
        const res = await raw(server, { method, path, headers: { ...mcpHeaders, Host: 'evil.example' }, body: method === 'POST' ? initialize : undefined });
        return { path, method, status: res.status, isRpc: res.body.includes('jsonrpc') };
      }),
    );
    expect(answers).toEqual(corpus.map(({ path, method, status }) => ({ path, method, status, isRpc: false })));

    // A one-click POST carries a few bytes; the listener reads at most 4 KB of a body.
    const big = await raw(server, { method: 'POST', path: '/t/u/forged', headers: { Host: PUBLIC_HOST }, body: 'x'.repeat(64 * 1024) });
    expect(big.status).toBe(413);
    // Outside the prefix, the MCP server's own checks still answer.
    expect((await raw(server, { path: '/tracking', headers: { Host: PUBLIC_HOST } })).status).toBe(403);
  });

  it.each([
    ['/', '/mcp'],
    ['', undefined],
    ['/mcp', '/mcp'],
    ['/mcp/t', '/mcp'],
    ['/health/', '/health'],
    ['/health/t', '/health'],
    ['t', undefined],
    ['/t?x=1', undefined],
    ['/a//b', undefined],
    ['/a/../mcp', undefined],
  ])('refuses the tracking basePath %j with a ConfigError', async (basePath, taken) => {
    const keys: TrackingKeys = { current: 'k1', keys: { k1: randomBytes(32).toString('base64') } };
    const handler = createTrackingHandler({ store: new MemoryStore(), keys });
    sink = await startSmtpSink();
    mailer = createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'news@example.com' }, env: {} });
    const started = startMcpHttpServer({ mailer, port: 0, tracking: { handler, basePath } });
    await expect(started).rejects.toMatchObject({ code: 'CONFIG_ERROR', setting: 'tracking.basePath', message: taken ? expect.stringContaining(`would take over ${taken}`) : expect.stringContaining('not a plain path') });
  });
});
