export { createMcpServer, callerFromExtra } from './create-mcp-server.js';
export type { CreateMcpServerOptions, McpCaller } from './create-mcp-server.js';
export { startMcpHttpServer, assertSafeBinding, hashMcpToken, isLoopbackHost, MCP_TOKEN_ENV } from './http-server.js';
export type { McpAuthenticate, McpHttpServer, McpHttpServerOptions } from './http-server.js';
export { createJsonLineLogger } from './json-line-logger.js';
export { AgentSmtpStdioTransport, createStdioServerTransport, maxRequestBytesFor } from './stdio-transport.js';
export type { StdioTransportOptions } from './stdio-transport.js';
export { VERSION } from './version.js';
