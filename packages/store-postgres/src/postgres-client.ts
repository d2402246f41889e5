/**
 * The one method the store needs from a database client. A `pg` Pool, a `pg` Client and a PGlite instance all
 * have it, so the store imports no driver. Each call must be able to run on any connection: the store never
 * relies on session state across calls, so a pool is fine.
 */
export interface PostgresClient {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}
