import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { JwtError, signJwt, verifyJwt } from './jwt.js';

/**
 * A test server that answers what the store uses of PostgREST, following its documented contract:
 *
 * - `POST /rest/v1/rpc/<fn>` with a JSON object of named arguments, in the schema named by `Content-Profile` (the
 *   first exposed one without it; another is 406 PGRST106). The function is found by name and the set of argument
 *   names given (arguments with defaults may be left out); none is 404 PGRST202.
 * - The `Authorization: Bearer` JWT is verified (HS256, the project's secret); a bad one is 401 PGRST301, an
 *   expired one 401 PGRST303; none means the anon role.
 * - Each request is one transaction: `set local role` to the JWT's `role` (as `set_config('role', …, true)`), the claims in `request.jwt.claims` (and
 *   `request.method`, `request.path`, `request.headers`) with `set_config(..., true)`, then the call with named
 *   notation, arguments taken from the body with `json_to_record` as PostgREST does. A STABLE or IMMUTABLE
 *   function runs READ ONLY.
 * - Besides, what the tests use of Supabase Auth: `GET /auth/v1/user` for `supabase.auth.getUser(jwt)` (from the
 *   token's claims), and creating, signing in and deleting users (`auth.admin.createUser`, `signInWithPassword`).
 * - The answer: a set-returning function's rows as an array (at most `maxRows`, as db-max-rows cuts it), a composite as an object, a scalar as its JSON value.
 *   Errors as `{ code, message, details, hint }`, with PostgREST's status for the SQLSTATE.
 */

