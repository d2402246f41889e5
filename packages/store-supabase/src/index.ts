export { createSupabaseStore } from './supabase-store.js';
export type { SupabaseStore, SupabaseStoreOptions } from './supabase-store.js';
export { SupabaseRpcError } from './supabase-rpc.js';
export type { RpcErrorBody, RpcResponse, SupabaseRpcClient } from './supabase-rpc.js';
export { getSupabaseMigrateStatement, migrate, supabaseMigrations } from './supabase-migrations.js';
export type { AppliedMigration, MigrateOptions } from './supabase-migrations.js';
export { supabaseVault, VAULT_KEY_ID } from './supabase-vault.js';
export type { SupabaseVaultOptions } from './supabase-vault.js';
