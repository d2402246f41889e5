import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli.ts', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/** Runs the TypeScript source the way the package's bin runs dist/cli.js: a separate node process. */
export const NODE_ARGS = ['--conditions=@agent-smtp/source', '--import', 'tsx', CLI];

/** Resolves with what `probe` returns once it is not undefined; rejects naming `what` after `timeoutMs`. */
export async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
