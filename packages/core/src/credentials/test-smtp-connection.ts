import { copyConfigSource } from '../config/smtp-config-source.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import type { AgentSmtpErrorCode } from '../errors/agent-smtp-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import { SmtpPool } from '../pool/smtp-pool.js';
import { SecretScrubber } from '../secrets/secret-scrubber.js';

const TLS_FAILURE = /certificate|self[- ]signed|\bTLS\b|\bSSL\b|wrong version number|handshake|EPROTO/i;

/**
 * Connects to the server and logs in (nodemailer's verify, through `SmtpPool`) without sending. Throws `SmtpError`
 * saying which field of the config to fix: `SMTP_AUTH` when the server refused the login or TLS failed,
 * `SMTP_TRANSIENT` when it could not be reached. Its message and fields never hold the password.
 */
export async function testSmtpConnection(server: SmtpServerConfig, label: string): Promise<void> {
  // One attempt, no retries: a settings page is waiting on the answer.
  // The copy keeps the config's source, so a TLS mistake is explained in its own fields (a stored config's `security`).
  const pool = new SmtpPool({ servers: [copyConfigSource(server, { ...server, maxRetries: 0 })], maxRetryWaitMs: 0 });
  let result;
  try {
    [result] = await pool.verify();
  } finally {
    await pool.close({ force: true });
  }
  if (!result || result.ok) return;
  // The pool scrubbed the reply already; scrubbing again costs little and does not depend on it.
  const scrubber = SecretScrubber.for([server.auth]);
  const code = result.error?.code;
  const reply = scrubber.scrub(result.error?.message ?? 'no reason given');
  // A checked config connects to an address; the user knows it by the name they entered.
  const where = `${server.tls?.servername ?? server.host}:${server.port ?? ''}`;
  const { errorCode, advice } = adviceFor(code, reply);
  throw new SmtpError(errorCode, `The connection test of SMTP config ${label} (${where}) failed: ${advice} The server said: ${reply.replace(/[.\s]+$/, '')}. Nothing was saved; to save it without a test, pass { test: false }.`, {
    server: server.name,
    smtpCode: code,
    response: reply,
  }, { retryable: errorCode === 'SMTP_TRANSIENT' });
}

function adviceFor(code: string | undefined, reply: string): { errorCode: AgentSmtpErrorCode; advice: string } {
  if (code === 'EAUTH' || code === 'ENOAUTH') {
    return { errorCode: 'SMTP_AUTH', advice: 'the server refused the login: check username and password (many providers want an app password).' };
  }
  if (code === 'ETLS' || code === 'EREQUIRETLS' || TLS_FAILURE.test(reply)) {
    return {
      errorCode: 'SMTP_AUTH',
      advice: 'TLS failed: check security ("tls" for port 465, "starttls" for 587) and that port and host match the server’s certificate.',
    };
  }
  return { errorCode: 'SMTP_TRANSIENT', advice: 'the server could not be reached or did not answer: check host and port, and that this machine may connect to it.' };
}
