import type { StoredEmail } from '../store/mail-store.js';
import type { NormalizedEmail } from './normalize-email.js';

/** The rendered email in the JSON-safe form the outbox keeps. Call after templates are rendered. */
export function toStoredEmail(email: NormalizedEmail): StoredEmail {
  return {
    from: email.from!,
    to: email.to,
    cc: email.cc,
    bcc: email.bcc,
    replyTo: email.replyTo,
    subject: email.subject,
    ...(email.text !== undefined ? { text: email.text } : {}),
    ...(email.html !== undefined ? { html: email.html } : {}),
    attachments: email.attachments.map((a) => ({
      filename: a.filename,
      contentBase64: a.content.toString('base64'),
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.cid ? { cid: a.cid } : {}),
    })),
    headers: email.headers,
    ...(email.inReplyTo !== undefined ? { inReplyTo: email.inReplyTo } : {}),
    references: email.references,
  };
}
