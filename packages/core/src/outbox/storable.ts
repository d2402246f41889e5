import type { MessageError } from '../store/mail-store.js';

/** Longest server text a record keeps (a reply, an error message): enough to act on, bounded in bytes. */
export const MAX_STORED_TEXT = 2_000;

/**
 * Server text as every store can hold it: a NUL (which PostgreSQL text refuses) and lone surrogates (which are not
 * UTF-8) become U+FFFD, and it is cut to `max` characters. A value the store cannot hold would make the outcome of
 * a send unrecordable after the server answered, and an unrecorded outcome is how a message gets sent twice.
 */
export function storableText(value: string, max = MAX_STORED_TEXT): string {
  let text = value.includes('\u0000') ? value.replace(/\u0000/g, '\uFFFD') : value;
  if (!text.isWellFormed()) text = text.toWellFormed();
  return text.length > max ? `${text.slice(0, max - 1).toWellFormed()}…` : text;
}

export function storableOptional(value: string | undefined): string | undefined {
  return value === undefined ? undefined : storableText(value);
}

export function storableError(error: MessageError): MessageError {
  return {
    ...error,
    code: storableText(error.code, 100),
    message: storableText(error.message),
    ...(error.response !== undefined ? { response: storableText(error.response) } : {}),
  };
}
