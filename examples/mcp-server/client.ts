/**
 * npm start: an MCP client using agent-smtp's tools the two ways an agent host reaches them.
 *
 * 1. stdio: spawns the agent-smtp-mcp CLI (what Claude Desktop does with claude_desktop_config.json), with
 *    SMTP_HOST pointing at the built-in dev SMTP sink, lists the tools and calls send_email.
 * 2. Streamable HTTP: starts the HTTP server in this process with startMcpHttpServer and calls send_email over it.
 *
 * Then it prints what the SMTP server actually received. Nothing leaves 127.0.0.1.
 */
import { fileURLToPath } from 'node:url';
import { createMailer } from '@agent-smtp/core';
import { startSmtpSink } from '@agent-smtp/testing';
import { startMcpHttpServer } from '@agent-smtp/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

const sink = await startSmtpSink();
console.log(`Dev SMTP sink listening on ${sink.host}:${sink.port}.`);

// --- 1. stdio: the CLI as a child process ------------------------------------------------------------------------
// Installed from npm you would run `npx agent-smtp-mcp` (or `npx -y @agent-smtp/mcp`). Here the CLI is resolved
// through the package's exports and run with this process's own node flags, so inside the repository it runs the
// TypeScript source through tsx and, once installed, the built dist/cli.js.
const cli = fileURLToPath(import.meta.resolve('@agent-smtp/mcp/cli'));
const stdio = new StdioClientTransport({
  command: process.execPath,
  args: [...process.execArgv, cli, '--transport', 'stdio'],
  env: {
    SMTP_HOST: sink.host,
    SMTP_PORT: String(sink.port),
    SMTP_USE_TLS: 'false', // the dev sink speaks plain SMTP; use true (STARTTLS) for a real server
    SMTP_FROM_EMAIL: 'Agent Smith <agent@example.com>',
  },
  stderr: 'pipe', // the CLI logs JSON lines on stderr; stdout is the protocol
});
const stdioClient = new Client({ name: 'example-stdio-client', version: '1.0.0' });
await stdioClient.connect(stdio);

const { tools } = await stdioClient.listTools();
console.log(`\nstdio: ${tools.length} tools`);
for (const tool of tools) {
  const kind = tool.annotations?.readOnlyHint ? 'read-only' : 'changes things';
  console.log(`  ${tool.name.padEnd(27)} ${String(tool.title).padEnd(26)} ${kind}`);
}

const viaStdio = (await stdioClient.callTool({
  name: 'send_email',
  arguments: {
    to: 'Ada Lovelace <ada@example.com>',
    subject: 'Hello {name}, from an MCP tool',
    body: 'Hi {name},\n\nThis came through **agent-smtp-mcp** over stdio.',
    format: 'markdown',
    variables: { name: 'Ada' },
    idempotency_key: `example-stdio-${Date.now()}`,
  },
})) as CallToolResult;
if (viaStdio.isError) throw new Error(`send_email over stdio failed: ${JSON.stringify(viaStdio.content)}`);
console.log(`\nstdio send_email -> ${JSON.stringify(viaStdio.structuredContent)}`);
await stdioClient.close(); // ends the child's stdin; the CLI shuts down on its own

// --- 2. Streamable HTTP, in this process ---------------------------------------------------------------------------
const mailer = createMailer({ servers: [sink.serverConfig({ name: 'dev-sink' })], defaults: { from: 'agent@example.com' } });
const http = await startMcpHttpServer({ mailer, port: 0 }); // 127.0.0.1 and a free port; no token needed on loopback
const health = (await (await fetch(http.healthUrl)).json()) as unknown;
console.log(`\nHTTP: ${http.url}, health: ${JSON.stringify(health)}`);
const httpClient = new Client({ name: 'example-http-client', version: '1.0.0' });
await httpClient.connect(new StreamableHTTPClientTransport(new URL(http.url)));
const viaHttp = (await httpClient.callTool({
  name: 'send_email',
  arguments: { to: 'grace@example.com', subject: 'Over Streamable HTTP', body: 'Same tools, other transport.' },
})) as CallToolResult;
if (viaHttp.isError) throw new Error(`send_email over HTTP failed: ${JSON.stringify(viaHttp.content)}`);
console.log(`HTTP send_email -> status=${String(viaHttp.structuredContent?.status)} id=${String(viaHttp.structuredContent?.id)}`);
await httpClient.close();
await http.close();
await mailer.close();

// --- What the SMTP server received ---------------------------------------------------------------------------------
const received = await sink.waitForMessages(2);
console.log('\nThe SMTP server received:');
for (const message of received) {
  console.log(`  from:     ${message.from}`);
  console.log(`  to:       ${message.to}   (envelope: ${message.envelope.to.join(', ')})`);
  console.log(`  subject:  ${message.subject}`);
  console.log(`  text:     ${message.text?.trim().split('\n').filter(Boolean).join(' / ')}`);
  console.log(`  html:     ${message.html ? `${message.html.length} characters` : '-'}\n`);
}
await sink.close();
