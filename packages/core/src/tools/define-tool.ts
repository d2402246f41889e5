import type { z } from 'zod/v4';
import type { PendingEmail } from '../mailer/mailer.js';

/** What a tool call carries besides its input, as far as the adapter knows it. */
export interface ToolContext {
  /**
   * The framework's id for this tool call, stable when the framework retries the same call (LangChain, AI SDK):
   * `send_email` uses it as the idempotency key when the model gives none.
   */
  toolCallId?: string | undefined;
  /** Aborted when the caller cancels the call: a send that has not reached a server is stopped (`ABORTED`). */
  signal?: AbortSignal | undefined;
  /**
   * Whom the call acts for, when the adapter knows it (MCP `authInfo`). Tools made from a `MailService` refuse a call
   * without an owner; tools made from a `Mailer` refuse a call for another owner (or agent) than the mailer's.
   */
  ownerId?: string | undefined;
  agentId?: string | undefined;
  /**
   * The protocol's id of the request (MCP JSON-RPC id), for logs only. Not an idempotency key: MCP clients number
   * requests from 0 on every connection, so the same id names different calls.
   */
  requestId?: string | number | undefined;
  /**
   * A human already approved this call in the framework (the AI SDK's `needsApproval` step): a message the policy
   * would hold for approval goes out, and the audit names this approver. Set by adapter code, never from model input.
   */
  approvedBy?: string | undefined;
  /**
   * Asks a human now, while the call waits, whether to send a message the policy holds for approval (MCP
   * elicitation). `unavailable` leaves it pending for `approve_email` or the app's own approval screen.
   */
  askApproval?: ((request: PendingEmail) => Promise<{ decision: 'approve' | 'reject' | 'unavailable'; by?: string | undefined }>) | undefined;
  /** Who is at the keyboard for operator tools (`approve_email`): the signed-in human's id, recorded in the audit. */
  actor?: string | undefined;
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
  /**
   * The description with what applies to this caller now (send_email: the agent's limits and remaining quota).
   * Adapters that can refresh a description per user or per call use it; `description` is the static fallback.
   */
  describeFor?(context?: ToolContext): Promise<string>;
  /**
   * Whether this call would wait for a human under the caller's policy (send_email). For frameworks that ask the
   * human before `execute` (AI SDK `needsApproval`); they then pass `approvedBy` in the context.
   */
  needsApproval?(input: z.output<I>, context?: ToolContext): Promise<boolean>;
}

/** Returns its argument, typed: tool definitions stay plain objects. */
export function defineTool<I extends z.ZodObject, O extends z.ZodObject>(tool: MailTool<I, O>): MailTool<I, O> {
  return tool;
}
