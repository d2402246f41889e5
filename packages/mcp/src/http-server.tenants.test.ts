import { connect as connectTcp, createServer, type Server, type Socket } from 'node:net';
import { ConfigError, createMailer, createMailService, type MailService, MemoryStore, type SmtpServerConfig } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { hashMcpToken, type McpHttpServer, type McpHttpServerOptions, startMcpHttpServer } from './index.js';

const TOKEN_A = 'token-of-alice-0123456789abcdef';
const TOKEN_B = 'token-of-bob-fedcba9876543210';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  // Clients first, then the HTTP server, the service, and last the SMTP servers they talk to.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function poll<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 8_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves once every connection the sink saw has closed: nothing more can arrive after that. */
const sinkDone = (sink: SmtpSink) => sink.waitForIdle();

async function sink(): Promise<SmtpSink> {
  const started = await startSmtpSink();
  cleanups.push(() => started.close());
  return started;
}

/** A service whose owners send through the servers given per owner. */
function serviceFor(servers: Record<string, SmtpServerConfig[]>): { service: MailService; store: MemoryStore } {
  const store = new MemoryStore();
  const service = createMailService({
    store,
    credentials: {
      resolve: async ({ ownerId }) => {
        const list = servers[ownerId];
        if (!list) throw new Error(`no servers for ${ownerId}`);
        return list;
      },
    },
  });
  cleanups.push(() => service.close());
  return { service, store };
}

async function serve(options: McpHttpServerOptions): Promise<McpHttpServer> {
  const http = await startMcpHttpServer({ port: 0, ...options });
  cleanups.push(() => http.close());
  return http;
}

async function connect(http: McpHttpServer, token: string): Promise<Client> {
  const client = new Client({ name: 'tenant-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  cleanups.push(() => client.close());
  return client;
}

const callers = { [TOKEN_A]: { ownerId: 'alice', agentId: 'assistant' }, [TOKEN_B]: { ownerId: 'bob' } };

// The same server two ways: a token table given in code, and authenticate() over a table that holds only hashes.
const authModes: [string, Pick<McpHttpServerOptions, 'tokens' | 'authenticate'>][] = [
  ['tokens', { tokens: callers }],
  [
    'authenticate over hashed tokens',
    {
      authenticate: async (req) => {
        const hashed = new Map(Object.entries(callers).map(([token, caller]) => [hashMcpToken(token), caller]));
        const presented = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
        return presented === undefined ? undefined : hashed.get(hashMcpToken(presented));
      },
    },
  ],
];

describe('startMcpHttpServer with a service: one server, many users', () => {
  it.each(authModes)('%s: each token sends through its owner’s server and sees only its owner’s mail; an unknown token gets 401', async (_, auth) => {
    const sinkA = await sink();
    const sinkB = await sink();
    const { service, store } = serviceFor({
      alice: [sinkA.serverConfig({ name: 'alice-smtp', from: 'alice@alice.example' })],
      bob: [sinkB.serverConfig({ name: 'bob-smtp', from: 'bob@bob.example' })],
    });
    const http = await serve({ service, ...auth });
    const alice = await connect(http, TOKEN_A);
    const bob = await connect(http, TOKEN_B);

    const sentByAlice = (await alice.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'From Alice', body: 'x' } })) as CallToolResult;
    const sentByBob = (await bob.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'From Bob', body: 'x' } })) as CallToolResult;
    expect(sentByAlice.isError).toBeFalsy();
    expect(sentByBob.isError).toBeFalsy();
    const aliceId = (sentByAlice.structuredContent as { id: string }).id;
    const bobId = (sentByBob.structuredContent as { id: string }).id;

    // Alice's token cannot read Bob's message: not found, and nothing of it in the answer.
    const peek = (await alice.callTool({ name: 'get_email_status', arguments: { id: bobId } })) as CallToolResult;
    expect(peek.isError).toBe(true);
    expect(JSON.stringify(peek.content)).toContain('NOT_FOUND');
    expect(JSON.stringify(peek)).not.toContain('From Bob');
    const own = (await alice.callTool({ name: 'get_email_status', arguments: { id: aliceId } })) as CallToolResult;
    expect(own.structuredContent).toMatchObject({ id: aliceId, subject: 'From Alice', status: 'sent' });

    // Records carry the caller the token maps to.
    expect(await store.outbox.get('alice', aliceId)).toMatchObject({ ownerId: 'alice', agentId: 'assistant' });
    expect(await store.outbox.get('alice', bobId)).toBeUndefined();

    const stranger = new Client({ name: 'stranger', version: '1.0.0' });
    const refused = await stranger
      .connect(new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { Authorization: 'Bearer not-a-known-token' } } }))
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(StreamableHTTPError);
    expect((refused as StreamableHTTPError).code).toBe(401);

    // Which server received which message, counted once each has seen its last connection close.
    await service.close();
    await Promise.all([sinkDone(sinkA), sinkDone(sinkB)]);
    expect(sinkA.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['From Alice', 'alice@alice.example']]);
    expect(sinkB.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['From Bob', 'bob@bob.example']]);
  });

  it('/health names no owner’s servers', async () => {
    const sinkA = await sink();
    const { service } = serviceFor({ alice: [sinkA.serverConfig({ name: 'alice-smtp', from: 'alice@alice.example' })] });
    const http = await serve({ service, tokens: callers });
    const alice = await connect(http, TOKEN_A);
    await alice.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 's', body: 'x' } });
    const health = await (await fetch(http.healthUrl)).json();
    expect(health).toMatchObject({ status: 'ok', name: 'agent-smtp' });
    expect(JSON.stringify(health)).not.toContain('alice');
  });

  it('a token mapped to another owner than the mailer’s is refused (FORBIDDEN), nothing sent', async () => {
    const target = await sink();
    const mailer = createMailer({ servers: [target.serverConfig({ name: 'sink' })], ownerId: 'alice', defaults: { from: 'agent@example.com' }, env: {} });
    cleanups.push(() => mailer.close());
    const http = await serve({ mailer, tokens: callers });
    const ok = (await (await connect(http, TOKEN_A)).callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Alice', body: 'x' } })) as CallToolResult;
    expect(ok.isError).toBeFalsy();
    const refused = (await (await connect(http, TOKEN_B)).callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Bob', body: 'x' } })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(JSON.stringify(refused.content)).toContain('FORBIDDEN');
    await mailer.close();
    await sinkDone(target);
    expect(target.messages.map((m) => m.subject)).toEqual(['Alice']);
  });

  it('refuses configurations that would serve no one or everyone', async () => {
    const { service } = serviceFor({});
    const mailer = createMailer({ servers: [{ host: '127.0.0.1', port: 2525 }], env: {} });
    cleanups.push(() => mailer.close());
    const cases: [string, McpHttpServerOptions, string][] = [
      ['a service without tokens or authenticate', { service }, 'tokens'],
      ['both mailer and service', { mailer, service, tokens: callers }, 'service'],
      ['neither mailer nor service', { token: 'x'.repeat(32) }, 'mailer'],
      ['token and tokens', { mailer, token: 'x'.repeat(32), tokens: callers }, 'tokens'],
      ['an empty token table', { service, tokens: {} }, 'tokens'],
      ['a token without an owner', { service, tokens: { ['y'.repeat(32)]: { ownerId: '' } } }, 'tokens'],
    ];
    for (const [name, options, setting] of cases) {
      const error = await startMcpHttpServer({ port: 0, ...options }).then(
        async (started) => (await started.close(), undefined),
        (err: unknown) => err,
      );
      expect(ConfigError.isInstance(error), name).toBe(true);
      expect((error as ConfigError).setting, name).toBe(setting);
    }
  });
});

