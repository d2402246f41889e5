import { AgentSmtpError, type AgentSmtpErrorCode } from '../errors/agent-smtp-error.js';
import { PolicyError } from '../errors/policy-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import { TemplateError } from '../errors/template-error.js';
import { ValidationError } from '../errors/validation-error.js';
import type { ToolErrorPayload } from './define-tool.js';

const UNEXPECTED_FAILURE_HINT =
  'Call the tool again in a minute; for send_email use the same idempotency_key, so the email is never sent twice. ' +
  'Check get_email_status with the id if you have one. If it fails again, tell the user the email service has an internal problem.';

/**
 * What a model should do next, per code: `sending` for a tool that sends email (its hints say whether anything was
 * sent and how to retry without a duplicate), `other` for every tool that sends nothing, where such advice would
 * only mislead. Each table is typed by the code union, so a code added without a hint (or a hint for a code that
 * does not exist) does not compile.
 */
export const TOOL_ERROR_HINTS = {
  sending: {
    VALIDATION_ERROR: 'Fix the field named in "field" and call the tool again. Nothing was sent.',
    TEMPLATE_ERROR: 'Pass a value for every variable named in "missing" (or remove the placeholders) and call again. Nothing was sent.',
    IDEMPOTENCY_CONFLICT: 'This idempotency_key was already used for a different email. Use a new key for a new email; reuse a key only to retry the same email.',
    SMTP_REJECTED: 'The mail server refused this email for good. Do not retry the same email; check the recipient address or the content, and tell the user what the server said.',
    SMTP_UNAVAILABLE: 'Nothing was sent. Try again later (after retry_at if given) with the same idempotency_key, or tell the user.',
    SMTP_TRANSIENT: 'A mail server failed temporarily. Nothing was sent. Try again later with the same idempotency_key.',
    SMTP_AUTH:
      'Nothing was sent. Do not call send_email again until the user has fixed the SMTP configuration: tell them what the message says. ' +
      'test_smtp_connection shows when the server accepts it; then send with the same idempotency_key.',
    NOT_FOUND: 'Check the id returned by send_email and call again with it exactly as given.',
    CONFIG_ERROR: 'Nothing was sent, and calling again fails the same way until the email configuration is fixed. Tell the user what the message says.',
    CLOSED: 'The mailer was shut down. Tell the user.',
    ABORTED: 'The send was cut off before the email reached a mail server; nothing was sent. Call again with the same idempotency_key.',
    SUPPRESSED: 'A recipient unsubscribed or was suppressed; nothing was sent. Do not retry with that address; send to the others only if the user wants that.',
    LEASE_EXPIRED: 'The service stopped while sending this email, so it may or may not have been delivered. Do not resend it; tell the user.',
    INTERNAL_ERROR: UNEXPECTED_FAILURE_HINT,
    FORBIDDEN: 'This connection is not signed in as a user who may use these email tools, so nothing was done. Retrying will not help; tell the user to check how the email tools are connected (their token or account).',
    POLICY_SEND_DISABLED: 'Nothing was sent, and calling again fails the same way: this agent may not send email. Tell the user, or give them the text to send.',
    POLICY_RECIPIENT_NOT_ALLOWED: 'Nothing was sent. Do not try other spellings of the address. Send only to recipients this agent may write to (the message lists them), or ask the user.',
    POLICY_TOO_MANY_RECIPIENTS: 'Nothing was sent. Send to fewer recipients, or ask the user before splitting it into several emails.',
    POLICY_DAILY_LIMIT: 'Nothing was sent. Do not retry before retry_at; tell the user the daily limit was reached.',
    POLICY_RATE_LIMIT: 'Nothing was sent. Wait until retry_at, then call again with the same idempotency_key.',
    POLICY_FROM_NOT_ALLOWED: 'Nothing was sent. Leave the sender out (the configured one is used) or use one the message names.',
    POLICY_ATTACHMENT_NOT_ALLOWED: 'Nothing was sent. Send without those attachments (or fewer, smaller ones), or ask the user.',
    APPROVAL_EXPIRED: 'The email waited for approval too long and was not sent. Ask the user whether to send it again.',
    APPROVAL_NOT_PENDING: 'The email is no longer waiting for approval. Check get_email_status with its id.',
  },
  other: {
    VALIDATION_ERROR: 'Fix the field named in "field" and call the tool again.',
    TEMPLATE_ERROR: 'Pass a value for every variable named in "missing" and call the tool again.',
    IDEMPOTENCY_CONFLICT: 'The request conflicts with an earlier one. Tell the user what the message says.',
    SMTP_REJECTED: 'The mail server refused the request for good. Tell the user what the server said.',
    SMTP_UNAVAILABLE: 'No mail server answered. Try again later (after retry_at if given), or tell the user.',
    SMTP_TRANSIENT: 'A mail server failed temporarily. Try again later.',
    SMTP_AUTH: 'Calling again fails the same way until the user fixes the SMTP configuration: tell them what the message says.',
    NOT_FOUND: 'Check the id returned by send_email and call again with it exactly as given.',
    CONFIG_ERROR: 'The email configuration is wrong, and calling again fails the same way until it is fixed. Tell the user what the message says.',
    CLOSED: 'The email service was shut down. Tell the user.',
    ABORTED: 'The call was cut off before it finished. Call the tool again if you still need its answer.',
    SUPPRESSED: 'A recipient unsubscribed or was suppressed. Tell the user.',
    LEASE_EXPIRED: 'The service stopped in the middle of this work. Tell the user.',
    INTERNAL_ERROR: 'Call the tool again in a minute. If it fails again, tell the user the email service has an internal problem.',
    FORBIDDEN: 'This connection is not signed in as a user who may use these email tools, so nothing was done. Retrying will not help; tell the user to check how the email tools are connected (their token or account).',
    POLICY_SEND_DISABLED: 'This agent may not send email. Tell the user.',
    POLICY_RECIPIENT_NOT_ALLOWED: 'This agent may not write to that recipient. Tell the user.',
    POLICY_TOO_MANY_RECIPIENTS: 'Too many recipients for this agent. Tell the user.',
    POLICY_DAILY_LIMIT: 'The daily limit was reached. Try again after retry_at, or tell the user.',
    POLICY_RATE_LIMIT: 'Wait until retry_at and call again.',
    POLICY_FROM_NOT_ALLOWED: 'This agent may not use that sender. Tell the user.',
    POLICY_ATTACHMENT_NOT_ALLOWED: 'This agent may not attach that. Tell the user.',
    APPROVAL_EXPIRED: 'The email waited for approval too long and expired. Ask the user whether to write it again.',
    APPROVAL_NOT_PENDING: 'The email is no longer waiting for approval (decided or cancelled already); get_email_status shows its state.',
  },
} as const satisfies Record<'sending' | 'other', Record<AgentSmtpErrorCode, string>>;

