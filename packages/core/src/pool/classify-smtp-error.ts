import type { SmtpFailureClass } from '../errors/smtp-error.js';

/** The fields of a nodemailer error that classification reads. */
export interface NodemailerErrorLike {
  code?: string | undefined;
  /** The system error's own code when nodemailer replaced it, e.g. `DEPTH_ZERO_SELF_SIGNED_CERT` under `ESOCKET`. */
  originalCode?: string | undefined;
  responseCode?: number | undefined;
  command?: string | undefined;
}

const AUTH_CODES = new Set(['EAUTH', 'ENOAUTH', 'EOAUTH2', 'ETLS', 'EREQUIRETLS', 'ECONFIG']);
const AUTH_REPLIES = new Set([530, 534, 535, 538]);
const MESSAGE_CODES = new Set(['EENVELOPE', 'EMESSAGE', 'EMAXRECIPIENTS', 'ESTREAM', 'EFILEACCESS', 'EURLACCESS']);
// Node's certificate and TLS failures (self-signed, expired, wrong host name, protocol mismatch): a configuration
// fault that waiting will not fix, though nodemailer reports them as socket errors.
const TLS_FAILURE = /CERT|SELF_SIGNED|^ERR_TLS|^ERR_SSL|UNABLE_TO_VERIFY|HOSTNAME_MISMATCH/;

// The commands that set the session up (greeting, EHLO, STARTTLS, AUTH): a refusal there is the server's or its
// configuration's fault, not a verdict on this message, so another server may well take it.
const SESSION_COMMAND = /^(CONN|GREETING|EHLO|HELO|LHLO|STARTTLS|AUTH)\b/i;
const AUTH_COMMAND = /^(STARTTLS|AUTH)\b/i;

/**
 * Sorts a failed send into what the pool should do about it (DESIGN.md §3, RFC 5321 / 3463):
 * - `transient`: back the server off and fail over (connection faults, timeouts before the data was
 *   sent, 4xx, 552 on RCPT, a 5xx at the greeting or EHLO);
 * - `auth`: the server refused our credentials, or TLS failed (certificate, protocol, no STARTTLS), whatever the
 *   reply code; back off longer and fail over;
 * - `permanent`: the server refused this message for good (a 5xx to MAIL FROM, RCPT TO or DATA, or to its
 *   content); another server would refuse it too;
 * - `ambiguous`: the connection broke after the whole message was handed over, so the server may have
 *   accepted it; never resend automatically.
 */
export function classifySmtpError(error: NodemailerErrorLike, bodySent: boolean): SmtpFailureClass {
  const reply = error.responseCode;
  // Any 4xx passes, even at AUTH (454 "temporary authentication failure") or STARTTLS (454 "TLS not available").
  if (reply !== undefined && reply >= 400 && reply < 500) return 'transient';
  // nodemailer's own login and TLS codes name a configuration fault, even when a 5xx reply came with them
  // (`ETLS` with `500 command not recognized` from a server that does not offer STARTTLS).
  if (!bodySent && error.code && AUTH_CODES.has(error.code)) return 'auth';
  if (reply === undefined || reply === 0) {
    if (bodySent) return 'ambiguous';
    if (error.originalCode && TLS_FAILURE.test(error.originalCode)) return 'auth';
    if (error.code && MESSAGE_CODES.has(error.code)) return 'permanent';
    return 'transient';
  }
  if (AUTH_REPLIES.has(reply) || error.code === 'EAUTH') return 'auth';
  const command = error.command?.trim() ?? '';
  if (reply >= 500 && SESSION_COMMAND.test(command)) return AUTH_COMMAND.test(command) ? 'auth' : 'transient';
  // 552 to RCPT is "too many recipients / mailbox full for now" in practice (RFC 5321 §4.5.3.1.10); at MAIL FROM
  // or after DATA it is "message too large", which another try will not change.
  if (reply === 552 && command.toUpperCase().startsWith('RCPT')) return 'transient';
  // 503 means the session was in the wrong state, not that the message was refused.
  if (reply === 503) return 'transient';
  if (reply >= 500) return 'permanent';
  return bodySent ? 'ambiguous' : 'transient';
}
