export { createPostgresStore } from './postgres-store.js';
export type { AppliedMigration, PostgresStore, PostgresStoreOptions } from './postgres-store.js';
export type { PostgresClient } from './postgres-client.js';
export { getMigrationSql } from './migration-sql.js';
export type { MigrationSql } from './migration-sql.js';