/**
 * The TEMPLATE_ERROR hint when no variable is missing: the template itself is wrong (an unclosed section, an object
 * where text belongs), so "pass a value for every variable" would send the model after nothing.
 */
export const TEMPLATE_FAULT_HINTS = {
  sending: 'Fix the template or the variable the message names (write {{ for a literal brace) and call again. Nothing was sent.',
  other: 'Fix the template or the variable the message names (write {{ for a literal brace) and call the tool again.',
} as const;

/** The tools whose failures the `sending` hints describe; any other tool sends nothing. */
const SENDING_TOOLS: ReadonlySet<string> = new Set(['send_email']);

/**
 * Codes a model must not answer by calling again: only a person can fix the fault (a refused login, a TLS
 * mismatch). The error itself stays retryable for the outbox, so the same email goes once the configuration is fixed.
 */
const NOT_RETRYABLE_BY_MODEL: ReadonlySet<string> = new Set<AgentSmtpErrorCode>(['SMTP_AUTH', 'CONFIG_ERROR']);

export interface ToolErrorOptions {
  /**
   * The tool that failed: its hint fits what the tool does (a tool that sends nothing never says "Nothing was sent").
   * Default: hints for a tool that sends.
   */
  tool?: string;
}

/** The code a tool reports for a failure that is not one of ours (a store's raw driver error, a bug in a dependency). */
export const UNEXPECTED_FAILURE_CODE: AgentSmtpErrorCode = 'INTERNAL_ERROR';

/**
 * Turns an error into a result a model can act on. Our own typed errors keep their code, message and fields.
 * Anything else (a raw database error such as Postgres `22P05`, a driver's connection error) becomes a generic
 * failure: its text may hold SQL, row values or connection strings, so none of it reaches the model; the caller
 * logs the original. Messages carry no stack, no password, no other tenant's data.
 */
export function toToolError(error: unknown, options: ToolErrorOptions = {}): ToolErrorPayload {
  const sends = options.tool === undefined || SENDING_TOOLS.has(options.tool);
  if (!AgentSmtpError.isInstance(error)) return unexpectedFailure(sends);
  const hints: Record<string, string> = sends ? TOOL_ERROR_HINTS.sending : TOOL_ERROR_HINTS.other;
  const retryable = error.retryable && !NOT_RETRYABLE_BY_MODEL.has(error.code);
  const templateFault = TemplateError.isInstance(error) && error.missing.length === 0;
  return {
    code: error.code,
    message: error.message,
    ...(ValidationError.isInstance(error) ? { field: error.field } : {}),
    ...(PolicyError.isInstance(error) && error.field ? { field: error.field } : {}),
    ...(TemplateError.isInstance(error) && error.missing.length ? { missing: error.missing } : {}),
    retryable,
    ...(retryable && (SmtpError.isInstance(error) || PolicyError.isInstance(error)) && error.retryAt ? { retry_at: error.retryAt.toISOString() } : {}),
    // A code from a newer copy of the package (two versions in one process) may have no hint here yet.
    hint: templateFault ? TEMPLATE_FAULT_HINTS[sends ? 'sending' : 'other'] : (hints[error.code] ?? 'Tell the user what went wrong.'),
  };
}

function unexpectedFailure(sends: boolean): ToolErrorPayload {
  return {
    code: UNEXPECTED_FAILURE_CODE,
    message: 'The email service failed inside (its storage or a dependency), not because of anything in this request. The details are in the server log.',
    retryable: true,
    hint: sends ? UNEXPECTED_FAILURE_HINT : TOOL_ERROR_HINTS.other.INTERNAL_ERROR,
  };
}

/**
 * Formats an error payload as one short paragraph for frameworks that show the model text. What the message already
 * says (the missing variables, the retry time) is not said again.
 */
export function formatToolError(error: ToolErrorPayload): string {
  // The hint follows as its own sentence, so the message must end as one.
  const parts = [`Error ${error.code}: ${error.message}${/[.!?]$/.test(error.message) ? '' : '.'}`];
  if (error.missing?.length && !error.missing.every((name) => mentions(error.message, name))) parts.push(`Missing: ${error.missing.join(', ')}.`);
  if (error.retry_at && !error.message.includes(error.retry_at)) parts.push(`Retry after ${error.retry_at}.`);
  parts.push(error.hint);
  return parts.join(' ');
}

/** True when `text` names `name` as a whole word or path: "order.id" is not named by "order.identifier". */
function mentions(text: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![\\w.])${escaped}(?![\\w.])`).test(text);
}
