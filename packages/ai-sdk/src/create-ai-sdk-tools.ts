import { createMailTools, type Mailer, type MailTool, type MailToolName, type MailToolsOptions } from '@agent-smtp/core';
import { type Tool, tool } from 'ai';

/**
 * Which tool calls wait for a human's approval before they run: `true` for every tool that changes something
 * (send_email, switch/reload/reconnect), a list of tool names, or a function deciding per call.
 */
export type NeedsApproval =
  | boolean
  | readonly MailToolName[]
  | ((toolName: MailToolName, input: unknown) => boolean | Promise<boolean>);

export interface AiSdkToolsOptions extends MailToolsOptions {
  needsApproval?: NeedsApproval;
}

/**
 * The agent-smtp email tools as an AI SDK tool record keyed by name, for `generateText({ tools })` and
 * `streamText({ tools })`. A failure comes back as `{ error: { code, message, field, retryable, hint } }`
 * so the model can act on it; the tool call's id is the send's idempotency key when the model gives none.
 */
export function createAiSdkTools(source: Mailer | readonly MailTool[], options: AiSdkToolsOptions = {}): Record<string, Tool> {
  const tools = Array.isArray(source) ? (source as readonly MailTool[]) : createMailTools(source as Mailer, options);
  const record: Record<string, Tool> = {};
  for (const mailTool of tools) {
    const approval = approvalFor(mailTool, options.needsApproval);
    record[mailTool.name] = tool({
      title: mailTool.title,
      description: mailTool.description,
      inputSchema: mailTool.inputSchema,
      ...(approval === undefined ? {} : { needsApproval: approval }),
      async execute(input, { toolCallId, abortSignal }) {
        const outcome = await mailTool.execute(input, { toolCallId, signal: abortSignal });
        return outcome.ok ? outcome.value : { error: outcome.error };
      },
    }) as Tool;
  }
  return record;
}

function approvalFor(mailTool: MailTool, needsApproval: NeedsApproval | undefined): boolean | ((input: unknown) => Promise<boolean>) | undefined {
  if (needsApproval === undefined || needsApproval === false) return undefined;
  const name = mailTool.name as MailToolName;
  if (needsApproval === true) return !mailTool.annotations.readOnlyHint;
  if (typeof needsApproval === 'function') return async (input: unknown) => needsApproval(name, input);
  return needsApproval.includes(name);
}
