import { readFileSync } from 'node:fs';
import { OUTBOX_DEFAULTS, WORKER_DEFAULTS } from '@agent-smtp/core';
import { describe, expect, it } from 'vitest';

// Issue 9 item 12: the core README said the lease was 2 min, docs/stores.md 60 s, and the code had both. The numbers
// the docs state are read here and compared with the exported defaults, so a changed default fails until the docs follow.

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, min: 60_000, h: 3_600_000 };

/** The capture groups of `pattern` in `path` as milliseconds (`60 s`, `1 h`) or plain numbers; fails naming the file when it is gone. */
function stated(path: string, pattern: RegExp): number[] {
  const match = pattern.exec(read(path));
  expect(match, `${path} no longer states ${pattern}: update this test with the new wording`).not.toBeNull();
  return match!.slice(1).reduce<number[]>((out, group, i, groups) => {
    if (group in UNIT_MS) return out;
    const unit = groups[i + 1];
    out.push(Number(group.replace(/_/g, '')) * (unit && unit in UNIT_MS ? UNIT_MS[unit]! : 1));
    return out;
  }, []);
}

describe('the defaults the docs state are the ones the code uses', () => {
  it('packages/core/README.md: attempts, retry, lease', () => {
    const row = /\| `outbox` \| (\d+) attempts, retry (\d+) (s|min|h)…(\d+) (s|min|h) for up to (\d+) (s|min|h), lease (\d+) (s|min|h)/;
    expect(stated('packages/core/README.md', row)).toEqual([
      OUTBOX_DEFAULTS.maxAttempts,
      OUTBOX_DEFAULTS.retry.baseMs,
      OUTBOX_DEFAULTS.retry.maxMs,
      OUTBOX_DEFAULTS.retry.giveUpAfterMs,
      OUTBOX_DEFAULTS.leaseMs,
    ]);
  });

  it('docs/outbox.md: attempts, retry, and the worker options', () => {
    expect(stated('docs/outbox.md', /`outbox\.retry`: (\d+) (s|min|h) doubling up to (\d+) (s|min|h)/)).toEqual([
      OUTBOX_DEFAULTS.retry.baseMs,
      OUTBOX_DEFAULTS.retry.maxMs,
    ]);
    expect(stated('docs/outbox.md', /`outbox\.maxAttempts`, default (\d+)/)).toEqual([OUTBOX_DEFAULTS.maxAttempts]);
    expect(stated('docs/outbox.md', /\((\d+) (s|min|h) after `sendAt`\)/)).toEqual([OUTBOX_DEFAULTS.retry.giveUpAfterMs]);
    expect(
      stated('docs/outbox.md', /`concurrency` \(default (\d+)\), `pollMs` \((\d+)\), .*`outbox\.leaseMs`, (\d+) (s|min|h)/),
    ).toEqual([WORKER_DEFAULTS.concurrency, WORKER_DEFAULTS.pollMs, OUTBOX_DEFAULTS.leaseMs]);
  });

  it('docs/stores.md: the lease', () => {
    expect(stated('docs/stores.md', /The default is the\s+mailer's `outbox\.leaseMs`, (\d+) (s|min|h)/)).toEqual([OUTBOX_DEFAULTS.leaseMs]);
  });

  it('no /health example shows a version other than the package has', () => {
    const { version } = JSON.parse(read('packages/mcp/package.json')) as { version: string };
    const shown = ['docs/mcp.md', 'packages/mcp/README.md'].flatMap((path) =>
      [...read(path).matchAll(/"version": "(\d+\.\d+\.\d+[^"]*)"/g)].map((m) => `${path}: ${m[1]}`),
    );
    expect(shown.filter((entry) => !entry.endsWith(`: ${version}`))).toEqual([]);
  });
});
