import {
  createMailTools,
  formatToolError,
  type Mailer,
  type MailTool,
  type MailToolsOptions,
  type ToolOutcome,
} from '@agent-smtp/core';
import { ToolMessage } from '@langchain/core/messages';
import { type DynamicStructuredTool, tool } from '@langchain/core/tools';

/**
 * The agent-smtp email tools as LangChain tools, built with `tool()` from `@langchain/core/tools`.
 * Pass a `Mailer` (tools are created with `options`) or tools from `createMailTools()`.
 *
 * Called with a tool call (as agents do), each tool returns a `ToolMessage`: status `success` with the JSON
 * result, or status `error` with what went wrong and what to try; the structured value is its `artifact`.
 * The tool call's id is the send's idempotency key when the model gives none, so a retried call sends once.
 */
export function createLangChainTools(source: Mailer | readonly MailTool[], options: MailToolsOptions = {}): DynamicStructuredTool[] {
  const tools = Array.isArray(source) ? (source as readonly MailTool[]) : createMailTools(source as Mailer, options);
  return tools.map((mailTool) =>
    tool(
      async (input, config) => {
        const toolCall = config?.toolCall;
        const outcome: ToolOutcome<unknown> = await mailTool.execute(input, { toolCallId: toolCall?.id, signal: config?.signal });
        const content = outcome.ok ? JSON.stringify(outcome.value) : formatToolError(outcome.error);
        if (!toolCall?.id) return content;
        return new ToolMessage({
          content,
          tool_call_id: toolCall.id,
          name: mailTool.name,
          status: outcome.ok ? 'success' : 'error',
          artifact: outcome.ok ? outcome.value : outcome.error,
        });
      },
      { name: mailTool.name, description: mailTool.description, schema: mailTool.inputSchema },
    ),
  ) as DynamicStructuredTool[];
}
