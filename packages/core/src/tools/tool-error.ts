import { AgentSmtpError, type AgentSmtpErrorCode } from '../errors/agent-smtp-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import { TemplateError } from '../errors/template-error.js';
import { ValidationError } from '../errors/validation-error.js';
import type { ToolErrorPayload } from './define-tool.js';

const UNEXPECTED_FAILURE_HINT =
  'Call the tool again in a minute; for send_email use the same idempotency_key, so the email is never sent twice. ' +
  'Check get_email_status with the id if you have one. If it fails again, tell the user the email service has an internal problem.';

/**
 * What a model should do next, per code. Typed by the code union, so a code added without a hint (or a hint for a
 * code that does not exist) does not compile.
 */
export const TOOL_ERROR_HINTS = {
  VALIDATION_ERROR: 'Fix the field named in "field" and call the tool again. Nothing was sent.',
  TEMPLATE_ERROR: 'Pass a value for every variable named in "missing" (or remove the placeholders) and call again. Nothing was sent.',
  IDEMPOTENCY_CONFLICT: 'This idempotency_key was already used for a different email. Use a new key for a new email; reuse a key only to retry the same email.',
  SMTP_REJECTED: 'The mail server refused this email for good. Do not retry the same email; check the recipient address or the content, and tell the user what the server said.',
  SMTP_UNAVAILABLE: 'No mail server could take the email right now. Nothing was sent. Try again later (after retry_at if given) with the same idempotency_key, or tell the user.',
  SMTP_TRANSIENT: 'A mail server failed temporarily. Nothing was sent. Try again later with the same idempotency_key.',
  SMTP_AUTH: 'The mail server refused the configured credentials or TLS settings. Retrying will not help; tell the user to check the SMTP configuration.',
  NOT_FOUND: 'Nothing with that id exists for this user. Check the id returned by send_email.',
  CONFIG_ERROR: 'The email configuration is wrong. Tell the user; retrying will not help.',
  CLOSED: 'The mailer was shut down. Tell the user.',
  ABORTED: 'The send was cut off before the email reached a mail server; nothing was sent. Call again with the same idempotency_key.',
  SUPPRESSED: 'A recipient unsubscribed or was suppressed; nothing was sent. Do not retry with that address; send to the others only if the user wants that.',
  LEASE_EXPIRED: 'The service stopped while sending this email, so it may or may not have been delivered. Do not resend it; tell the user.',
  INTERNAL_ERROR: UNEXPECTED_FAILURE_HINT,
  FORBIDDEN: 'This connection is not signed in as a user who may use these email tools, so nothing was done. Retrying will not help; tell the user to check how the email tools are connected (their token or account).',
} as const satisfies Record<AgentSmtpErrorCode, string>;

/** The code a tool reports for a failure that is not one of ours (a store's raw driver error, a bug in a dependency). */
export const UNEXPECTED_FAILURE_CODE: AgentSmtpErrorCode = 'INTERNAL_ERROR';

/**
 * Turns an error into a result a model can act on. Our own typed errors keep their code, message and fields.
 * Anything else (a raw database error such as Postgres `22P05`, a driver's connection error) becomes a generic
 * failure: its text may hold SQL, row values or connection strings, so none of it reaches the model; the caller
 * logs the original. Messages carry no stack, no password, no other tenant's data.
 */
export function toToolError(error: unknown): ToolErrorPayload {
  if (!AgentSmtpError.isInstance(error)) return unexpectedFailure();
  return {
    code: error.code,
    message: error.message,
    ...(ValidationError.isInstance(error) ? { field: error.field } : {}),
    ...(TemplateError.isInstance(error) && error.missing.length ? { missing: error.missing } : {}),
    retryable: error.retryable,
    ...(SmtpError.isInstance(error) && error.retryAt ? { retry_at: error.retryAt.toISOString() } : {}),
    // A code from a newer copy of the package (two versions in one process) may have no hint here yet.
    hint: (TOOL_ERROR_HINTS as Record<string, string>)[error.code] ?? 'Tell the user what went wrong.',
  };
}

function unexpectedFailure(): ToolErrorPayload {
  return {
    code: UNEXPECTED_FAILURE_CODE,
    message: 'The email service failed inside (its storage or a dependency), not because of anything in this request. The details are in the server log.',
    retryable: true,
    hint: UNEXPECTED_FAILURE_HINT,
  };
}

/** Formats an error payload as one short paragraph for frameworks that show the model text. */
export function formatToolError(error: ToolErrorPayload): string {
  const parts = [`Error ${error.code}: ${error.message}`];
  if (error.missing?.length) parts.push(`Missing: ${error.missing.join(', ')}.`);
  if (error.retry_at) parts.push(`Retry after ${error.retry_at}.`);
  parts.push(error.hint);
  return parts.join(' ');
}
