import type { PoolMessage } from '../pool/smtp-pool.js';
import type { ParsedAddress } from './address.js';
import type { NormalizedEmail } from './normalize-email.js';

const toNodemailer = (a: ParsedAddress): { name: string; address: string } => ({ name: a.name ?? '', address: a.address });

/**
 * Turns a validated, rendered email into nodemailer's message fields with an explicit envelope, so that
 * what the server is told (MAIL FROM / RCPT TO) comes from our parsed addresses, never from header text.
 */
export function buildPoolMessage(email: NormalizedEmail, from: ParsedAddress, messageId: string): PoolMessage {
  const seen = new Set<string>();
  const recipients: string[] = [];
  for (const list of [email.to, email.cc, email.bcc]) {
    for (const { address } of list) {
      const key = address.toLowerCase();
      if (!seen.has(key)) {
        seen.add(key);
        recipients.push(address);
      }
    }
  }
  return {
    messageId,
    envelope: { from: from.address, to: recipients },
    from: toNodemailer(from),
    to: email.to.map(toNodemailer),
    cc: email.cc.map(toNodemailer),
    // Bcc recipients are in the envelope only; nodemailer leaves the header out.
    replyTo: email.replyTo.map(toNodemailer),
    subject: email.subject,
    text: email.text,
    html: email.html,
    attachments: email.attachments.map((a) => ({
      filename: a.filename,
      content: a.content,
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.cid ? { cid: a.cid } : {}),
    })),
    headers: email.headers,
    ...(email.inReplyTo ? { inReplyTo: email.inReplyTo } : {}),
    ...(email.references.length ? { references: email.references } : {}),
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}
