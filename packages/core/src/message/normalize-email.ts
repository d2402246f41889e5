import { ValidationError } from '../errors/validation-error.js';
import { type ParsedAddress, parseAddress, parseAddressList } from './address.js';
import { emailSchema, type OutgoingEmail } from './email-schema.js';
import type { MessageLimits } from './limits.js';
import { toValidationError } from './zod-issues.js';

export interface NormalizedAttachment {
  filename: string;
  content: Buffer;
  contentType: string | undefined;
  cid: string | undefined;
}

/** A validated email: every address parsed, every attachment decoded, every header checked. */
export interface NormalizedEmail {
  from: ParsedAddress | undefined;
  to: ParsedAddress[];
  cc: ParsedAddress[];
  bcc: ParsedAddress[];
  replyTo: ParsedAddress[];
  subject: string;
  text: string | undefined;
  html: string | undefined;
  markdown: string | undefined;
  attachments: NormalizedAttachment[];
  headers: Record<string, string>;
  inReplyTo: string | undefined;
  references: string[];
  variables: Record<string, unknown> | undefined;
  idempotencyKey: string | undefined;
  sendAt: Date | undefined;
  tags: string[];
  metadata: Record<string, string | number | boolean | null>;
}

const LINE_BREAK = /[\r\n\u0000]/;
// RFC 5322 field-name: printable US-ASCII except colon.
const HEADER_NAME = /^[\u0021-\u0039\u003b-\u007e]{1,76}$/;
// Headers the SDK writes itself from dedicated fields; setting them by hand would bypass validation.
const RESERVED_HEADERS = new Map<string, string>([
  ['from', 'from'],
  ['to', 'to'],
  ['cc', 'cc'],
  ['bcc', 'bcc'],
  ['reply-to', 'replyTo'],
  ['subject', 'subject'],
  ['in-reply-to', 'inReplyTo'],
  ['references', 'references'],
  ['message-id', '(generated)'],
  ['date', '(generated)'],
  ['sender', 'from'],
  ['return-path', '(set by the receiving server)'],
  ['mime-version', '(generated)'],
  ['content-type', '(generated)'],
  ['content-transfer-encoding', '(generated)'],
]);

/**
 * Validates an email and brings it into the one form the rest of the SDK uses. Throws `ValidationError`
 * naming the field: an unknown field, a malformed address, a CR or LF in any header value, no recipient,
 * no body, or a message over `limits`.
 */
export function normalizeEmail(input: unknown, limits: MessageLimits): NormalizedEmail {
  const parsed = emailSchema.safeParse(input);
  if (!parsed.success) throw toValidationError(parsed.error);
  const email = parsed.data;

  const to = parseAddressList(email.to, 'to');
  const cc = parseAddressList(email.cc, 'cc');
  const bcc = parseAddressList(email.bcc, 'bcc');
  const recipients = to.length + cc.length + bcc.length;
  if (recipients === 0) throw ValidationError.of('to', 'needs at least one recipient (to, cc or bcc)');
  if (recipients > limits.maxRecipients) {
    throw ValidationError.of('to', `has ${recipients} recipients in to, cc and bcc; the limit is ${limits.maxRecipients} per message (limits.maxRecipients)`);
  }
  if (email.text === undefined && email.html === undefined && email.markdown === undefined) {
    throw ValidationError.of('text', 'is required when html and markdown are not given: every email needs a body');
  }
  assertSingleLine(email.subject, 'subject');
  if (email.inReplyTo !== undefined) assertSingleLine(email.inReplyTo, 'inReplyTo');
  const references = email.references === undefined ? [] : Array.isArray(email.references) ? email.references : [email.references];
  references.forEach((ref, i) => assertSingleLine(ref, Array.isArray(email.references) ? `references[${i}]` : 'references'));

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(email.headers ?? {})) {
    const field = `headers.${name}`;
    if (!HEADER_NAME.test(name)) throw ValidationError.of(field, 'is not a valid header name (printable ASCII, no spaces or colons)');
    const reserved = RESERVED_HEADERS.get(name.toLowerCase());
    if (reserved) {
      throw ValidationError.of(field, reserved.startsWith('(') ? `cannot be set by hand ${reserved}` : `cannot be set as a custom header; use the "${reserved}" field`);
    }
    assertSingleLine(value, field);
    headers[name] = value;
  }

  let bytes = byteLength(email.text) + byteLength(email.html) + byteLength(email.markdown);
  const attachments = (email.attachments ?? []).map((attachment, i): NormalizedAttachment => {
    assertSingleLine(attachment.filename, `attachments[${i}].filename`);
    if (attachment.contentType !== undefined) assertSingleLine(attachment.contentType, `attachments[${i}].contentType`);
    if (attachment.cid !== undefined) assertSingleLine(attachment.cid, `attachments[${i}].cid`);
    const content = decodeContent(attachment.content, attachment.encoding, `attachments[${i}].content`);
    bytes += content.length;
    return { filename: attachment.filename, content, contentType: attachment.contentType, cid: attachment.cid };
  });
  if (bytes > limits.maxMessageBytes) {
    const field = attachments.length ? 'attachments' : (email.html?.length ?? 0) > (email.text?.length ?? 0) ? 'html' : 'text';
    throw ValidationError.of(field, `message is ${formatBytes(bytes)}, over the ${formatBytes(limits.maxMessageBytes)} limit (limits.maxMessageBytes); send less content or a link instead`);
  }

  return {
    from: email.from === undefined ? undefined : parseAddress(email.from, 'from'),
    to,
    cc,
    bcc,
    replyTo: parseAddressList(email.replyTo, 'replyTo'),
    subject: email.subject,
    text: email.text,
    html: email.html,
    markdown: email.markdown,
    attachments,
    headers,
    inReplyTo: email.inReplyTo,
    references,
    variables: email.variables,
    idempotencyKey: email.idempotencyKey,
    sendAt: email.sendAt === undefined ? undefined : new Date(email.sendAt),
    tags: email.tags ?? [],
    metadata: email.metadata ?? {},
  };
}

/** Refuses a line break in a value that ends up in a header: it would let the value write new headers. */
export function assertSingleLine(value: string, field: string): void {
  if (LINE_BREAK.test(value)) throw ValidationError.of(field, 'must not contain a line break (CR or LF)');
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function decodeContent(content: string | Uint8Array, encoding: 'utf8' | 'base64' | undefined, field: string): Buffer {
  if (typeof content !== 'string') return Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  if (encoding === 'base64') {
    if (!BASE64.test(content)) throw ValidationError.of(field, 'is not valid base64 (set encoding: "utf8" for plain text)');
    return Buffer.from(content, 'base64');
  }
  return Buffer.from(content, 'utf8');
}

function byteLength(value: string | undefined): number {
  return value === undefined ? 0 : Buffer.byteLength(value, 'utf8');
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export type { OutgoingEmail };
