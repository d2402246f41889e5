export { createMcpServer } from './create-mcp-server.js';
export type { CreateMcpServerOptions } from './create-mcp-server.js';
export { startMcpHttpServer, assertSafeBinding, isLoopbackHost, MCP_TOKEN_ENV } from './http-server.js';
export type { McpHttpServer, McpHttpServerOptions } from './http-server.js';
export { createJsonLineLogger } from './json-line-logger.js';
export { AgentSmtpStdioTransport, createStdioServerTransport, maxRequestBytesFor } from './stdio-transport.js';
export type { StdioTransportOptions } from './stdio-transport.js';
export { VERSION } from './version.js';
