import type { z } from 'zod/v4';

/** What a tool call carries besides its input: the framework's call id (used as the idempotency key) and a signal. */
export interface ToolContext {
  toolCallId?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** Honest hints for clients deciding whether to ask a human first (MCP tool annotations). */
export interface ToolAnnotations {
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/** A failure a model can act on: what went wrong, which field, whether to retry, and what to try. */
export interface ToolErrorPayload {
  code: string;
  message: string;
  field?: string | undefined;
  missing?: readonly string[] | undefined;
  retryable: boolean;
  retry_at?: string | undefined;
  hint: string;
}

export type ToolOutcome<O> = { ok: true; value: O } | { ok: false; error: ToolErrorPayload };

/**
 * A framework-neutral tool: plain data plus `execute`. Adapters (LangChain, AI SDK, MCP) translate it and
 * never re-implement it. `execute` never throws for a failure the model can act on; it returns `ok: false`.
 */
export interface MailTool<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  inputSchema: I;
  outputSchema: O;
  annotations: ToolAnnotations;
  execute(input: z.output<I>, context?: ToolContext): Promise<ToolOutcome<z.output<O>>>;
}

/** Returns its argument, typed: tool definitions stay plain objects. */
export function defineTool<I extends z.ZodObject, O extends z.ZodObject>(tool: MailTool<I, O>): MailTool<I, O> {
  return tool;
}
