/** Where `tools/list` spends its time: in-memory transport, many calls, under --cpu-prof. */
import { createMailer, MemoryStore } from '@agent-smtp/core';
import { createMcpServer } from '@agent-smtp/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';

const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: 2525, starttls: 'disabled' }], store: new MemoryStore(), defaults: { from: 'bench@example.com' }, env: {} });
const server = createMcpServer({ mailer });
const [a, b] = InMemoryTransport.createLinkedPair();
const client = new Client({ name: 'bench', version: '1.0.0' });
await Promise.all([server.connect(b), client.connect(a)]);
let t = performance.now();
await client.listTools();
console.log('first', (performance.now() - t).toFixed(1));
const times: number[] = [];
for (let i = 0; i < Number(process.argv[2] ?? 300); i++) { t = performance.now(); await client.listTools(); times.push(performance.now() - t); }
times.sort((x, y) => x - y);
console.log('p50', times[times.length >> 1]!.toFixed(2), 'p99', times[Math.floor(times.length * 0.99)]!.toFixed(2));
await client.close();
await mailer.close();
