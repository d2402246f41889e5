import type { Options } from 'tsup';

/**
 * What every package builds the same way: ESM and CommonJS for Node 20, each with its declarations (`.d.ts` for
 * `import`, `.d.cts` for `require`) and source maps that point into the shipped `src/`.
 */
export const baseTsupOptions: Options = {
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  treeshake: true,
  esbuildOptions(options, { format }) {
    // The maps name files in the shipped src/, so they need not carry a second copy of every source.
    options.sourcesContent = false;
    if (format === 'cjs') {
      // `import.meta.url` (the MCP CLI's entry-point check) has no CommonJS equivalent: each file computes its own.
      // (tsup's `shims` puts it in a shared chunk, so it names the chunk, and maps it to a file of tsup's.)
      options.define = { ...options.define, 'import.meta.url': '__agentSmtpModuleUrl' };
      options.banner = { js: 'var __agentSmtpModuleUrl = require("node:url").pathToFileURL(__filename).href;' };
    }
  },
};