/**
 * An SMTP server that says nothing until released: a send to it stays in flight, before the greeting, for as long as
 * the test wants. Once released, each connection still open is relayed to `upstream` byte for byte. Never released
 * (or without an upstream) it is a server hung before its greeting. Only the client closes a connection before the
 * test's cleanup, so `closed()` counts the connections the client gave up on.
 */
async function heldServer(upstream?: SmtpSink): Promise<{ port: number; sockets: Socket[]; closed: () => number; release: () => void }> {
  const sockets: Socket[] = [];
  let closed = 0;
  let released = false;
  const relay = (socket: Socket): void => {
    if (!upstream || socket.destroyed) return;
    const server = connectTcp(upstream.port, upstream.host);
    server.on('error', () => socket.destroy());
    socket.pipe(server).pipe(socket);
    server.once('close', () => socket.destroy());
    socket.once('close', () => server.destroy());
  };
  const listener: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => closed++);
    if (released) relay(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    sockets.forEach((s) => s.destroy());
    return new Promise<void>((resolve) => listener.close(() => resolve()));
  });
  return {
    port: (listener.address() as { port: number }).port,
    sockets,
    closed: () => closed,
    release: () => {
      released = true;
      sockets.forEach(relay);
    },
  };
}

/** A client whose tools/call request ids are recorded as it sends them, so a test can name one in a cancellation. */
async function connectRecordingCalls(http: McpHttpServer, token: string): Promise<{ client: Client; callIds: RequestId[] }> {
  const callIds: RequestId[] = [];
  const transport = new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const send = transport.send.bind(transport);
  transport.send = (message: JSONRPCMessage, options) => {
    if ('method' in message && message.method === 'tools/call' && 'id' in message) callIds.push(message.id);
    return send(message, options);
  };
  const client = new Client({ name: 'tenant-test', version: '1.0.0' });
  await client.connect(transport);
  cleanups.push(() => client.close());
  return { client, callIds };
}

/** Posts `notifications/cancelled` for `requestId` with `token`, as an MCP client does; resolves with the HTTP status once the server handled it. */
async function postCancellation(http: McpHttpServer, token: string, requestId: RequestId): Promise<number> {
  const response = await fetch(http.url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'changed my mind' } }),
  });
  await response.arrayBuffer();
  return response.status;
}

