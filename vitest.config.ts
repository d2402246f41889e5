import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';
import { SkippedTestsReporter } from './tests/support/skipped-tests-reporter.js';

// Vitest's own choice of reporter when none is configured (std-env is its dependency): `agent` under an AI agent,
// `default` otherwise, and `github-actions` besides in GitHub Actions. Naming reporters replaces that choice, so it is
// made again here; a `--reporter` on the command line still replaces them all.
const { isAgent } = await import('std-env').catch(() => ({ isAgent: false }));
const builtInReporters = [isAgent ? 'agent' : 'default', ...(process.env.GITHUB_ACTIONS === 'true' ? ['github-actions'] : [])];

// Tests run against the TypeScript sources: every workspace package's exports name its source file under
// the `@agent-smtp/source` condition, and these aliases point imports at it, so no build is needed first.
// (Setting resolve.conditions instead leaks into how Vitest loads CommonJS dependencies such as mailparser.)
const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url));
const alias = readdirSync(packagesDir).flatMap((dir) => {
  const pkg = JSON.parse(readFileSync(`${packagesDir}${dir}/package.json`, 'utf8')) as {
    name: string;
    exports?: Record<string, string | Record<string, unknown>>;
  };
  return Object.entries(pkg.exports ?? {}).flatMap(([subpath, target]) => {
    const source = typeof target === 'object' ? target['@agent-smtp/source'] : undefined;
    if (typeof source !== 'string') return [];
    const find = new RegExp(`^${(pkg.name + subpath.slice(1)).replace(/[/.]/g, '\\$&')}$`);
    return [{ find, replacement: `${packagesDir}${dir}/${source.replace(/^\.\//, '')}` }];
  });
});

const PACKED_TARBALLS_TEST = 'packed-tarballs.int.test.ts';

export default defineConfig({
  resolve: { alias },
  test: {
    // First, so its one line (the tests not run for want of DATABASE_URL, and how to run them) comes before Vitest's
    // summary, which stays the last thing printed.
    reporters: [new SkippedTestsReporter(), ...builtInReporters],
    // One project per package, so `npm test` runs them all and `--project core` runs one.
    projects: [
      ...readdirSync(packagesDir).map((dir) => ({
        extends: true as const,
        test: { name: dir, root: `./packages/${dir}`, include: ['src/**/*.test.ts'], testTimeout: 20_000, hookTimeout: 20_000 },
      })),
      // Tests across packages (e.g. adapter parity) live outside any one package: no package imports a sibling.
      {
        extends: true as const,
        test: { name: 'cross-package', root: './tests', include: ['**/*.test.ts'], exclude: [...configDefaults.exclude, PACKED_TARBALLS_TEST], testTimeout: 20_000 },
      },
      // Builds and packs every package and installs the tarballs into a fresh app: minutes of CPU on a small machine,
      // so it runs after every other project (groupOrder), neither slowing their timing-sensitive tests nor slowed by them.
      { extends: true as const, test: { name: 'packed-tarballs', root: './tests', include: [PACKED_TARBALLS_TEST], sequence: { groupOrder: 1 } } },
    ],
  },
});
