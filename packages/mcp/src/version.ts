import pkg from '../package.json' with { type: 'json' };

/** This package's version, reported to MCP clients. */
export const VERSION: string = pkg.version;
