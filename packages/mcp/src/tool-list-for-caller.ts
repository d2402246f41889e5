import { createHash } from 'node:crypto';
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
 * (zod 4's JSON Schema, draft-7, input side for input and output side for output), once per tool object: the
 * stateless HTTP server makes a server per request over the same tools.
 */
export function serveToolListForCaller(server: McpServer, tools: readonly MailTool[], contextOf: (extra: Extra) => ToolContext, logger: Logger): void {
  server.server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
    const context = contextOf(extra);
    const descriptions = await Promise.all(tools.map((tool) => descriptionFor(tool, context, logger)));
    return { tools: tools.map((tool, i) => ({ ...listedTool(tool), description: descriptions[i]! })) };
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

const listedTools = new WeakMap<MailTool, Tool>();

function listedTool(tool: MailTool): Tool {
  let listed = listedTools.get(tool);
  if (!listed) {
    listed = {
      name: tool.name,
      title: tool.title,
      description: tool.description,
      inputSchema: z.toJSONSchema(tool.inputSchema, { target: 'draft-7', io: 'input' }) as Tool['inputSchema'],
      outputSchema: withContentId(tool.name, z.toJSONSchema(tool.outputSchema, { target: 'draft-7', io: 'output' }) as NonNullable<Tool['outputSchema']>),
      annotations: { title: tool.title, ...tool.annotations },
    };
    // Shared by every caller's listing (an in-process client gets these very objects): frozen, so none can change
    // what the next caller is listed.
    deepFreeze(listed);
    listedTools.set(tool, listed);
  }
  return listed;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * An output schema with an `$id` named after the tool and its content. The MCP SDK's client compiles every output
 * schema with Ajv on every `tools/list`, unless the schema has an `$id` it has compiled before: without one, that
 * compile was four fifths of a `tools/list` round trip (about 20 of 25 ms for eight tools, measured in the bench's
 * client). The hash changes when the schema does, so a client never validates against an outdated one.
 */
function withContentId(toolName: string, schema: NonNullable<Tool['outputSchema']>): NonNullable<Tool['outputSchema']> {
  const hash = createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 16);
  return { $id: `urn:agent-smtp:tool:${toolName}:output:${hash}`, ...schema };
}
