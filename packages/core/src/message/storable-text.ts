import { ValidationError } from '../errors/validation-error.js';

/**
 * Where `value` holds a character no store can keep: a NUL (PostgreSQL text and jsonb refuse it, 22P05) or a lone
 * UTF-16 surrogate (not Unicode, so not UTF-8 either, 22021). Returns its index and a description, or undefined.
 */
export function findUnstorableCharacter(value: string): { index: number; what: string } | undefined {
  // Both checks are native scans; the loop below runs only on text that already failed one of them.
  const nul = value.indexOf('\u0000');
  if (value.isWellFormed()) return nul === -1 ? undefined : { index: nul, what: 'a NUL character (U+0000)' };
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code === 0) return { index: i, what: 'a NUL character (U+0000)' };
    if (code < 0xd800 || code > 0xdfff) continue;
    const next = value.charCodeAt(i + 1);
    if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++;
      continue;
    }
    return { index: i, what: `a lone surrogate (U+${code.toString(16).toUpperCase()}), which is not valid Unicode` };
  }
  return undefined;
}

/**
 * Refuses text that could not be stored the same way on every store, so a value is refused before anything is
 * written or sent rather than failing in one store's database after the server has the message.
 */
export function assertStorableText(value: string, field: string): void {
  const bad = findUnstorableCharacter(value);
  if (bad) throw ValidationError.of(field, `contains ${bad.what} at position ${bad.index}; remove it (text must be valid Unicode without NUL)`);
}

const LINE_BREAK = /[\r\n]/;

/**
 * Refuses a value that ends up in a header and could not: a line break (it would let the value write headers of
 * its own), a NUL or a lone surrogate (no store could keep it).
 */
export function assertSingleLine(value: string, field: string): void {
  if (LINE_BREAK.test(value)) throw ValidationError.of(field, 'must not contain a line break (CR or LF)');
  assertStorableText(value, field);
}

/**
 * `value` made safe to quote in an error message, which is itself stored and logged: controls and lone surrogates
 * become U+FFFD, and anything past `max` characters is cut.
 */
export function quotable(value: string, max = 80): string {
  const short = value.length > max ? `${value.slice(0, max - 3)}...` : value;
  return short.toWellFormed().replace(/\p{Cc}/gu, '\uFFFD');
}
