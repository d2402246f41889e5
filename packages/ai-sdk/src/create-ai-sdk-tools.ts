import { createMailTools, type Mailer, type MailTool, type MailToolName, type MailToolsOptions } from '@agent-smtp/core';
import { type ModelMessage, type Tool, tool, type ToolExecutionOptions } from 'ai';

/**
 * Which tool calls wait for a human's approval before they run: `true` for every tool that changes something
 * (send_email, switch/reload/reconnect), a list of tool names, or a function deciding per call.
 */
export type NeedsApproval =
  | boolean
  | readonly MailToolName[]
  | ((toolName: MailToolName, input: unknown) => boolean | Promise<boolean>);

export interface AiSdkToolsOptions extends MailToolsOptions {
  /** Calls that wait for the AI SDK's approval step in addition to those the agent's policy holds. */
  needsApproval?: NeedsApproval;
  /**
   * Ask in the AI SDK's approval step for a send the agent's policy would hold for approval, and send it once the
   * human approved. False leaves such sends `pending_approval` (for `approve_email` or your own screen). Default true.
   */
  policyApproval?: boolean;
  /**
   * Whom the audit names as the approver of a call approved in the AI SDK's step: a name, or a function of the call
   * (e.g. the signed-in user from `experimental_context`). Default `ai-sdk:needsApproval`.
   */
  approvedBy?: string | ((options: ToolExecutionOptions) => string);
}

export const DEFAULT_AI_SDK_APPROVER = 'ai-sdk:needsApproval';

/**
 * The agent-smtp email tools as an AI SDK tool record keyed by name, for `generateText({ tools })` and
 * `streamText({ tools })`. A failure comes back as `{ error: { code, message, field, retryable, hint } }`
 * so the model can act on it; the tool call's id is the send's idempotency key when the model gives none.
 */
export function createAiSdkTools(source: Mailer | readonly MailTool[], options: AiSdkToolsOptions = {}): Record<string, Tool> {
  const tools = Array.isArray(source) ? (source as readonly MailTool[]) : createMailTools(source as Mailer, options);
  const record: Record<string, Tool> = {};
  for (const mailTool of tools) {
    const approval = approvalFor(mailTool, options);
    record[mailTool.name] = tool({
      title: mailTool.title,
      description: mailTool.description,
      inputSchema: mailTool.inputSchema,
      ...(approval === undefined ? {} : { needsApproval: approval }),
      async execute(input, executionOptions) {
        const { toolCallId, abortSignal } = executionOptions;
        // The AI SDK runs a call that asked for approval only after the app answered approved: the policy then lets
        // the send go out instead of holding it a second time, and the audit names the approver.
        const approvedBy = approvedInMessages(executionOptions.messages, toolCallId) ? approverOf(options.approvedBy, executionOptions) : undefined;
        const outcome = await mailTool.execute(input, { toolCallId, signal: abortSignal, ...(approvedBy ? { approvedBy } : {}) });
        return outcome.ok ? outcome.value : { error: outcome.error };
      },
    }) as Tool;
  }
  return record;
}

type ApprovalCheck = boolean | ((input: unknown, options: { toolCallId: string }) => Promise<boolean>);

/** The option's answer, or'ed with the policy's: a send the policy would hold is asked about unless `policyApproval` is false. */
function approvalFor(mailTool: MailTool, options: AiSdkToolsOptions): ApprovalCheck | undefined {
  const byOption = optionApproval(mailTool, options.needsApproval);
  const byPolicy = options.policyApproval === false ? undefined : mailTool.needsApproval;
  if (!byPolicy || byOption === true) return byOption;
  return async (input, { toolCallId }) => {
    if (typeof byOption === 'function' && (await byOption(input, { toolCallId }))) return true;
    return byPolicy.call(mailTool, input as never, { toolCallId });
  };
}

function optionApproval(mailTool: MailTool, needsApproval: NeedsApproval | undefined): ApprovalCheck | undefined {
  if (needsApproval === undefined || needsApproval === false) return undefined;
  const name = mailTool.name as MailToolName;
  if (needsApproval === true) return !mailTool.annotations.readOnlyHint;
  if (typeof needsApproval === 'function') return async (input: unknown) => needsApproval(name, input);
  return needsApproval.includes(name);
}

/**
 * Whether the app answered this call's approval request with approved, as the AI SDK reads it: a
 * `tool-approval-response` in the last (tool) message for an approval request naming this call.
 */
function approvedInMessages(messages: readonly ModelMessage[], toolCallId: string): boolean {
  const last = messages.at(-1);
  if (last?.role !== 'tool') return false;
  const requests = new Set<string>();
  for (const message of messages) {
    if (message.role !== 'assistant' || typeof message.content === 'string') continue;
    for (const part of message.content) if (part.type === 'tool-approval-request' && part.toolCallId === toolCallId) requests.add(part.approvalId);
  }
  return last.content.some((part) => part.type === 'tool-approval-response' && part.approved && requests.has(part.approvalId));
}

function approverOf(approvedBy: AiSdkToolsOptions['approvedBy'], options: ToolExecutionOptions): string {
  return (typeof approvedBy === 'function' ? approvedBy(options) : approvedBy) || DEFAULT_AI_SDK_APPROVER;
}
