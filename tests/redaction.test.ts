import { inspect } from 'node:util';
import { createMailService, createMailTools, generateKeyRingKey, type Logger, type MailService, MemoryStore, storedCredentials } from '@agent-smtp/core';
import { startMcpHttpServer } from '@agent-smtp/mcp';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';

// One service, every failure path we can drive, then one assertion over everything a caller, a model, a log or the
// store ever shows: none of it holds the SMTP password (in any form a server might echo), the key ring's key, or the
// owner's SMTP user as part of an AUTH token.

const KEY = generateKeyRingKey();
const keyRing = { current: 'k1', keys: { k1: KEY } };
const USER = 'robot@alice.example';
const PASS = 'Redact-Me-Pässwörd-42!';
const BOB_USER = 'bob-robot';
const BOB_PASS = 'Bobs-Wrong-Secret-77?';
const MCP_TOKEN_ALICE = 'mcp-token-alice-7f3a9c1e5b2d4f60';
const MCP_TOKEN_BOB = 'mcp-token-bob-0d9e8c7b6a5f4e3d';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** Every form of each secret that must never show, labelled for the failure message. */
function secretForms(): Record<string, string> {
  const forms: Record<string, string> = {
    'key (base64)': KEY,
    'key (base64url)': Buffer.from(KEY, 'base64').toString('base64url'),
    'key (hex)': Buffer.from(KEY, 'base64').toString('hex'),
    'alice MCP token': MCP_TOKEN_ALICE,
    'bob MCP token': MCP_TOKEN_BOB,
  };
  for (const [user, pass, who] of [
    [USER, PASS, 'alice'],
    [BOB_USER, BOB_PASS, 'bob'],
  ] as const) {
    Object.assign(forms, {
      [`${who} password`]: pass,
      [`${who} password (base64, AUTH LOGIN)`]: b64(pass),
      [`${who} password (base64 unpadded)`]: b64(pass).replace(/=+$/, ''),
      [`${who} password (base64url)`]: b64url(pass),
      [`${who} AUTH PLAIN token`]: b64(`\0${user}\0${pass}`),
      [`${who} password (percent-encoded)`]: encodeURIComponent(pass),
      [`${who} password (JSON-escaped)`]: JSON.stringify(pass).slice(1, -1),
      [`${who} password (UTF-8 read as latin-1)`]: Buffer.from(pass, 'utf8').toString('latin1'),
    });
  }
  return forms;
}

