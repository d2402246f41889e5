/** `send_email` over the in-memory transport against `mailer.send` (run with --cpu-prof): the server's own added cost. */
import { createMailer, MemoryStore } from '@agent-smtp/core';
import { createMcpServer } from '@agent-smtp/mcp';
import { startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';

const N = Number(process.argv[2] ?? 2000);
const sink = await startSmtpSink({ parse: false, maxMessages: 100 });
const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: sink.port, starttls: 'disabled', poolSize: 5 }], store: new MemoryStore(), defaults: { from: 'bench@example.com' }, env: {} });
const server = createMcpServer({ mailer });
const [a, b] = InMemoryTransport.createLinkedPair();
const client = new Client({ name: 'bench', version: '1.0.0' });
await Promise.all([server.connect(b), client.connect(a)]);
await client.listTools();
const p50 = async (fn: (i: number) => Promise<unknown>) => {
  const times: number[] = [];
  for (let i = 0; i < N; i++) { const t = performance.now(); await fn(i); times.push(performance.now() - t); }
  return times.sort((x, y) => x - y)[N >> 1]!.toFixed(3);
};
const body = 'Hello from the benchmark. '.repeat(20);
for (let i = 0; i < 100; i++) { await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `W ${i}`, body } }); await mailer.send({ to: 'ada@example.com', subject: `W ${i}`, text: body }); }
const direct = await p50((i) => mailer.send({ to: 'ada@example.com', subject: `B ${i}`, text: body }));
const mcp = await p50((i) => client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `B ${i}`, body } }));
console.log({ mcp_p50: mcp, direct_p50: direct });
await client.close();
await mailer.close();
await sink.close();
