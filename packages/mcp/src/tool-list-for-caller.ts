import type { Logger, MailTool, ToolContext } from '@agent-smtp/core';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { ListToolsRequestSchema, type ServerNotification, type ServerRequest, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod/v4';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * Answers `tools/list` with each tool's description for the caller of that request (`describeFor`: the agent's
 * allowed recipients, quota left, what waits for approval), since a model plans with what it reads there. The
 * SDK's own handler is synchronous and lists one description for everyone, so this replaces it; the tools stay
 * registered with the SDK, which still validates and routes `tools/call`. Schemas are converted as the SDK does
 * (zod 4's JSON Schema, draft-7, input side for input and output side for output), once per server.
 */
export function serveToolListForCaller(server: McpServer, tools: readonly MailTool[], contextOf: (extra: Extra) => ToolContext, logger: Logger): void {
  let listed: Tool[] | undefined;
  server.server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
    listed ??= tools.map(toListedTool);
    const context = contextOf(extra);
    const descriptions = await Promise.all(tools.map((tool) => descriptionFor(tool, context, logger)));
    return { tools: listed.map((tool, i) => ({ ...tool, description: descriptions[i]! })) };
  });
}

async function descriptionFor(tool: MailTool, context: ToolContext, logger: Logger): Promise<string> {
  if (!tool.describeFor) return tool.description;
  try {
    return await tool.describeFor(context);
  } catch (err) {
    // No caller (a service without authInfo), a store that is down: the static description still lets the model work.
    logger.debug({ err, tool: tool.name }, 'tool description for the caller unavailable; listing the static one');
    return tool.description;
  }
}

function toListedTool(tool: MailTool): Tool {
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: z.toJSONSchema(tool.inputSchema, { target: 'draft-7', io: 'input' }) as Tool['inputSchema'],
    outputSchema: z.toJSONSchema(tool.outputSchema, { target: 'draft-7', io: 'output' }) as NonNullable<Tool['outputSchema']>,
    annotations: { title: tool.title, ...tool.annotations },
  };
}