/** A pino-like logger that keeps every call, as JSON and as util.inspect would print it. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (obj: object, msg?: string) => {
    lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)} ${inspect(obj, { depth: 20 })}`);
  };
  return { logger: { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') }, lines };
}

/** Everything a caller can see of an error: message, inspection (stack, fields, causes) and JSON. */
function everythingOf(error: unknown): string {
  return `${String((error as Error)?.message)}\n${inspect(error, { depth: 20 })}\n${JSON.stringify(error)}\n${String(error)}`;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function sink(options: Parameters<typeof startSmtpSink>[0]): Promise<SmtpSink> {
  const s = await startSmtpSink(options);
  cleanups.push(() => s.close());
  return s;
}

describe('redaction across the service, its tools, its logs and its store', () => {
  it('no log line, error, tool result, audit entry or stored row holds a password, the key or an AUTH token', async () => {
    const { logger, lines } = capturingLogger();
    const seen: string[] = [];
    const errors: unknown[] = [];
    /** Runs `run`, keeping its error (or its result) among what was seen; returns the error. */
    const attempt = async (what: string, run: () => Promise<unknown>): Promise<unknown> => {
      try {
        seen.push(`${what}: ${JSON.stringify(await run())}`);
        return undefined;
      } catch (err) {
        errors.push(err);
        seen.push(`${what}: ${everythingOf(err)}`);
        return err;
      }
    };

    const good = await sink({ auth: { user: USER, pass: PASS } });
    // Bob's server refuses his password and echoes the whole AUTH exchange back, as the hostile server of issue 7 did.
    const echoed: string[] = [];
    const hostile = await sink({
      auth: { user: BOB_USER, pass: 'not-what-bob-has' },
      behavior: {
        auth: (user, _session, password) => {
          echoed.push(password);
          return { code: 535, message: `5.7.8 Authentication failed for ${user}:${password} (${b64(`\0${user}\0${password}`)} / ${b64(password)})` };
        },
      },
    });

    const store = new MemoryStore();
    const service: MailService = createMailService({
      store,
      logger,
      credentials: storedCredentials({ store, keyRing, hosts: { allowHosts: ['127.0.0.1'] } }),
      pool: { maxRetryWaitMs: 0, backoff: { baseMs: 20, maxMs: 40 } },
      outbox: { maxAttempts: 1 },
      policies: {
        'allow-list': { recipients: { allow: ['@example.com'] }, dailyLimit: 2 },
        approval: { approval: { always: true } },
        'no-files': { attachments: false },
      },
      defaultPolicy: { dailyLimit: 100 },
    });
    cleanups.push(() => service.close());
    const tools = new Map(createMailTools(service, { operator: true, logger }).map((t) => [t.name, t]));
    const call = async (name: string, input: unknown, context: { ownerId: string; agentId?: string }) => {
      const tool = tools.get(name)!;
      const outcome = await tool.execute(tool.inputSchema.parse(input), { ...context, toolCallId: `call-${seen.length}` });
      seen.push(`tool ${name}: ${JSON.stringify(outcome)} ${inspect(outcome, { depth: 20 })}`);
      return outcome;
    };

    // Configs: alice's is tested and saved; bob's test fails on the echoing server, then is saved untested; a config
    // aimed at a private address is refused by the host guard, with and without a password.
    await attempt('save alice', () =>
      service.saveSmtpConfig('alice', { name: 'main', host: good.host, port: good.port, security: 'none', username: USER, password: PASS, fromAddress: 'agent@alice.example' }),
    );
    const bobInput = { name: 'main', host: hostile.host, port: hostile.port, security: 'none' as const, username: BOB_USER, password: BOB_PASS, fromAddress: 'agent@bob.example' };
    expect(await attempt('save bob, tested', () => service.saveSmtpConfig('bob', bobInput))).toBeDefined();
    await attempt('save bob, untested', () => service.saveSmtpConfig('bob', bobInput, { test: false }));
    for (const host of ['10.0.0.7', '169.254.169.254', 'localhost', '[::1]']) {
      expect(await attempt(`host guard ${host}`, () => service.saveSmtpConfig('carol', { name: 'evil', host, port: 25, security: 'none', username: USER, password: PASS }))).toBeDefined();
    }

    const alice = service.forAgent({ ownerId: 'alice', agentId: 'allow-list' });
    const bob = service.forAgent({ ownerId: 'bob' });
    // A send that works, then every refusal the pipeline has.
    await attempt('alice sends', () => alice.send({ to: 'ada@example.com', subject: 'ok', text: 'x' }));
    await attempt('policy: recipient', () => alice.send({ to: 'evil@attacker.test', subject: 'no', text: 'x' }));
    await attempt('policy: from', () => alice.send({ from: 'ceo@alice.example', to: 'ada@example.com', subject: 'no', text: 'x' }));
    await attempt('policy: daily limit', () => alice.send({ to: 'ada@example.com', subject: 'second', text: 'x' }));
    await attempt('policy: over the limit', () => alice.send({ to: 'ada@example.com', subject: 'third', text: 'x' }));
    await attempt('policy: attachment', () =>
      service.forAgent({ ownerId: 'alice', agentId: 'no-files' }).send({ to: 'ada@example.com', subject: 'f', text: 'x', attachments: [{ filename: 'a.txt', content: 'x' }] }),
    );
    await attempt('validation', () => alice.send({ to: 'not an address', subject: 'v', text: 'x' }));
    await attempt('validation: empty', () => alice.send({} as never));
    // Wrong password: bob's sends fail on AUTH with the echo.
    expect(await attempt('bob sends', () => bob.send({ to: 'ada@example.com', subject: 'auth', text: 'x' }))).toBeDefined();
    await attempt('bob tests his connection', () => bob.testConnection());
    await attempt('bob status', async () => bob.status());
    // Approval: held, approved (sent), held again and rejected, decided twice, unknown id.
    const approver = service.forAgent({ ownerId: 'alice', agentId: 'approval' });
    const held = (await approver.send({ to: 'ada@example.com', subject: 'hold 1', text: 'x' })).id;
    const held2 = (await approver.send({ to: 'ada@example.com', subject: 'hold 2', text: 'x' })).id;
    await attempt('approve', () => service.approve('alice', held, { by: 'human:ann' }));
    await attempt('approve again', () => service.approve('alice', held, { by: 'human:ann' }));
    await attempt('reject', () => service.reject('alice', held2, { by: 'human:ann' }));
    await attempt('approve unknown', () => service.approve('alice', 'no-such-id', { by: 'human:ann' }));

    // The same through the tools, errors included.
    const agentCtx = { ownerId: 'alice', agentId: 'allow-list' };
    const toolOutcomes = [
      await call('send_email', { to: 'evil@attacker.test', subject: 's', body: 'b' }, agentCtx),
      await call('send_email', { to: 'ada@example.com', subject: 's', body: 'b' }, agentCtx),
      await call('send_email', { to: 'not an address', subject: 's', body: 'b' }, agentCtx),
      await call('send_email', { to: 'ada@example.com', subject: 's', body: 'b' }, { ownerId: 'bob' }),
      await call('test_smtp_connection', {}, { ownerId: 'bob' }),
      await call('get_smtp_status', {}, { ownerId: 'bob' }),
      await call('send_email', { to: 'ada@example.com', subject: 'held by tool', body: 'b' }, { ownerId: 'alice', agentId: 'approval' }),
    ];
    const pending = await call('list_pending_emails', {}, { ownerId: 'alice' });
    const pendingId = pending.ok ? (pending.value as { emails: { id: string }[] }).emails[0]?.id : undefined;
    expect(pendingId).toBeDefined();
    toolOutcomes.push(
      await call('approve_email', { id: pendingId ?? 'missing' }, { ownerId: 'alice' }),
      await call('approve_email', { id: pendingId ?? 'missing' }, { ownerId: 'alice' }),
      await call('reject_email', { id: 'no-such-id' }, { ownerId: 'alice' }),
      await call('get_email_status', { id: 'no-such-id' }, { ownerId: 'alice' }),
      await call('list_audit_entries', {}, { ownerId: 'alice' }),
      await call('list_audit_entries', {}, { ownerId: 'bob' }),
    );

    // The same over MCP (Streamable HTTP, bearer tokens), a refused token included.
    const http = await startMcpHttpServer({
      service,
      port: 0,
      logger,
      tokens: { [MCP_TOKEN_ALICE]: { ownerId: 'alice', agentId: 'allow-list' }, [MCP_TOKEN_BOB]: { ownerId: 'bob' } },
    });
    cleanups.push(() => http.close());
    const mcp = async (token: string) => {
      const client = new Client({ name: 'redaction-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
      cleanups.push(() => client.close());
      return client;
    };
    const aliceMcp = await mcp(MCP_TOKEN_ALICE);
    const bobMcp = await mcp(MCP_TOKEN_BOB);
    const mcpResults = [
      await aliceMcp.callTool({ name: 'send_email', arguments: { to: 'evil@attacker.test', subject: 's', body: 'b' } }),
      await aliceMcp.callTool({ name: 'send_email', arguments: { to: 'bad address', subject: 's', body: 'b' } }),
      await bobMcp.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 's', body: 'b' } }),
      await bobMcp.callTool({ name: 'test_smtp_connection', arguments: {} }),
      await bobMcp.listTools(),
    ];
    seen.push(`mcp: ${JSON.stringify(mcpResults)}`);
    // test_smtp_connection reports a failed login as its result, not as a tool error.
    expect(mcpResults.slice(0, 3).map((r) => (r as { isError?: boolean }).isError)).toEqual([true, true, true]);
    expect(await attempt('mcp with a wrong token', () => mcp(`${MCP_TOKEN_ALICE}x`))).toBeDefined();
    seen.push(`mcp server: ${inspect(http, { depth: 8 })}`);

    // What the store keeps, and what the service lists.
    for (const owner of ['alice', 'bob', 'carol']) {
      seen.push(`audit ${owner}: ${JSON.stringify(await service.audit.list({ ownerId: owner, limit: 1000 }))}`);
      seen.push(`events ${owner}: ${JSON.stringify(await store.events.list(owner))}`);
      seen.push(`configs ${owner}: ${JSON.stringify(await service.listSmtpConfigs(owner))} ${inspect(await service.listSmtpConfigs(owner), { depth: 20 })}`);
      seen.push(`pending ${owner}: ${JSON.stringify(await service.listPending(owner))}`);
    }
    seen.push(`store: ${inspect(store, { depth: 30, maxArrayLength: Infinity, maxStringLength: Infinity })}`);
    seen.push(`service: ${inspect(service, { depth: 8, maxArrayLength: Infinity, maxStringLength: Infinity })}`);
    seen.push(`tool descriptions: ${JSON.stringify(await Promise.all([...tools.values()].map((t) => t.describeFor?.({ ownerId: 'bob' }))))}`);

    // The failures really happened (so the check below is not vacuous): bob's server had his password to echo, the
    // pipeline refused with each kind of error, tool calls failed, and the logger was used.
    expect(echoed.length).toBeGreaterThanOrEqual(2);
    expect(echoed.every((p) => p === BOB_PASS)).toBe(true);
    const codes = errors.map((e) => (e as { code?: string }).code);
    for (const code of ['SMTP_AUTH', 'POLICY_RECIPIENT_NOT_ALLOWED', 'POLICY_FROM_NOT_ALLOWED', 'POLICY_DAILY_LIMIT', 'POLICY_ATTACHMENT_NOT_ALLOWED', 'VALIDATION_ERROR', 'APPROVAL_NOT_PENDING', 'NOT_FOUND']) {
      expect(codes, code).toContain(code);
    }
    expect(errors.length).toBeGreaterThanOrEqual(14);
    expect(toolOutcomes.filter((o) => !o.ok).length).toBeGreaterThanOrEqual(7);
    expect(good.messages.length).toBeGreaterThanOrEqual(3);
    expect(lines.length).toBeGreaterThan(0);

    const everything = [...seen, ...lines].join('\n');
    // What was looked at holds the records and the encrypted credentials, and the hostile server's reply, less its secrets.
    expect(everything).toContain('passwordCiphertext');
    expect(everything).toContain('held by tool');
    expect(everything).toContain('Authentication failed');
    const leaks = Object.entries(secretForms())
      .filter(([, form]) => everything.includes(form))
      .map(([label, form]) => {
        const at = everything.indexOf(form);
        return `${label} in …${everything.slice(Math.max(0, at - 200), at + form.length + 40)}…`;
      });
    expect(leaks).toEqual([]);
  });
});
