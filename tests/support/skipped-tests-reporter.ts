import type { Reporter, TestCase, TestModule, Vitest } from 'vitest/node';

/** What each variable that gates tests brings, for the one line that says why they did not run. */
const NEEDS: Readonly<Record<string, { what: string; example: string }>> = {
  DATABASE_URL: { what: 'a PostgreSQL server', example: 'DATABASE_URL=postgres://postgres@127.0.0.1:5432/test' },
  SUPABASE_URL: {
    what: 'a Supabase project for tests (migration applied, schema exposed)',
    example: 'SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=…',
  },
};

/**
 * A variable a skipped test's title says it needs: `set DATABASE_URL`, `DATABASE_URL is not set`,
 * `AGENT_SMTP_FULL_IV_TEST=1`. A variable merely named in a title (`reads SMTP_HOST`) is not a reason.
 */
const NEEDED_VARIABLE = /\bset ([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)|\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?: is not set|=)/g;

/**
 * Says, in one line before Vitest's summary, which tests did not run because a variable is unset and how to run
 * them: `describe.skipIf(!process.env.DATABASE_URL)` alone shows only a count of skipped tests. Only tests skipped
 * when collected (`skipIf`) whose titles name an unset variable are counted; a test that skips itself at run time is
 * not. Listed before Vitest's own reporter, so the summary stays the last thing printed.
 */
export class SkippedTestsReporter implements Reporter {
  #vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.#vitest = vitest;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const line = skippedLine(testModules.flatMap((module) => [...module.children.allTests()]));
    if (line) this.#vitest?.logger.log(line);
  }
}

/** `37 tests skipped: they need a PostgreSQL server; set DATABASE_URL=… to run them`, or undefined when none were. */
export function skippedLine(tests: readonly TestCase[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const byVariable = new Map<string, number>();
  for (const test of tests) {
    if (test.options.mode !== 'skip' || test.result().state !== 'skipped') continue;
    const unset = [...test.fullName.matchAll(NEEDED_VARIABLE)].map((m) => (m[1] ?? m[2])!).filter((name) => !env[name]);
    // A title may name several variables; the test counts once, under the first one that is unset.
    if (unset[0]) byVariable.set(unset[0], (byVariable.get(unset[0]) ?? 0) + 1);
  }
  if (byVariable.size === 0) return undefined;
  const parts = [...byVariable].map(([variable, count]) => {
    const tests = `${count} test${count === 1 ? '' : 's'}`;
    const need = NEEDS[variable];
    return need
      ? `${tests} need${count === 1 ? 's' : ''} ${need.what}; set ${need.example} to run ${count === 1 ? 'it' : 'them'}`
      : `${tests} need${count === 1 ? 's' : ''} ${variable} to be set`;
  });
  return `Not run: ${parts.join('; ')}.`;
}
