import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources: the `@agent-smtp/source` export condition points each
// workspace package at its src/ so no build is needed before `npm test`.
const sourceCondition = { resolve: { conditions: ['@agent-smtp/source', 'node', 'import', 'default'] } };

export default defineConfig({
  ssr: sourceCondition,
  ...sourceCondition,
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'core',
          root: './packages/core',
          include: ['src/**/*.test.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
    ],
  },
});
