import type { Row } from '@agent-smtp/store-postgres';

/** The error object supabase-js (postgrest-js) returns: PostgREST's `{ code, message, details, hint }`. */
export interface RpcErrorBody {
  message: string;
  code?: string | undefined;
  details?: string | null | undefined;
  hint?: string | null | undefined;
}

/** What `rpc()` resolves to in supabase-js v2: it does not throw, it answers `{ data, error }`. */
export interface RpcResponse {
  data: unknown;
  error: RpcErrorBody | null;
  status?: number;
}

/**
 * The part of a `SupabaseClient` the store uses: `client.schema(name).rpc(fn, namedArgs)`. A supabase-js v2 client
 * has it; typing it structurally keeps supabase-js's own types out of this package's declarations.
 */
export interface SupabaseRpcClient {
  schema(schema: string): { rpc(fn: string, args?: Record<string, unknown>): PromiseLike<RpcResponse> };
}

/**
 * A call of one of the store's SQL functions failed: PostgREST's answer, with the SQLSTATE (or PGRST code) in
 * `code`, as a `pg` error carries it, so code that looks at `err.code` (e.g. 23505, 42501) reads it the same way.
 */
export class SupabaseRpcError extends Error {
  override readonly name = 'SupabaseRpcError';
  readonly code: string;
  readonly details: string | undefined;
  readonly hint: string | undefined;
  /** The HTTP status PostgREST answered with (0 when the request did not get an answer). */
  readonly status: number;
  /** The SQL function, `schema.name`. */
  readonly fn: string;

  constructor(fn: string, body: RpcErrorBody, status: number) {
    super(`${fn}: ${body.message}${body.code ? ` (${body.code})` : ''}`);
    this.fn = fn;
    this.code = body.code ?? '';
    this.details = body.details ?? undefined;
    this.hint = body.hint ?? undefined;
    this.status = status;
  }
}

/** Calls the store's SQL functions in one schema through `rpc()`, with PostgREST's named arguments. */
export class SchemaRpc {
  constructor(
    private readonly client: SupabaseRpcClient,
    readonly schema: string,
  ) {}

  async call(fn: string, args: Record<string, unknown>): Promise<unknown> {
    const { data, error, status } = await this.client.schema(this.schema).rpc(fn, args);
    if (error) throw new SupabaseRpcError(`${this.schema}.${fn}`, error, status ?? 0);
    return data;
  }

  /** A set-returning function's rows (PostgREST answers with a JSON array). */
  async rows(fn: string, args: Record<string, unknown>): Promise<Row[]> {
    const data = await this.call(fn, args);
    if (Array.isArray(data)) return data as Row[];
    return data === null || data === undefined ? [] : [data as Row];
  }
}
