import { ConfigError } from '@agent-smtp/core';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Checks that `schema` is a plain lower-case PostgreSQL identifier and returns it double-quoted, the only form
 * in which it is put into SQL. Everything else reaches the database as a query parameter.
 */
export function quoteSchemaName(schema: string): string {
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema)) {
    throw new ConfigError(
      `The Postgres schema name ${JSON.stringify(schema)} is not allowed: use 1 to 63 lower-case letters, digits and underscores, not starting with a digit (e.g. "agent_smtp").`,
      { setting: 'schema' },
    );
  }
  return `"${schema}"`;
}
