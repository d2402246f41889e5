import type { ParsedAddress } from './address.js';
import type { NormalizedEmail } from './normalize-email.js';

export interface StoredAttachment {
  filename: string;
  contentBase64: string;
  contentType?: string | undefined;
  cid?: string | undefined;
}

/** The validated, rendered email as kept in the outbox: JSON-safe, so every store can keep it as it is. */
export interface StoredEmail {
  from: ParsedAddress;
  to: ParsedAddress[];
  cc: ParsedAddress[];
  bcc: ParsedAddress[];
  replyTo: ParsedAddress[];
  subject: string;
  text?: string | undefined;
  html?: string | undefined;
  attachments: StoredAttachment[];
  headers: Record<string, string>;
  inReplyTo?: string | undefined;
  references: string[];
  /**
   * When set, the envelope goes to these recipients only while the headers still show `to` and `cc` as written:
   * a follow-up for recipients a server deferred (4xx) while it accepted the others.
   */
  envelopeTo?: string[] | undefined;
}

/** What the caller attached to a message for its own bookkeeping: flat, JSON-safe values. */
export type Metadata = Record<string, string | number | boolean | null>;

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
