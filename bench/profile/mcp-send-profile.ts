/**
 * `send_email` over stdio with the server child under --cpu-prof (profile in $PROF_DIR), against `mailer.send`:
 * where the MCP path's added latency goes. `mcp-send-profile.ts [N]`.
 */
import { createMailer, MemoryStore } from '@agent-smtp/core';
import { startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const N = Number(process.argv[2] ?? 1000);
const sink = await startSmtpSink({ parse: false, maxMessages: 100 });
const transport = new StdioClientTransport({
  command: process.execPath,
  args: [`--cpu-prof`, `--cpu-prof-dir=${process.env.PROF_DIR ?? '/tmp/prof-mcp'}`, '--conditions=@agent-smtp/source', '--import', 'tsx', new URL('../mcp-stdio-server.ts', import.meta.url).pathname, String(sink.port)],
  stderr: 'inherit',
});
const client = new Client({ name: 'bench', version: '1.0.0' });
await client.connect(transport);
const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: sink.port, starttls: 'disabled', poolSize: 5 }], store: new MemoryStore(), defaults: { from: 'bench@example.com' }, env: {} });
const p50 = async (fn: (i: number) => Promise<unknown>) => {
  const times: number[] = [];
  for (let i = 0; i < N; i++) { const t = performance.now(); await fn(i); times.push(performance.now() - t); }
  return times.sort((a, b) => a - b)[N >> 1]!.toFixed(2);
};
const body = 'Hello from the benchmark. '.repeat(20);
for (let i = 0; i < 50; i++) await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `W ${i}`, body } });
const mcp = await p50((i) => client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: `B ${i}`, body } }));
const direct = await p50((i) => mailer.send({ to: 'ada@example.com', subject: `B ${i}`, text: body }));
console.log({ mcp_p50: mcp, direct_p50: direct });
await client.close();
await mailer.close();
await sink.close();