describe('a tool call cancelled by the MCP client', () => {
  it('aborts a send hung before the SMTP server answered: the call ends, the record is not sent, the connection is closed', async () => {
    const hung = await heldServer();
    const bystander = await sink();
    const { service, store } = serviceFor({
      alice: [{ host: '127.0.0.1', port: hung.port, name: 'hung', from: 'alice@alice.example', maxRetries: 0, timeouts: { greetingMs: 60_000 } }],
      bob: [bystander.serverConfig({ name: 'bob-smtp', from: 'bob@bob.example' })],
    });
    const http = await serve({ service, tokens: callers });
    const alice = await connect(http, TOKEN_A);

    const controller = new AbortController();
    const call = alice.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Hung', body: 'x', idempotency_key: 'cancel-me' } }, undefined, {
      signal: controller.signal,
      timeout: 60_000,
    });
    const outcome = call.then(
      () => 'answered',
      (err: unknown) => err,
    );
    await poll('the SMTP connection', () => (hung.sockets.length > 0 ? true : undefined));
    controller.abort('the user changed their mind');
    expect(await outcome).not.toBe('answered');

    // The server stopped the send: the record settles as not sent, retryably, well before the 60 s greeting timeout.
    const record = await poll('the record to settle', async () => {
      const found = await store.outbox.findByIdempotencyKey('alice', 'cancel-me');
      return found && found.status !== 'sending' && found.status !== 'queued' ? found : undefined;
    });
    expect(record.status).not.toBe('sent');
    expect(record.error).toMatchObject({ code: 'ABORTED', retryable: true });
    // The send let go of the server it was waiting on: its one connection was closed by the client, not left to
    // the 60 s greeting timeout.
    await poll('the client to close its SMTP connection', () => (hung.closed() === hung.sockets.length ? true : undefined));
    expect(hung.sockets).toHaveLength(1);
    expect(hung.closed()).toBe(1);
    // The cancelled request's HTTP response was ended too: nothing holds its connection or its bytes.
    await poll('no request in flight', () => (http.inFlight().requests === 0 ? true : undefined));
    expect(bystander.stats.connections).toBe(0);
  });

  it('ignores a cancellation naming another owner’s request: the same notification stops the call only with its owner’s token', async () => {
    const aliceSink = await sink();
    const held = await heldServer(aliceSink);
    const bobSink = await sink();
    const { service, store } = serviceFor({
      alice: [{ host: '127.0.0.1', port: held.port, name: 'alice-smtp', from: 'alice@alice.example', starttls: 'disabled', maxRetries: 0, timeouts: { greetingMs: 60_000 } }],
      bob: [bobSink.serverConfig({ name: 'bob-smtp', from: 'bob@bob.example' })],
    });
    const http = await serve({ service, tokens: callers });
    const { client: alice, callIds } = await connectRecordingCalls(http, TOKEN_A);

    // Alice's own cancellation of a held call stops it: this notification, sent this way, does reach a call.
    const stopped = alice.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Stopped by Alice', body: 'x', idempotency_key: 'stopped' } }, undefined, {
      timeout: 60_000,
    });
    // The server ends a cancelled request without an answer, so this call stays open until the client closes.
    stopped.catch(() => undefined);
    await poll('the first SMTP connection', () => (held.sockets.length === 1 ? true : undefined));
    expect(await postCancellation(http, TOKEN_A, callIds[0]!)).toBe(202);
    const aborted = await poll('the cancelled record to settle', async () => {
      const found = await store.outbox.findByIdempotencyKey('alice', 'stopped');
      return found && found.status !== 'sending' && found.status !== 'queued' ? found : undefined;
    });
    expect(aborted.error).toMatchObject({ code: 'ABORTED' });
    await poll('the client to close the first SMTP connection', () => (held.closed() === 1 ? true : undefined));

    // The same notification naming Alice's next call, sent with Bob's token, is ignored.
    const kept = alice.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Kept', body: 'x', idempotency_key: 'kept' } }, undefined, {
      timeout: 60_000,
    });
    // Awaited below; this only keeps a failure earlier in the test from leaving the call's rejection unhandled.
    kept.catch(() => undefined);
    await poll('the second SMTP connection', () => (held.sockets.length === 2 ? true : undefined));
    expect(callIds).toHaveLength(2);
    // The server answers a cancellation once it has acted on it (or not), so the call is still held here.
    expect(await postCancellation(http, TOKEN_B, callIds[1]!)).toBe(202);
    held.release();
    // Read from the store, which settles either way; a cancelled call would leave `kept` without an answer.
    const settled = await poll('the kept record to settle', async () => {
      const found = await store.outbox.findByIdempotencyKey('alice', 'kept');
      return found && found.status !== 'sending' && found.status !== 'queued' ? found : undefined;
    });
    expect(settled).toMatchObject({ status: 'sent' });
    const result = (await kept) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ status: 'sent' });

    // Which server received what, counted once each has seen its last connection close.
    await service.close();
    await Promise.all([sinkDone(aliceSink), sinkDone(bobSink)]);
    expect(aliceSink.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['Kept', 'alice@alice.example']]);
    expect(bobSink.stats.connections).toBe(0);
  });
});
