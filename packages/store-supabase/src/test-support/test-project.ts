import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import pg from 'pg';
import WebSocket from 'ws';
import type { PostgresClient } from '@agent-smtp/store-postgres';
import { migrate } from '../supabase-migrations.js';
import { signJwt } from './jwt.js';
import { startPostgrestServer, type PostgrestServer, type RunInTransaction, type TransactionClient } from './postgrest-server.js';
import { installSupabaseAuth } from './supabase-auth.js';

// Test helpers, not part of the package's entry point: a Supabase project in miniature (the auth emulation, the
// store's migrations in a fresh schema, the PostgREST-contract server) on PGlite or on the server in DATABASE_URL.

export const DATABASE_URL = process.env.DATABASE_URL;
export const SERVER_SKIP_REASON = 'needs a PostgreSQL server: set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test';

export const uniqueSchema = (prefix = 'agent_smtp_sb'): string => `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 16)}`;

export interface TestProject {
  /** The project URL, as SUPABASE_URL would be. */
  url: string;
  schema: string;
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  /** Superuser access to the database, for checks the API cannot make. */
  db: PostgresClient;
  server: PostgrestServer;
  /** One transaction on one connection (for a second test server over the same database). */
  transaction: RunInTransaction;
  /** Runs `work` in one transaction as the API role `role` with these JWT claims, as PostgREST would (plain SQL). */
  asRole<T>(role: 'anon' | 'authenticated' | 'service_role', claims: Record<string, unknown>, work: (tx: TransactionClient) => Promise<T>): Promise<T>;
  /** A supabase-js client with the service-role key (a worker's). */
  serviceClient(): SupabaseClient;
  /** A supabase-js client acting as the user `userId` (a uuid), as an edge function makes one from the caller's JWT. */
  userClient(userId: string): SupabaseClient;
  /** A supabase-js client with only the anon key. */
  anonClient(): SupabaseClient;
  /** A user's access token, as Supabase Auth signs it. */
  userJwt(userId: string): string;
  close(): Promise<void>;
}

/** supabase-js on Node 20 needs a WebSocket for realtime (unused here), and must not keep a session. */
export function supabaseClient(url: string, key: string, accessToken?: string): SupabaseClient {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never },
    ...(accessToken ? { global: { headers: { Authorization: `Bearer ${accessToken}` } } } : {}),
  });
}

interface Database {
  client: PostgresClient;
  transaction: RunInTransaction;
  close(schema: string): Promise<void>;
}

async function pgliteDatabase(): Promise<Database> {
  const db = await PGlite.create();
  return { client: db, transaction: (work) => db.transaction((tx) => work(tx)), close: () => db.close() };
}

function serverDatabase(): Database {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
  return {
    client: pool,
    transaction: async (work) => {
      const conn = await pool.connect();
      try {
        await conn.query('begin');
        const result = await work(conn);
        await conn.query('commit');
        return result;
      } catch (err) {
        await conn.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        conn.release();
      }
    },
    close: async (schema) => {
      await pool.query(`drop schema if exists "${schema}" cascade`);
      await pool.end();
    },
  };
}

export async function startTestProject(options: { database?: 'pglite' | 'server'; migrate?: boolean; maxRows?: number } = {}): Promise<TestProject> {
  const database = options.database === 'server' ? serverDatabase() : await pgliteDatabase();
  const schema = uniqueSchema();
  await installSupabaseAuth(database.client);
  if (options.migrate !== false) await migrate({ client: database.client, schema });
  const jwtSecret = `test-secret-${randomUUID()}`;
  const server = await startPostgrestServer({ transaction: database.transaction, jwtSecret, schemas: [schema], ...(options.maxRows ? { maxRows: options.maxRows } : {}) });
  const anonKey = signJwt({ iss: 'supabase', role: 'anon' }, jwtSecret);
  const serviceRoleKey = signJwt({ iss: 'supabase', role: 'service_role' }, jwtSecret);
  const userJwt = (userId: string): string =>
    signJwt({ iss: `${server.url}/auth/v1`, sub: userId, aud: 'authenticated', role: 'authenticated', email: `${userId}@example.test` }, jwtSecret);
  return {
    url: server.url,
    schema,
    jwtSecret,
    anonKey,
    serviceRoleKey,
    db: database.client,
    server,
    transaction: database.transaction,
    asRole: (role, claims, work) =>
      database.transaction(async (tx) => {
        await tx.query(`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, [role, JSON.stringify({ ...claims, role })]);
        return work(tx);
      }),
    serviceClient: () => supabaseClient(server.url, serviceRoleKey),
    userClient: (userId) => supabaseClient(server.url, anonKey, userJwt(userId)),
    anonClient: () => supabaseClient(server.url, anonKey),
    userJwt,
    close: async () => {
      await server.close();
      await database.close(schema);
    },
  };
}
