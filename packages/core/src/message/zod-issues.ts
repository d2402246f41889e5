import type { z } from 'zod/v4';
import { ValidationError, type ValidationIssue } from '../errors/validation-error.js';
import { quotable } from './storable-text.js';

/** Formats a zod path the way a user writes it: `to[1].address`, `headers.X-Campaign`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    // A key comes from the caller's input and the path is stored with the error: no NUL or lone surrogate in it.
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${quotable(String(key), 100)}` : quotable(String(key), 100);
  }
  return out || '(input)';
}

/** Turns zod's issues into one `ValidationError` whose `field` names the first offending field. */
export function toValidationError(error: z.core.$ZodError, prefix?: string): ValidationError {
  const issues: ValidationIssue[] = error.issues.map((issue) => {
    const field = formatPath(prefix ? [prefix, ...issue.path] : issue.path);
    if (issue.code === 'unrecognized_keys') {
      return { field, message: `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}; remove them` };
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) return { field, message: 'is required' };
    return { field, message: issue.message };
  });
  return new ValidationError(issues, { cause: error });
}
