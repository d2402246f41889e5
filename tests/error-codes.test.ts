import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentSmtpError, toToolError } from '@agent-smtp/core';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../packages/', import.meta.url));

/** Source files that can produce an error code: the core and the stores (their SQL included), not tests or fixtures. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === '__fixtures__' || entry.name === 'testing' ? [] : sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

// Where a code is written down: thrown, put in a settlement, or written by a SQL function (jsonb_build_object).
const CODE_PATTERNS = [
  /new (?:AgentSmtpError|SmtpError)\(\s*'([A-Z][A-Z_]+)'/g,
  /\b(?:code|errorCode): '([A-Z][A-Z_]+)'/g,
  /'code',\s*'([A-Z][A-Z_]+)'/g,
];

function codesIn(files: string[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of CODE_PATTERNS) {
      for (const match of text.matchAll(pattern)) found.set(match[1]!, [...(found.get(match[1]!) ?? []), file.slice(root.length)]);
    }
  }
  return found;
}

describe('error codes', () => {
  it('every code the core, the pool or a store can produce is in the code union, with a hint a model can act on', () => {
    const found = codesIn(['core/src', 'store-postgres/src', 'store-supabase/src'].flatMap((dir) => {
      try {
        return sources(join(root, dir));
      } catch {
        return [];
      }
    }));
    // The scan must see the codes we know are produced, or it proves nothing.
    expect([...found.keys()]).toEqual(expect.arrayContaining(['LEASE_EXPIRED', 'SUPPRESSED', 'ABORTED', 'NOT_FOUND']));
    const fallback = toToolError(new AgentSmtpError('NOT_FOUND', 'x')).hint === 'Tell the user what went wrong.';
    expect(fallback).toBe(false);
    for (const [code, files] of found) {
      // A code outside the union would get the generic fallback hint; the type makes every union member have its own.
      const hint = toToolError(new AgentSmtpError(code as never, 'x')).hint;
      expect(hint, `${code} (written in ${files.join(', ')}) has no hint: add it to AgentSmtpErrorCode and TOOL_ERROR_HINTS`).not.toBe('Tell the user what went wrong.');
    }
  });
});
