import { detectMimeType } from 'nodemailer/lib/mime-funcs';
import { ValidationError } from '../errors/validation-error.js';
import type { AttachmentInput } from './email-schema.js';
import type { MessageLimits } from './limits.js';
import { assertSingleLine } from './storable-text.js';

export interface NormalizedAttachment {
  filename: string;
  content: Buffer;
  contentType: string | undefined;
  cid: string | undefined;
}

// RFC 2045 token characters on both sides of the slash; parameters (`; charset=utf-8`) follow a semicolon.
const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/i;
// Mail readers treat these as structure, not as a file: a multipart/* attachment is silently dropped, and a message/*
// part may not be base64-encoded (RFC 2046 5.2.1), which is how attachment content is sent.
const CONTAINER_TYPE = /^(?:multipart|message)\//i;
const UNSAFE_IN_FILENAME = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/**
 * Checks one attachment and brings it into the form that is stored and sent: filename reduced to a safe base name,
 * content decoded, container content types refused. `limits` bounds the content before it is scanned or decoded.
 */
export function normalizeAttachment(input: AttachmentInput, index: number, limits: MessageLimits): NormalizedAttachment {
  const field = `attachments[${index}]`;
  if ('path' in input) {
    // The mailer reads files (inside the agent's folder) before this point; one left here had no folder to come from.
    throw ValidationError.of(
      `${field}.path`,
      'names a file, but this agent has no attachment folder (policy.attachments.directory) to read files from; pass the content instead',
    );
  }
  const attachment = input;
  assertSingleLine(attachment.filename, `${field}.filename`);
  const filename = safeBaseName(attachment.filename) || `attachment-${index + 1}`;
  let contentType = attachment.contentType;
  if (contentType !== undefined) {
    assertSingleLine(contentType, `${field}.contentType`);
    assertAttachableType(contentType, `${field}.contentType`);
  } else if (CONTAINER_TYPE.test(detectMimeType(filename))) {
    // nodemailer would pick message/rfc822 for `.eml` and friends; sent as plain bytes the file still arrives intact.
    contentType = 'application/octet-stream';
  }
  if (attachment.cid !== undefined) assertSingleLine(attachment.cid, `${field}.cid`);
  const content = decodeContent(attachment.content, attachment.encoding, `${field}.content`, limits);
  return { filename, content, contentType, cid: attachment.cid };
}

/**
 * The last path segment, without controls, format characters (a right-to-left override turns `cod.exe` into what
 * reads as `exe.doc`), or leading and trailing dots and spaces. Empty when nothing safe is left.
 */
export function safeBaseName(filename: string): string {
  const base = filename.slice(Math.max(filename.lastIndexOf('/'), filename.lastIndexOf('\\')) + 1).replace(UNSAFE_IN_FILENAME, '');
  let start = 0;
  let end = base.length;
  while (start < end && isDotOrSpace(base.charCodeAt(start))) start++;
  while (end > start && isDotOrSpace(base.charCodeAt(end - 1))) end--;
  return base.slice(start, end);
}

function isDotOrSpace(code: number): boolean {
  return code === 0x2e || code === 0x20;
}

function assertAttachableType(contentType: string, field: string): void {
  const semicolon = contentType.indexOf(';');
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim();
  if (!MEDIA_TYPE.test(type)) throw ValidationError.of(field, `"${type}" is not a media type such as application/pdf or image/png`);
  if (CONTAINER_TYPE.test(type)) {
    throw ValidationError.of(
      field,
      `is ${type.toLowerCase()}, a container type mail readers do not show as an attachment; send the file as application/octet-stream or its own type`,
    );
  }
}

function decodeContent(content: string | Uint8Array, encoding: 'utf8' | 'base64' | undefined, field: string, limits: MessageLimits): Buffer {
  if (typeof content !== 'string') {
    if (content.byteLength > limits.maxMessageBytes) throw overLimit(field, content.byteLength, limits);
    return Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  }
  if (encoding === 'base64') {
    // Every 4 characters decode to at most 3 bytes; whitespace only makes the decoded content smaller.
    if (Math.floor(content.length / 4) * 3 > limits.maxMessageBytes + 3) throw overLimit(field, Math.floor(content.length / 4) * 3, limits);
    if (!isBase64(content)) throw ValidationError.of(field, 'is not valid base64 (set encoding: "utf8" for plain text)');
    return Buffer.from(content, 'base64');
  }
  // UTF-8 never takes fewer bytes than UTF-16 code units.
  if (content.length > limits.maxMessageBytes) throw overLimit(field, content.length, limits);
  return Buffer.from(content, 'utf8');
}

/** Base64 alphabet and whitespace, then at most two `=` and whitespace: one pass, no backtracking. */
export function isBase64(content: string): boolean {
  let i = 0;
  const length = content.length;
  for (; i < length; i++) {
    const c = content.charCodeAt(i);
    const alphabet = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
    if (!alphabet && !isWhitespace(c)) break;
  }
  let padding = 0;
  while (i < length && content.charCodeAt(i) === 0x3d && padding < 2) {
    i++;
    padding++;
  }
  while (i < length && isWhitespace(content.charCodeAt(i))) i++;
  return i === length;
}

function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d || code === 0x0b || code === 0x0c;
}

function overLimit(field: string, bytes: number, limits: MessageLimits): ValidationError {
  return ValidationError.of(
    field,
    `is at least ${bytes} bytes, over the ${limits.maxMessageBytes}-byte message limit (limits.maxMessageBytes); send less content or a link instead`,
  );
}
