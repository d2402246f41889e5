import type { SendMailOptions } from 'nodemailer';
import type { ParsedAddress } from './address.js';
import type { StoredEmail } from './stored-email.js';

/** What the pool sends: nodemailer message fields with an explicit envelope. */
export interface PoolMessage extends SendMailOptions {
  envelope: { from: string; to: string[] };
  messageId: string;
}

const toNodemailer = (a: ParsedAddress): { name: string; address: string } => ({ name: a.name ?? '', address: a.address });

/**
 * Turns a stored email into nodemailer's message fields with an explicit envelope, so that what the server is
 * told (MAIL FROM / RCPT TO) comes from our parsed addresses, never from header text.
 */
export function buildPoolMessage(email: StoredEmail, messageId: string): PoolMessage {
  return {
    messageId,
    envelope: { from: email.from.address, to: email.envelopeTo ?? envelopeRecipients(email) },
    from: toNodemailer(email.from),
    to: email.to.map(toNodemailer),
    cc: email.cc.map(toNodemailer),
    // Bcc recipients are in the envelope only; nodemailer leaves the header out.
    replyTo: email.replyTo.map(toNodemailer),
    subject: email.subject,
    text: email.text,
    html: email.html,
    attachments: email.attachments.map((a) => ({
      filename: a.filename,
      content: a.contentBase64,
      encoding: 'base64',
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

/** Every recipient once (to, cc, bcc; compared case-insensitively), in that order. */
export function envelopeRecipients(email: Pick<StoredEmail, 'to' | 'cc' | 'bcc'>): string[] {
  const seen = new Set<string>();
  const recipients: string[] = [];
  for (const list of [email.to, email.cc, email.bcc]) {
    for (const { address } of list) {
      const lower = address.toLowerCase();
      if (!seen.has(lower)) {
        seen.add(lower);
        recipients.push(address);
      }
    }
  }
  return recipients;
}
