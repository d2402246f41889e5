export { createPostgresStore } from './postgres-store.js';
export type { AppliedMigration, PostgresStore, PostgresStoreOptions } from './postgres-store.js';
export type { PostgresClient } from './postgres-client.js';
export { getMigrateStatement, getMigrationSql } from './migration-sql.js';
export type { Migration } from './migrations/index.js';
// For store packages that call the same SQL functions another way (the Supabase store over rpc()).
export { iso, nullable, toAuditEntry, toDate, toMailEvent, toMailStats, toNumber, toOutboxRecord, toStoredPolicy, toStoredSmtpConfig, toSuppression } from './row-mappers.js';
export type { Row } from './row-mappers.js';
export { checkApproval, toBatchRecord, wholeMs } from './outbox-args.js';
export type { MigrationSql } from './migration-sql.js';
