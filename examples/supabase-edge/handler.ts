/**
 * An edge-function-style handler, `(Request) => Promise<Response>`, for an app whose users sign in with Supabase:
 * each request acts as the signed-in user (a supabase-js client made from the caller's JWT, so row-level security
 * applies to every row the SDK reads or writes), with the SMTP passwords kept in Supabase Vault (no key to hold here).
 *
 *   POST /settings  { host, port, security, username, password, fromAddress, agentId, allow, dailyLimit }
 *                   saves the user's SMTP account (tested first) and what their agent may do
 *   POST /send      { agentId, to, subject, text }   queues a message as that agent, under its policy
 *   GET  /status?id=<message id>                     the message's status (the user's own messages only)
 *
 * In a Supabase Edge Function (Deno): `Deno.serve(createHandler({ SUPABASE_URL: Deno.env.get('SUPABASE_URL')!,
 * SUPABASE_ANON_KEY: Deno.env.get('SUPABASE_ANON_KEY')! }))`. In Node 20, pass `clientOptions: { realtime:
 * { transport: WebSocket } }` (from `ws`). The worker that sends is `worker.ts`, with the service role.
 */
import { AgentSmtpError, createMailService, type HostPolicy, storedCredentials } from '@agent-smtp/core';
import { createSupabaseStore, supabaseVault } from '@agent-smtp/store-supabase';
import { createClient, type SupabaseClientOptions } from '@supabase/supabase-js';

export interface EdgeEnv {
  SUPABASE_URL: string;
  SUPABASE_ANON_KEY: string;
}

export interface HandlerOptions {
  /** Which SMTP hosts users may save (default: public addresses only). */
  hosts?: HostPolicy;
  /** The schema the migration made. Default `agent_smtp`. */
  schema?: string;
  /** Merged into createClient's options (Node 20 needs a WebSocket transport for realtime). */
  clientOptions?: SupabaseClientOptions<string>;
}

// What the app's front end posts. The SDK validates every field (a clear error naming it), so no schema is repeated here.
interface SettingsBody {
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'none';
  username: string;
  password: string;
  fromAddress: string;
  agentId: string;
  allow: string[];
  dailyLimit: number;
}

interface SendBody {
  agentId: string;
  to: string;
  subject: string;
  text: string;
}

export function createHandler(env: EdgeEnv, options: HandlerOptions = {}): (req: Request) => Promise<Response> {
  return async (req) => {
    const authorization = req.headers.get('Authorization');
    if (!authorization?.startsWith('Bearer ')) return Response.json({ error: 'Sign in first.' }, { status: 401 });
    const supabase = createClient(env.SUPABASE_URL, env.SUPABASE_ANON_KEY, {
      ...options.clientOptions,
      global: { headers: { Authorization: authorization } },
      auth: { persistSession: false, autoRefreshToken: false },
    });
    const { data, error } = await supabase.auth.getUser(authorization.slice('Bearer '.length));
    if (error || !data.user) return Response.json({ error: 'Sign in first.' }, { status: 401 });
    const userId = data.user.id;

    // Every read and write goes through the user's own client: the database, not this code, keeps users apart.
    const store = createSupabaseStore({ client: supabase, schema: options.schema });
    const service = createMailService({ store, credentials: storedCredentials({ store, keyRing: supabaseVault({ client: supabase, schema: options.schema }), hosts: options.hosts }) });
    try {
      const path = new URL(req.url).pathname;
      if (req.method === 'POST' && path.endsWith('/settings')) {
        const body = (await req.json()) as SettingsBody;
        // The user's one account, edited in place when it exists. Tested (connect and log in) before anything is
        // stored; the password goes to Vault, the row keeps the secret's id.
        const existing = (await service.listSmtpConfigs(userId)).find((c) => c.name === 'main');
        const config = await service.saveSmtpConfig(userId, {
          ...(existing ? { id: existing.id } : {}),
          name: 'main',
          host: body.host,
          port: body.port,
          security: body.security,
          username: body.username,
          password: body.password,
          fromAddress: body.fromAddress,
        });
        await service.policies.save(userId, body.agentId, { recipients: { allow: body.allow }, dailyLimit: body.dailyLimit });
        return Response.json({ config });
      }
      if (req.method === 'POST' && path.endsWith('/send')) {
        const body = (await req.json()) as SendBody;
        // Checked against the agent's policy, then written to the user's outbox; the worker sends it.
        const queued = await service.forAgent({ ownerId: userId, agentId: body.agentId }).enqueue({ to: body.to, subject: body.subject, text: body.text });
        return Response.json({ id: queued.id, status: queued.status }, { status: 202 });
      }
      if (req.method === 'GET' && path.endsWith('/status')) {
        const status = await service.forAgent({ ownerId: userId }).getStatus(new URL(req.url).searchParams.get('id') ?? '');
        return status ? Response.json(status) : Response.json({ error: 'No such message.' }, { status: 404 });
      }
      return Response.json({ error: 'Not found.' }, { status: 404 });
    } catch (err) {
      // The SDK's errors say what to fix and carry no secret; anything else stays in the log.
      if (AgentSmtpError.isInstance(err)) {
        return Response.json({ error: err.message, code: err.code }, { status: err.code.startsWith('POLICY_') ? 403 : 400 });
      }
      if (err instanceof SyntaxError) return Response.json({ error: 'The request body must be JSON.' }, { status: 400 });
      console.error(err);
      return Response.json({ error: 'Something went wrong.' }, { status: 500 });
    } finally {
      await service.close();
    }
  };
}
