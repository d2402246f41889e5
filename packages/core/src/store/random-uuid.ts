import { randomUUID } from 'node:crypto';

/**
 * Text as one flat string. V8 keeps a concatenation as a tree of its pieces until something flattens it: Node builds
 * `crypto.randomUUID()` from its hex pairs, so each UUID held about 20 pieces (some 500 bytes, against 60 flat),
 * and the store keeps several ids for every message and event. `normalize()` of ASCII text returns the flat string.
 */
export function flatString(text: string): string {
  return text.normalize();
}

/** `crypto.randomUUID()` as one flat string (see `flatString`), after `prefix` and before `suffix` when given. */
export function randomUuid(prefix = '', suffix = ''): string {
  return flatString(prefix + randomUUID() + suffix);
}
