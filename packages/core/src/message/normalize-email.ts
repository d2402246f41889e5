import { ValidationError } from '../errors/validation-error.js';
import { type ParsedAddress, parseAddress, parseAddressList } from './address.js';
import { emailSchema, type OutgoingEmail } from './email-schema.js';
import { DEFAULT_MAX_MARKDOWN_BYTES, type MessageLimits } from './limits.js';
import { assertHeaderCount, assertHeaderLineFits, assertTotalFits, byteLength } from './message-size.js';
import { type NormalizedAttachment, normalizeAttachment } from './normalize-attachment.js';
import { assertSingleLine, assertStorableText, quotable } from './storable-text.js';
import { toValidationError } from './zod-issues.js';

export type { NormalizedAttachment };
export { assertSingleLine };

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
  /** Per-message tracking switches (off only). */
  tracking: { opens?: boolean | undefined; clicks?: boolean | undefined; unsubscribe?: boolean | undefined } | undefined;
  /** The content's idempotency fingerprint, set by the pipeline before tracking makes the content unique per record. */
  fingerprint?: string | undefined;
}

// RFC 5322 field-name: printable US-ASCII except colon.
const HEADER_NAME = /^[\u0021-\u0039\u003b-\u007e]{1,76}$/;
// RFC 5322 msg-id, `<id-left@id-right>`: printable ASCII without angle brackets or a second @ on either side.
const MESSAGE_ID = /^<[\u0021-\u003b\u003d\u003f\u0041-\u007e]+@[\u0021-\u003b\u003d\u003f\u0041-\u007e]+>$/;
const WHITESPACE = /\s+/;
const MAX_METADATA_KEYS = 50;
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
 * naming the field: an unknown field, a malformed address, a CR or LF in any header value, a NUL or lone surrogate
 * in any text (no store could keep it), no recipient, no body, or a message over `limits`. Every length is bounded
 * before any pattern runs, and every check is linear in its input.
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
  if (email.inReplyTo !== undefined) assertMessageId(email.inReplyTo, 'inReplyTo');
  const references = messageIdList(email.references);

  const headers = checkHeaders(email.headers ?? {});
  // Bounded before anything is decoded or rendered; the size of the message as sent is checked again after rendering.
  const markdownBytes = byteLength(email.markdown);
  const bodyBytes: [string, number][] = [
    ['text', byteLength(email.text)],
    ['html', byteLength(email.html)],
    ['markdown', markdownBytes],
  ];
  assertTotalFits(bodyBytes, limits);
  const maxMarkdownBytes = limits.maxMarkdownBytes ?? DEFAULT_MAX_MARKDOWN_BYTES;
  if (email.html === undefined && markdownBytes > maxMarkdownBytes) {
    throw ValidationError.of('markdown', `is ${markdownBytes} bytes; the most converted to HTML is ${maxMarkdownBytes} (limits.maxMarkdownBytes); send a long body as html instead`);
  }
  if (email.text !== undefined) assertStorableText(email.text, 'text');
  if (email.html !== undefined) assertStorableText(email.html, 'html');
  if (email.markdown !== undefined) assertStorableText(email.markdown, 'markdown');
  const attachments = (email.attachments ?? []).map((attachment, i) => normalizeAttachment(attachment, i, limits));
  assertTotalFits([...bodyBytes, ['attachments', attachments.reduce((sum, a) => sum + a.content.length, 0)]], limits);

  if (email.idempotencyKey !== undefined) assertStorableText(email.idempotencyKey, 'idempotencyKey');
  const tags = email.tags ?? [];
  tags.forEach((tag, i) => assertStorableText(tag, `tags[${i}]`));
  const metadata = checkMetadata(email.metadata ?? {});
  if (email.variables !== undefined) assertStorableValues(email.variables, 'variables');

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
    tags,
    metadata,
    tracking: email.tracking,
  };
}

function checkHeaders(input: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  const names = Object.keys(input);
  assertHeaderCount(names.length, 'headers');
  for (const name of names) {
    const value = input[name]!;
    const field = `headers.${quotable(name, 100)}`;
    if (!HEADER_NAME.test(name)) throw ValidationError.of(field, 'is not a valid header name (printable ASCII, no spaces or colons)');
    const reserved = RESERVED_HEADERS.get(name.toLowerCase());
    if (reserved) {
      throw ValidationError.of(field, reserved.startsWith('(') ? `cannot be set by hand ${reserved}` : `cannot be set as a custom header; use the "${reserved}" field`);
    }
    assertHeaderLineFits(name, value, field);
    assertSingleLine(value, field);
    headers[name] = value;
  }
  return headers;
}

function assertMessageId(value: string, field: string): void {
  if (!MESSAGE_ID.test(value)) {
    throw ValidationError.of(field, `"${quotable(value)}" is not a Message-ID; pass the Message-ID of the earlier message, e.g. <id@example.com>`);
  }
}

/** `references` as a list: an array, or one string of Message-IDs separated by whitespace as in the header. */
function messageIdList(references: string | string[] | undefined): string[] {
  if (references === undefined) return [];
  if (Array.isArray(references)) {
    references.forEach((ref, i) => assertMessageId(ref, `references[${i}]`));
    return references;
  }
  const ids = references.split(WHITESPACE).filter((id) => id !== '');
  ids.forEach((id) => assertMessageId(id, 'references'));
  return ids;
}

function checkMetadata(metadata: Record<string, string | number | boolean | null>): Record<string, string | number | boolean | null> {
  const keys = Object.keys(metadata);
  if (keys.length > MAX_METADATA_KEYS) throw ValidationError.of('metadata', `has ${keys.length} keys; the most is ${MAX_METADATA_KEYS}`);
  for (const key of keys) {
    assertStorableText(key, `metadata.${quotable(key, 100)}`);
    const value = metadata[key];
    if (typeof value === 'string') assertStorableText(value, `metadata.${key}`);
  }
  return metadata;
}

/**
 * Walks template variables (keys and string values, at any depth) for text no store could keep: a value that
 * reaches the rendered message would be refused there, but by then the field it came from is lost.
 */
function assertStorableValues(variables: Record<string, unknown>, field: string): void {
  const stack: [value: unknown, path: string][] = [[variables, field]];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      assertStorableText(value, path);
      continue;
    }
    if (typeof value !== 'object' || value === null || value instanceof Date || seen.has(value)) continue;
    seen.add(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push([value[i], `${path}.${i}`]);
      continue;
    }
    for (const key of Object.keys(value)) {
      assertStorableText(key, `${path}.${quotable(key, 100)}`);
      stack.push([(value as Record<string, unknown>)[key], `${path}.${key}`]);
    }
  }
}

export type { OutgoingEmail };
