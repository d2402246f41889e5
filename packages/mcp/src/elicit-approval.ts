import type { Logger, PendingEmail, ToolContext } from '@agent-smtp/core';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';

/** How long a held email waits for the client's user before the call returns it as pending. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60_000;

const MAX_PREVIEW_CHARS = 1_000;
const MAX_RECIPIENTS_SHOWN = 20;
const MAX_ATTACHMENTS_SHOWN = 10;

export type AskApproval = NonNullable<ToolContext['askApproval']>;

export interface ElicitApprovalOptions {
  /** The low-level server of the session whose client is asked. */
  server: Server;
  /** The tool call the question belongs to: over Streamable HTTP it travels on that call's stream. */
  relatedRequestId: RequestId;
  /** The tool call's signal: a call the client cancels stops waiting (the email stays pending). */
  signal: AbortSignal;
  timeoutMs: number;
  /** Whom the audit names as the approver when the user answers. */
  approver: string;
  logger: Logger;
}

/**
 * Whether the session's client can show a form to its user (MCP elicitation, form mode). An empty `elicitation: {}`
 * capability means form mode; the SDK's schema spells it out as `{ form: {} }`.
 */
export function clientCanElicit(server: Server): boolean {
  return server.getClientCapabilities()?.elicitation?.form !== undefined;
}

/**
 * Asks the client's user, in a form the client shows (not the model), whether to send an email the policy holds:
 * accept with `approve: true` sends it, decline (or `approve: false`) rejects it, and cancel, a timeout or any
 * failure leaves it pending for `approve_email` or the app's own approval screen.
 */
export function elicitApproval(options: ElicitApprovalOptions): AskApproval {
  return async (pending) => {
    try {
      const answer = await options.server.elicitInput(
        {
          mode: 'form',
          message: approvalMessage(pending),
          requestedSchema: {
            type: 'object',
            properties: {
              approve: { type: 'boolean', title: 'Send this email', description: 'Check to send it now; leave unchecked or decline to reject it.', default: false },
            },
            required: ['approve'],
          },
        },
        { relatedRequestId: options.relatedRequestId, signal: options.signal, timeout: options.timeoutMs },
      );
      if (answer.action === 'accept') return { decision: answer.content?.['approve'] === true ? 'approve' : 'reject', by: options.approver };
      if (answer.action === 'decline') return { decision: 'reject', by: options.approver };
      return { decision: 'unavailable' };
    } catch (err) {
      // A timeout, a cancelled call or a client that answered out of form: nobody decided, so it stays pending.
      options.logger.info({ err, id: pending.id }, 'approval by elicitation got no answer; the email stays pending');
      return { decision: 'unavailable' };
    }
  };
}

/** What the user reads before deciding: the whole envelope, the subject, a bounded preview. Never a credential. */
export function approvalMessage(pending: PendingEmail): string {
  const lines = [
    'An agent wants to send this email. Its policy asks a human to approve it first.',
    '',
    `From: ${printable(pending.from)}`,
    `To: ${listed(pending.recipients.map((r) => printable(r)), MAX_RECIPIENTS_SHOWN)}`,
    `Subject: ${printable(pending.subject)}`,
  ];
  if (pending.attachments.length) {
    lines.push(`Attachments: ${listed(pending.attachments.map((a) => `${printable(a.filename)} (${formatBytes(a.bytes)})`), MAX_ATTACHMENTS_SHOWN)}`);
  }
  lines.push(`Why it waits: ${printable(pending.reason) || 'policy'}`, `Expires: ${pending.expiresAt.toISOString()} (undecided here, it can still be approved elsewhere until then)`, '');
  if (pending.links.length) lines.push(`Links in it: ${listed(pending.links.map((l) => printable(l).slice(0, 300)), MAX_RECIPIENTS_SHOWN)}`);
  const preview = printable(pending.preview, true);
  const shown = preview.length > MAX_PREVIEW_CHARS ? `${preview.slice(0, MAX_PREVIEW_CHARS)}…` : preview;
  // The whole length, so a payload past the preview does not pass unseen.
  lines.push(`Body (${pending.bodyChars} characters${pending.bodyChars > MAX_PREVIEW_CHARS ? `, first ${MAX_PREVIEW_CHARS} shown` : ''}):`, shown, '');
  lines.push('Approve to send it now; decline to reject it (it will never be sent).');
  return lines.join('\n');
}

/** Who approved, as the audit records it (1 to 256 printable characters): the client's name and the user, if known. */
export function elicitationApprover(clientName: string | undefined, ownerId: string | undefined): string {
  const client = clientName ? ` client "${printable(clientName).slice(0, 100)}"` : '';
  const user = ownerId ? ` user "${printable(ownerId).slice(0, 100)}"` : '';
  return `mcp-elicitation${client}${user}`;
}

// Text from the message is shown to a human: control characters could redraw a terminal, and bidi overrides could
// make an address read as another.
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g;
function printable(text: string, multiline = false): string {
  return multiline ? text.replace(HIDDEN, ' ') : text.replace(HIDDEN, ' ').replace(/[\t\n]/g, ' ');
}

function listed(items: readonly string[], max: number): string {
  const shown = items.slice(0, max).join(', ');
  return items.length > max ? `${shown} and ${items.length - max} more` : shown;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
