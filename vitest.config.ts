import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources: every workspace package's exports name its source file under
// the `@agent-smtp/source` condition, and these aliases point imports at it, so no build is needed first.
// (Setting resolve.conditions instead leaks into how Vitest loads CommonJS dependencies such as mailparser.)
const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url));
const alias = readdirSync(packagesDir).flatMap((dir) => {
  const pkg = JSON.parse(readFileSync(`${packagesDir}${dir}/package.json`, 'utf8')) as {
    name: string;
    exports?: Record<string, string | Record<string, string>>;
  };
  return Object.entries(pkg.exports ?? {}).flatMap(([subpath, target]) => {
    const source = typeof target === 'object' ? target['@agent-smtp/source'] : undefined;
    if (!source) return [];
    const find = new RegExp(`^${(pkg.name + subpath.slice(1)).replace(/[/.]/g, '\\$&')}$`);
    return [{ find, replacement: `${packagesDir}${dir}/${source.replace(/^\.\//, '')}` }];
  });
});

export default defineConfig({
  resolve: { alias },
  test: {
    // One project per package, so `npm test` runs them all and `--project core` runs one.
    projects: [
      ...readdirSync(packagesDir).map((dir) => ({
        extends: true as const,
        test: { name: dir, root: `./packages/${dir}`, include: ['src/**/*.test.ts'], testTimeout: 20_000, hookTimeout: 20_000 },
      })),
      // Tests across packages (e.g. adapter parity) live outside any one package: no package imports a sibling.
      { extends: true as const, test: { name: 'cross-package', root: './tests', include: ['**/*.test.ts'], testTimeout: 20_000 } },
    ],
  },
});