export interface TransactionClient {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** Runs `work` in one transaction on one connection (a pg Pool's client, a PGlite transaction). */
export type RunInTransaction = <T>(work: (tx: TransactionClient) => Promise<T>) => Promise<T>;

export interface PostgrestServerOptions {
  transaction: RunInTransaction;
  jwtSecret: string;
  /** The exposed schemas (PostgREST's db-schemas); the first is the default. */
  schemas: readonly string[];
  /** PostgREST's db-max-rows (Supabase's "Max rows"): a set-returning function's answer is cut to it. */
  maxRows?: number;
}

export interface PostgrestServer {
  /** The project URL for `createClient` (the API is under `/rest/v1`). */
  url: string;
  /** Requests answered so far, by function name (for tests that check what a client called). */
  calls: Map<string, number>;
  /** Forgets the functions it looked up, as PostgREST's schema cache reload (`NOTIFY pgrst, 'reload schema'`) does. */
  reloadSchemaCache(): void;
  close(): Promise<void>;
}

const API_ROLES = new Set(['anon', 'authenticated', 'service_role']);

interface FunctionInfo {
  args: { name: string; type: string; hasDefault: boolean }[];
  returnsSet: boolean;
  returnsComposite: boolean;
  readOnly: boolean;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: { code: string; message: string; details: string | null; hint: string | null },
  ) {
    super(body.message);
  }
}

/** PostgREST's HTTP status for a SQLSTATE (its "HTTP Status Codes" table). */
export function statusForSqlState(code: string, authenticated: boolean): number {
  const exact: Record<string, number> = {
    '23503': 409, '23505': 409, '25006': 405, '53400': 500, P0001: 400, '42883': 404, '42P01': 404, '42P17': 500,
  };
  if (exact[code] !== undefined) return exact[code];
  if (code === '42501') return authenticated ? 403 : 401;
  const byClass: Record<string, number> = {
    '08': 503, '09': 500, '0L': 403, '0P': 403, '25': 500, '28': 403, '2D': 500, '38': 500, '39': 500, '3B': 500, '40': 500,
    '53': 503, '54': 500, '55': 500, '57': 500, '58': 500, F0: 500, HV: 500, P0: 500, XX: 500,
  };
  return byClass[code.slice(0, 2)] ?? 400;
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const FUNCTION_QUERY = `
select p.proretset as returns_set, t.typtype = 'c' as returns_composite, p.provolatile <> 'v' as read_only,
       p.pronargs as nargs, p.pronargdefaults as ndefaults,
       coalesce(p.proargnames, '{}') as argnames, coalesce(p.proargmodes::text[], '{}') as argmodes,
       array(select pg_catalog.format_type(a.t, null) from unnest(p.proargtypes) with ordinality a(t, n) order by a.n) as argtypes
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_type t on t.oid = p.prorettype
where n.nspname = $1 and p.proname = $2`;

function describe(row: Record<string, unknown>): FunctionInfo {
  const names = row.argnames as string[];
  const modes = row.argmodes as string[];
  const types = row.argtypes as string[];
  const nargs = Number(row.nargs);
  const ndefaults = Number(row.ndefaults);
  // proargnames lists OUT and TABLE columns too; proargtypes only the input arguments, in order.
  const inputNames = modes.length === 0 ? names.slice(0, nargs) : names.filter((_, i) => ['i', 'b', 'v'].includes(modes[i]!));
  return {
    args: inputNames.map((name, i) => ({ name, type: types[i]!, hasDefault: i >= nargs - ndefaults })),
    returnsSet: row.returns_set === true,
    returnsComposite: row.returns_composite === true,
    readOnly: row.read_only === true,
  };
}

function callStatement(schema: string, fn: string, info: FunctionInfo, given: string[], maxRows: number | undefined): string {
  const call = `${quoteIdent(schema)}.${quoteIdent(fn)}(${given.map((name) => `${quoteIdent(name)} := pgrst_args.${quoteIdent(name)}`).join(', ')})`;
  const columns = given.map((name) => `${quoteIdent(name)} ${info.args.find((a) => a.name === name)!.type}`).join(', ');
  const from = given.length > 0 ? ` from pg_catalog.json_to_record($1::json) as pgrst_args(${columns})` : '';
  if (info.returnsSet) {
    const limit = maxRows === undefined ? '' : ` limit ${Math.floor(maxRows)}`;
    return `select coalesce(pg_catalog.json_agg(pgrst_row), '[]')::text as body from (select pgrst_fn.*${from}${from ? ',' : ' from'} lateral ${call} pgrst_fn${limit}) pgrst_row`;
  }
  if (info.returnsComposite) return `select pg_catalog.row_to_json(pgrst_row)::text as body from (select pgrst_fn.*${from}${from ? ',' : ' from'} lateral ${call} pgrst_fn) pgrst_row`;
  return `select pg_catalog.to_json(${call})::text as body${from}`;
}

export async function startPostgrestServer(options: PostgrestServerOptions): Promise<PostgrestServer> {
  const calls = new Map<string, number>();
  // PostgREST's schema cache: a function's arguments and return type, looked up once per schema and name.
  const schemaCache = new Map<string, FunctionInfo[]>();

  const authenticate = (req: IncomingMessage): { role: string; claims: Record<string, unknown> } => {
    const header = req.headers.authorization;
    if (!header) return { role: 'anon', claims: { role: 'anon' } };
    const match = /^Bearer (.+)$/i.exec(header);
    if (!match) throw new ApiError(401, { code: 'PGRST301', message: 'Expected a Bearer token', details: null, hint: null });
    let claims: Record<string, unknown>;
    try {
      claims = verifyJwt(match[1]!, options.jwtSecret);
    } catch (err) {
      if (err instanceof JwtError) throw new ApiError(401, { code: err.code, message: err.message, details: null, hint: null });
      throw err;
    }
    const role = typeof claims.role === 'string' ? claims.role : 'anon';
    if (!API_ROLES.has(role)) throw new ApiError(401, { code: 'PGRST301', message: `role "${role}" does not exist`, details: null, hint: null });
    return { role, claims };
  };

  /**
   * Supabase Auth's `GET /auth/v1/user` (what `supabase.auth.getUser(jwt)` calls): the user the access token names,
   * or 403 `bad_jwt` in Auth's error shape. Users exist as far as their tokens say: there is no user table here.
   */
  const authUser = (req: IncomingMessage): { status: number; body: string } => {
    const badJwt = (msg: string) => ({ status: 403, body: JSON.stringify({ code: 403, error_code: 'bad_jwt', msg }) });
    let claims: Record<string, unknown>;
    try {
      claims = authenticate(req).claims;
    } catch (err) {
      return badJwt(err instanceof ApiError ? `invalid JWT: ${err.message}` : String(err));
    }
    if (claims.role !== 'authenticated' || typeof claims.sub !== 'string') return badJwt('invalid claim: missing sub claim');
    const user = { id: claims.sub, aud: claims.aud ?? 'authenticated', role: claims.role, email: claims.email ?? '', app_metadata: {}, user_metadata: {}, created_at: new Date(0).toISOString() };
    return { status: 200, body: JSON.stringify(user) };
  };

  /**
   * What the real-project suite uses of Supabase Auth's admin and password grant: `POST /auth/v1/admin/users` (the
   * service role only), `POST /auth/v1/token?grant_type=password` (an access token signed with the project's
   * secret, as Auth signs them) and `DELETE /auth/v1/admin/users/<id>`. Users live in this server's memory.
   */
  const users = new Map<string, { id: string; email: string; password: string }>();
  const authError = (status: number, error_code: string, msg: string) => ({ status, body: JSON.stringify({ code: status, error_code, msg }) });
  const publicUser = (user: { id: string; email: string }) => ({
    id: user.id, aud: 'authenticated', role: 'authenticated', email: user.email, app_metadata: { provider: 'email' }, user_metadata: {}, created_at: new Date(0).toISOString(),
  });
  const authAdmin = async (req: IncomingMessage, url: URL): Promise<{ status: number; body: string } | undefined> => {
    const asService = (): boolean => {
      try {
        return authenticate(req).role === 'service_role';
      } catch {
        return false;
      }
    };
    if (url.pathname === '/auth/v1/admin/users' && req.method === 'POST') {
      if (!asService()) return authError(403, 'not_admin', 'User not allowed');
      const { email, password } = JSON.parse(await readBody(req)) as { email: string; password: string };
      if ([...users.values()].some((u) => u.email === email)) return authError(422, 'email_exists', 'A user with this email address has already been registered');
      const user = { id: randomUUID(), email, password };
      users.set(user.id, user);
      return { status: 200, body: JSON.stringify(publicUser(user)) };
    }
    const deleting = /^\/auth\/v1\/admin\/users\/([^/]+)$/.exec(url.pathname);
    if (deleting && req.method === 'DELETE') {
      if (!asService()) return authError(403, 'not_admin', 'User not allowed');
      const user = users.get(decodeURIComponent(deleting[1]!));
      if (!user) return authError(404, 'user_not_found', 'User not found');
      users.delete(user.id);
      return { status: 200, body: JSON.stringify(publicUser(user)) };
    }
    if (url.pathname === '/auth/v1/token' && url.searchParams.get('grant_type') === 'password' && req.method === 'POST') {
      const { email, password } = JSON.parse(await readBody(req)) as { email: string; password: string };
      const user = [...users.values()].find((u) => u.email === email && u.password === password);
      if (!user) return authError(400, 'invalid_credentials', 'Invalid login credentials');
      const now = Math.floor(Date.now() / 1000);
      const accessToken = signJwt({ iss: 'supabase-test/auth/v1', sub: user.id, aud: 'authenticated', role: 'authenticated', email: user.email, exp: now + 3600 }, options.jwtSecret);
      const session = { access_token: accessToken, token_type: 'bearer', expires_in: 3600, expires_at: now + 3600, refresh_token: randomUUID(), user: publicUser(user) };
      return { status: 200, body: JSON.stringify(session) };
    }
    return undefined;
  };

  const handle = async (req: IncomingMessage): Promise<{ status: number; body: string }> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/auth/v1/user' && req.method === 'GET') return authUser(req);
    if (url.pathname.startsWith('/auth/v1/')) {
      const answer = await authAdmin(req, url);
      if (answer) return answer;
    }
    const match = /^\/rest\/v1\/rpc\/([^/]+)$/.exec(url.pathname);
    if (!match) throw new ApiError(404, { code: 'PGRST125', message: `Invalid path specified in request URL`, details: null, hint: null });
    if (req.method !== 'POST') throw new ApiError(405, { code: 'PGRST117', message: `Unsupported HTTP method: ${req.method}`, details: null, hint: null });
    const fn = decodeURIComponent(match[1]!);
    const profile = req.headers['content-profile'];
    const schema = typeof profile === 'string' ? profile : options.schemas[0]!;
    if (!options.schemas.includes(schema)) {
      throw new ApiError(406, { code: 'PGRST106', message: 'Invalid schema: ' + schema, details: null, hint: `Only the following schemas are exposed: ${options.schemas.join(', ')}` });
    }
    const { role, claims } = authenticate(req);
    const text = await readBody(req);
    let args: Record<string, unknown>;
    try {
      args = text.trim() === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch (err) {
      throw new ApiError(400, { code: 'PGRST102', message: 'Empty or invalid json', details: null, hint: null });
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      throw new ApiError(400, { code: 'PGRST102', message: 'Expected a JSON object of named arguments', details: null, hint: null });
    }
    calls.set(fn, (calls.get(fn) ?? 0) + 1);
    const given = Object.keys(args).sort();

    return options.transaction(async (tx) => {
      // Found as the connecting role (PostgREST's schema cache), then run as the request's role.
      const key = `${schema}.${fn}`;
      let candidates = schemaCache.get(key);
      if (!candidates) {
        candidates = (await tx.query(FUNCTION_QUERY, [schema, fn])).rows.map((row) => describe(row as Record<string, unknown>));
        if (candidates.length > 0) schemaCache.set(key, candidates);
      }
      const info = candidates.find(
        (c) => given.every((name) => c.args.some((a) => a.name === name)) && c.args.every((a) => a.hasDefault || given.includes(a.name)),
      );
      if (!info) {
        throw new ApiError(404, {
          code: 'PGRST202',
          message: `Could not find the function ${schema}.${fn}(${given.join(', ')}) in the schema cache`,
          details: `Searched for the function ${schema}.${fn} with parameters ${given.join(', ')} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.`,
          hint: null,
        });
      }
      if (info.readOnly) await tx.query('set transaction read only');
      // set_config('role', …, true) is `set local role` (PostgREST sets it so, with the claims, in one statement).
      await tx.query(
        `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), set_config('request.method', $3, true), set_config('request.path', $4, true), set_config('request.headers', $5, true)`,
        [role, JSON.stringify(claims), 'POST', url.pathname, JSON.stringify(req.headers)],
      );
      const params = given.length > 0 ? [JSON.stringify(args)] : [];
      const { rows } = await tx.query(callStatement(schema, fn, info, given, options.maxRows), params);
      return { status: 200, body: (rows[0] as { body: string | null } | undefined)?.body ?? 'null' };
    }).catch((err: unknown) => {
      if (err instanceof ApiError) throw err;
      const e = err as { code?: unknown; message?: string; detail?: string; hint?: string };
      if (typeof e.code !== 'string' || !/^[0-9A-Z]{5}$/.test(e.code)) throw err;
      throw new ApiError(statusForSqlState(e.code, role !== 'anon'), { code: e.code, message: e.message ?? '', details: e.detail ?? null, hint: e.hint ?? null });
    });
  };

  const respond = (res: ServerResponse, status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(body);
  };

  const server = createServer((req, res) => {
    handle(req).then(
      ({ status, body }) => respond(res, status, body),
      (err: unknown) => {
        if (err instanceof ApiError) respond(res, err.status, JSON.stringify(err.body));
        else respond(res, 500, JSON.stringify({ code: 'PGRST000', message: String((err as Error)?.message ?? err), details: null, hint: null }));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    reloadSchemaCache: () => schemaCache.clear(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
