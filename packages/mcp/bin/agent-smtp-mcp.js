#!/usr/bin/env node
// The package's bin. It exists before the build (so npm links it at install time) and runs the built CLI.
const cli = await import('../dist/cli.js').catch((err) => {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  process.stderr.write('agent-smtp-mcp: @agent-smtp/mcp is not built; run `npm run build` first.\n');
  process.exit(2);
});
cli.runCli();
