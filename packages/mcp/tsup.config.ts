import { defineConfig } from 'tsup';
import { baseTsupOptions } from '../../tsup.base.js';

// cli.ts keeps its `#!/usr/bin/env node` line: tsup copies a source shebang to the output and marks it executable.
export default defineConfig({ ...baseTsupOptions, entry: ['src/index.ts', 'src/cli.ts'], splitting: true });
