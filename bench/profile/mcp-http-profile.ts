/** `send_email` and `tools/list` over the stateless HTTP server, in this process (run with --cpu-prof). */
import { createMailer, MemoryStore } from '@agent-smtp/core';
import { startMcpHttpServer } from '@agent-smtp/mcp';
import { startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const N = Number(process.argv[2] ?? 1000);
const sink = await startSmtpSink({ parse: false, maxMessages: 100 });
const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: sink.port, starttls: 'disabled', poolSize: 5 }], store: new MemoryStore(), defaults: { from: 'bench@example.com' }, env: {} });
const http = await startMcpHttpServer({ mailer, port: 0 });
const client = new Client({ name: 'bench', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(new URL(http.url)));
const p50 = async (fn: (i: number) => Promise<unknown>) => {
  const times: number[] = [];
  for (let i = 0; i < N; i++) { const t = performance.now(); await fn(i); times.push(performance.now() - t); }
  return times.sort((a, b) => a - b)[N >> 1]!.toFixed(2);
};
const body = 'Hello from the benchmark. '.repeat(20);
for (let i = 0; i < 50; i++) await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `W ${i}`, body } });
const mcp = await p50((i) => client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `B ${i}`, body } }));
const direct = await p50((i) => mailer.send({ to: 'ada@example.com', subject: `B ${i}`, text: body }));
const list = await p50(() => client.listTools());
console.log({ mcp_p50: mcp, direct_p50: direct, list_p50: list });
await client.close();
await http.close();
await mailer.close();
await sink.close();
