/**
 * The MCP server as an MCP client starts it: its own process on stdio (`createMcpServer` over the package's stdio
 * transport), sending through a mailer to the bench's sink. `mcp-stdio-server.ts <sink port>`; started by the
 * `mcp_tool_call` scenario with the MCP SDK's `StdioClientTransport`.
 */
import { createMailer, MemoryStore } from '@agent-smtp/core';
import { createMcpServer, createStdioServerTransport } from '@agent-smtp/mcp';

const port = Number(process.argv[2]);
const mailer = createMailer({
  servers: [{ host: '127.0.0.1', port, starttls: 'disabled', poolSize: 5 }],
  store: new MemoryStore(),
  defaults: { from: 'bench@example.com' },
  env: {},
});
const server = createMcpServer({ mailer });
await server.connect(createStdioServerTransport());
process.stdin.on('end', () => void mailer.close().then(() => process.exit(0)));
