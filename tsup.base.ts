import type { Options } from 'tsup';

/** What every package builds the same way: ESM for Node 20 with declarations and source maps. */
export const baseTsupOptions: Options = {
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  treeshake: true,
};
