import { ValidationError } from '../errors/validation-error.js';
import type { ParsedAddress } from './address.js';
import type { MessageLimits } from './limits.js';
import type { NormalizedEmail } from './normalize-email.js';

/** Longest subject, in characters, after rendering: one RFC 5322 line before nodemailer encodes and folds it. */
export const MAX_SUBJECT_LENGTH = 998;
/** Longest custom header line (`Name: value`), in octets: RFC 5322's line limit, which we never fold to get around. */
export const MAX_HEADER_LINE_OCTETS = 998;
/** Most custom headers (defaults included) on one message. */
export const MAX_CUSTOM_HEADERS = 100;

/** Refuses a header whose `Name: value` line is over RFC 5322's 998 octets. */
export function assertHeaderLineFits(name: string, value: string, field: string): void {
  // Characters are never more than UTF-8 octets, so only a value near the limit pays for the byte count.
  if (name.length + 2 + value.length * 3 <= MAX_HEADER_LINE_OCTETS) return;
  const octets = name.length + 2 + Buffer.byteLength(value, 'utf8');
  if (octets > MAX_HEADER_LINE_OCTETS) {
    throw ValidationError.of(field, `makes a header line of ${octets} octets; a header line may have at most ${MAX_HEADER_LINE_OCTETS} (RFC 5322); put long content in the body`);
  }
}

export function assertHeaderCount(count: number, field: string): void {
  if (count > MAX_CUSTOM_HEADERS) throw ValidationError.of(field, `has ${count} custom headers; the most is ${MAX_CUSTOM_HEADERS}`);
}

/**
 * The final size check, on the message as it will go out (templates rendered, Markdown converted, default headers
 * merged): every header line fits, and headers, bodies and attachments together are within `limits.maxMessageBytes`.
 * Throws a `ValidationError` naming the field that is too long, or the largest part when the total is over.
 */
export function assertMessageFits(email: NormalizedEmail, limits: MessageLimits): void {
  if (email.subject.length > MAX_SUBJECT_LENGTH) {
    throw ValidationError.of(
      'subject',
      `is ${email.subject.length} characters long after rendering; the most is ${MAX_SUBJECT_LENGTH}; shorten it or the values put into it`,
    );
  }
  const names = Object.keys(email.headers);
  assertHeaderCount(names.length, 'headers');
  let headerBytes = Buffer.byteLength(email.subject, 'utf8') + addressBytes(email);
  for (const name of names) {
    const value = email.headers[name]!;
    assertHeaderLineFits(name, value, `headers.${name}`);
    headerBytes += name.length + 4 + Buffer.byteLength(value, 'utf8');
  }
  const parts: [field: string, bytes: number][] = [
    ['headers', headerBytes],
    ['text', byteLength(email.text)],
    ['html', byteLength(email.html)],
    ['attachments', email.attachments.reduce((sum, a) => sum + a.content.length, 0)],
  ];
  assertTotalFits(parts, limits);
}

/** Refuses when the parts add up to more than `limits.maxMessageBytes`, naming the largest part. */
export function assertTotalFits(parts: readonly (readonly [field: string, bytes: number])[], limits: MessageLimits): void {
  let total = 0;
  let largest = parts[0]!;
  for (const part of parts) {
    total += part[1];
    if (part[1] > largest[1]) largest = part;
  }
  if (total > limits.maxMessageBytes) {
    throw ValidationError.of(
      largest[0],
      `makes the message ${formatBytes(total)}, over the ${formatBytes(limits.maxMessageBytes)} limit (limits.maxMessageBytes); send less content or a link instead`,
    );
  }
}

function addressBytes(email: NormalizedEmail): number {
  let bytes = 0;
  const add = (a: ParsedAddress | undefined): void => {
    if (a) bytes += a.address.length + (a.name?.length ?? 0) + 4;
  };
  add(email.from);
  for (const list of [email.to, email.cc, email.replyTo]) list.forEach(add);
  return bytes;
}

export function byteLength(value: string | undefined): number {
  return value === undefined ? 0 : Buffer.byteLength(value, 'utf8');
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}
