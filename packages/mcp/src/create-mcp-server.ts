import {
  AgentSmtpError,
  createMailTools,
  formatToolError,
  type Logger,
  type Mailer,
  type MailTool,
  type MailToolsOptions,
  safeLogger,
  type ToolOutcome,
  toToolError,
} from '@agent-smtp/core';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { VERSION } from './version.js';

export interface CreateMcpServerOptions extends MailToolsOptions {
  /** The mailer the tools send through. */
  mailer: Mailer;
  /** Tools to expose instead of `createMailTools(mailer, options)`. */
  tools?: readonly MailTool[];
  /** Server name reported to clients. Default: `agent-smtp`. */
  name?: string;
  /** Instructions clients may show the model. */
  instructions?: string;
}

const DEFAULT_INSTRUCTIONS =
  'Email tools. send_email sends real email: only to recipients the user named or approved. ' +
  'Use get_email_status with the id it returns to follow up, and get_smtp_status or test_smtp_connection when sending fails.';

/**
 * A fresh `McpServer` with the agent-smtp tools registered (title, description, input and output schema,
 * annotations). The caller picks the transport: `server.connect(new StdioServerTransport())`, a Streamable
 * HTTP transport, or an in-memory pair in tests.
 */
export function createMcpServer(options: CreateMcpServerOptions): McpServer {
  const server = new McpServer(
    { name: options.name ?? 'agent-smtp', title: 'agent-smtp', version: VERSION },
    { instructions: options.instructions ?? DEFAULT_INSTRUCTIONS },
  );
  const tools = options.tools ?? createMailTools(options.mailer, options);
  const logger = safeLogger(options.logger);
  for (const mailTool of tools) {
    server.registerTool(
      mailTool.name,
      {
        title: mailTool.title,
        description: mailTool.description,
        inputSchema: mailTool.inputSchema,
        outputSchema: mailTool.outputSchema,
        annotations: { title: mailTool.title, ...mailTool.annotations },
      },
      async (input: unknown) => {
        // MCP gives no stable tool-call id, so only the model's idempotency_key protects against a resend.
        const outcome = await executeSafely(mailTool, input, logger);
        if (outcome.ok) {
          const value = outcome.value as Record<string, unknown>;
          return { content: [{ type: 'text' as const, text: JSON.stringify(value) }], structuredContent: value };
        }
        return { isError: true, content: [{ type: 'text' as const, text: formatToolError(outcome.error) }] };
      },
    );
  }
  return server;
}

/**
 * The tools of `createMailTools` never throw, but `tools` may hold the caller's own. The MCP SDK would turn a
 * throw into a result carrying the raw message (a database error, a connection string), so it is made the same
 * generic error result the built-in tools give, and the original is logged.
 */
async function executeSafely(tool: MailTool, input: unknown, logger: Logger): Promise<ToolOutcome<unknown>> {
  try {
    return await tool.execute(input as never);
  } catch (error) {
    if (!AgentSmtpError.isInstance(error)) logger.error({ err: error, tool: tool.name }, 'tool failed with an unexpected error');
    return { ok: false, error: toToolError(error) };
  }
}
