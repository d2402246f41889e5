import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createMailService, generateKeyRingKey, storedCredentials, type KeyRingOptions, type MailStore, type SecretKeeper } from '@agent-smtp/core';
import type { SupabaseClient } from '@supabase/supabase-js';
import { startSmtpSink, type SmtpSink } from '@agent-smtp/testing';
import { newOutboxRecord } from '@agent-smtp/testing/store-contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseStore } from './supabase-store.js';
import { supabaseVault } from './supabase-vault.js';
import { signJwt } from './test-support/jwt.js';
import { startPostgrestServer } from './test-support/postgrest-server.js';
import { DATABASE_URL, startTestProject, supabaseClient, type TestProject } from './test-support/test-project.js';

// Row-level security through supabase-js: two users' JWTs, the anon key and the service role, against the
// PostgREST-contract server (over DATABASE_URL when set, else PGlite); and the same policies in plain SQL.

const lease = { workerId: 'w-user', leaseMs: 60_000 };
const rlsDenied = { code: '42501', status: 403 };

// One project for the file: starting PGlite costs seconds of CPU (a worker process under tsx too).
let project: TestProject;
beforeAll(async () => {
  project = await startTestProject({ database: DATABASE_URL ? 'server' : 'pglite' });
}, 60_000);
afterAll(async () => {
  await project?.close();
});

describe(`row-level security (${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`, () => {
  let userA: string;
  let userB: string;
  let asA: MailStore;
  let asB: MailStore;
  let anon: MailStore;
  let service: MailStore;

  beforeAll(() => {
    userA = randomUUID();
    userB = randomUUID();
    asA = createSupabaseStore({ client: project.userClient(userA), schema: project.schema });
    asB = createSupabaseStore({ client: project.userClient(userB), schema: project.schema });
    anon = createSupabaseStore({ client: project.anonClient(), schema: project.schema });
    service = createSupabaseStore({ client: project.serviceClient(), schema: project.schema });
  });

  it("user B cannot read, cancel, claim, count or write user A's outbox rows; A and the service role can", async () => {
    const { record } = await asA.outbox.enqueue(newOutboxRecord(userA, { idempotencyKey: 'k-a' }));
    expect(await asB.outbox.get(userA, record.id)).toBeUndefined();
    expect(await asB.outbox.findByIdempotencyKey(userA, 'k-a')).toBeUndefined();
    expect(await asB.outbox.findByMessageId(userA, record.messageId)).toEqual([]);
    expect(await asB.outbox.cancel(userA, record.id)).toBeUndefined();
    expect(await asB.outbox.claim({ ...lease, limit: 100 })).toEqual([]);
    expect(await asB.outbox.claim({ ...lease, limit: 100, ownerId: userA, ids: [record.id] })).toEqual([]);
    expect(await asB.events.list(userA, { messageId: record.id })).toEqual([]);
    expect((await asB.stats.summary(userA)).sent).toBe(0);
    // Writing as another owner is refused by the policy's WITH CHECK, not silently re-owned.
    await expect(asB.outbox.enqueue(newOutboxRecord(userA))).rejects.toMatchObject(rlsDenied);
    await expect(asB.events.append({ ownerId: userA, messageId: record.id, type: 'opened', attempt: 0, detail: {} })).rejects.toMatchObject(rlsDenied);

    expect((await asA.outbox.get(userA, record.id))?.status).toBe('queued');
    expect((await service.outbox.get(userA, record.id))?.status).toBe('queued');
    expect((await asA.outbox.cancel(userA, record.id))?.cancelled).toBe(true);
  });

  it("a user's own claim takes only their own rows; the service role's takes every user's", async () => {
    const a = (await asA.outbox.enqueue(newOutboxRecord(userA))).record;
    const b = (await asB.outbox.enqueue(newOutboxRecord(userB))).record;
    expect((await asB.outbox.claim({ ...lease, limit: 100, ids: [a.id, b.id] })).map((r) => r.id)).toEqual([b.id]);
    expect((await service.outbox.claim({ workerId: 'w-service', leaseMs: 60_000, limit: 100, ids: [a.id, b.id] })).map((r) => r.id)).toEqual([a.id]);
  });

  it('service-role workers claiming at once through the API never take one message twice (SKIP LOCKED)', async () => {
    const ids = (await asA.outbox.enqueueMany(Array.from({ length: 40 }, () => newOutboxRecord(userA)))).map((r) => r.record.id);
    const workers = Array.from({ length: 4 }, (_, i) => ({ id: `w${i}`, store: createSupabaseStore({ client: project.serviceClient(), schema: project.schema }) }));
    const taken = await Promise.all(
      workers.map(async ({ id, store }) => {
        const mine: string[] = [];
        for (;;) {
          const claimed = await store.outbox.claim({ workerId: id, leaseMs: 60_000, limit: 5, ids });
          if (claimed.length === 0) return mine;
          mine.push(...claimed.map((r) => r.id));
        }
      }),
    );
    const all = taken.flat();
    expect(all.length).toBe(ids.length);
    expect(new Set(all)).toEqual(new Set(ids));
  });

  it("audit entries, counters and suppressions stay with their owner", async () => {
    await asA.audit.append({ ownerId: userA, agentId: 'agent-1', action: 'send', outcome: 'ok', detail: {} });
    expect(await asB.audit.list(userA)).toEqual([]);
    await expect(asB.audit.append({ ownerId: userA, agentId: 'agent-1', action: 'send', outcome: 'ok', detail: {} })).rejects.toMatchObject(rlsDenied);
    expect((await asA.audit.list(userA)).length).toBe(1);

    expect(await asA.counters.increment(userA, 'daily:agent-1', '2026-11-29', 3, 10)).toEqual({ allowed: true, value: 3 });
    expect(await asB.counters.get(userA, 'daily:agent-1', '2026-11-29')).toBe(0);
    await expect(asB.counters.increment(userA, 'daily:agent-1', '2026-11-29', 1, 10)).rejects.toMatchObject(rlsDenied);
    expect(await asA.counters.get(userA, 'daily:agent-1', '2026-11-29')).toBe(3);

    await asA.suppressions.add({ ownerId: userA, address: 'gone@example.com', reason: 'manual' });
    expect(await asB.suppressions.find(userA, ['gone@example.com'])).toEqual([]);
    expect(await asB.suppressions.remove(userA, 'gone@example.com')).toBe(false);
    expect((await asA.suppressions.find(userA, ['gone@example.com'])).length).toBe(1);
  });

  it("agent policies are the owner's rows: B can neither read, change nor delete A's", async () => {
    const policy = { allowedRecipients: ['*@example.com'], dailyLimit: 50 };
    await asA.policies!.save({ ownerId: userA, agentId: 'support-bot', policy });
    expect(await asB.policies!.get(userA, 'support-bot')).toBeUndefined();
    expect(await asB.policies!.list(userA)).toEqual([]);
    await expect(asB.policies!.save({ ownerId: userA, agentId: 'support-bot', policy: { dailyLimit: 10_000 } })).rejects.toMatchObject(rlsDenied);
    expect(await asB.policies!.delete(userA, 'support-bot')).toBe(false);
    expect((await asA.policies!.get(userA, 'support-bot'))?.policy).toEqual(policy);
  });

  it("a user edits their agent's policy row directly (SQL under RLS), and the SDK enforces what the row says, refusing a malformed one", async () => {
    const userC = randomUUID();
    const t = `"${project.schema}"`;
    // owner_id is left to its default, auth.uid(): the row is the caller's.
    await project.asRole('authenticated', { sub: userC }, (tx) =>
      tx.query(`insert into ${t}.policies (agent_id, policy) values ('sql-bot', $1::jsonb)`, [JSON.stringify({ recipients: { allow: ['@example.com'] } })]),
    );
    const store = createSupabaseStore({ client: project.userClient(userC), schema: project.schema });
    const server = { name: 'main', host: '127.0.0.1', port: 2525, from: 'c@c.example' };
    const mailerFor = () => createMailService({ store, credentials: { resolve: async () => [server], resolveWithoutSecrets: async () => [server] } });
    const first = mailerFor();
    try {
      const bot = first.forAgent({ ownerId: userC, agentId: 'sql-bot' });
      expect((await bot.enqueue({ to: 'ada@example.com', subject: 'ok', text: 'x' })).status).toBe('queued');
      await expect(bot.enqueue({ to: 'eve@elsewhere.test', subject: 'no', text: 'x' })).rejects.toMatchObject({ code: 'POLICY_RECIPIENT_NOT_ALLOWED' });
    } finally {
      await first.close();
    }
    // A row the SDK cannot read as a policy stops the agent (fails closed), saying which field is wrong.
    await project.asRole('authenticated', { sub: userC }, (tx) => tx.query(`update ${t}.policies set policy = '{"dailyLimit": "lots"}' where agent_id = 'sql-bot'`));
    const second = mailerFor();
    try {
      await expect(second.forAgent({ ownerId: userC, agentId: 'sql-bot' }).enqueue({ to: 'ada@example.com', subject: 'x', text: 'x' })).rejects.toThrow(/dailyLimit/);
    } finally {
      await second.close();
    }
    // And B's SQL cannot reach C's row at all.
    const touched = await project.asRole('authenticated', { sub: userB }, async (tx) =>
      (await tx.query(`with u as (update ${t}.policies set policy = '{}' where agent_id = 'sql-bot' returning 1) select count(*)::int as n from u`)).rows[0],
    );
    expect(touched).toEqual({ n: 0 });
  });

  it('a stored SMTP password never reaches a user client in clear, and only its owner sees the config', async () => {
    const password = `pw-${randomUUID()}`;
    const keyRing = { current: 'k1', keys: { k1: generateKeyRingKey() } };
    const credentials = storedCredentials({ store: asA, keyRing, hosts: { allowHosts: ['127.0.0.1'] } });
    const saved = await credentials.saveSmtpConfig(userA, { name: 'main', host: '127.0.0.1', port: 2525, security: 'none', username: 'a', password }, { test: false });
    const rows = await asA.credentials!.list(userA);
    expect(rows.map((r) => r.id)).toEqual([saved.id]);
    expect(JSON.stringify(rows)).not.toContain(password);
    expect(rows[0]!.passwordCiphertext).toBeTruthy();
    // Straight from the API as well, not only through the store's mapping.
    const { data, error } = await project.userClient(userA).schema(project.schema).rpc('smtp_config_list', { p_owner_id: userA });
    expect(error).toBeNull();
    expect(JSON.stringify(data)).not.toContain(password);
    expect(await asB.credentials!.list(userA)).toEqual([]);
    expect(await asB.credentials!.get(userA, saved.id)).toBeUndefined();
    expect(await asB.credentials!.delete(userA, saved.id)).toBe(false);
    expect(await asB.credentials!.listForRotation({ keyId: 'other', limit: 100 })).toEqual([]);
  });

  it('anon can do nothing: every call is refused with 401', async () => {
    const anonDenied = { code: '42501', status: 401 };
    await expect(anon.outbox.enqueue(newOutboxRecord(userA))).rejects.toMatchObject(anonDenied);
    await expect(anon.outbox.claim({ ...lease, limit: 10 })).rejects.toMatchObject(anonDenied);
    await expect(anon.outbox.get(userA, 'x')).rejects.toMatchObject(anonDenied);
    await expect(anon.events.list(userA)).rejects.toMatchObject(anonDenied);
    await expect(anon.audit.list(userA)).rejects.toMatchObject(anonDenied);
    await expect(anon.policies!.list(userA)).rejects.toMatchObject(anonDenied);
    await expect(anon.credentials!.list(userA)).rejects.toMatchObject(anonDenied);
    await expect(anon.counters.get(userA, 'k', 'w')).rejects.toMatchObject(anonDenied);
  });

  it("in plain SQL as PostgREST runs it: user B's select, update and delete touch none of A's rows; anon cannot read the tables", async () => {
    const { record } = await asA.outbox.enqueue(newOutboxRecord(userA));
    await asB.policies!.save({ ownerId: userB, agentId: 'b-bot', policy: {} });
    const t = `"${project.schema}"`;
    const counts = await project.asRole('authenticated', { sub: userB }, async (tx) => ({
      outbox: (await tx.query(`select count(*)::int as n from ${t}.outbox where owner_id = $1`, [userA])).rows[0],
      events: (await tx.query(`select count(*)::int as n from ${t}.events where owner_id = $1`, [userA])).rows[0],
      updated: (await tx.query(`with u as (update ${t}.outbox set status = 'cancelled' where id = $1 returning 1) select count(*)::int as n from u`, [record.id])).rows[0],
      deleted: (await tx.query(`with d as (delete from ${t}.outbox where id = $1 returning 1) select count(*)::int as n from d`, [record.id])).rows[0],
    }));
    expect(counts).toEqual({ outbox: { n: 0 }, events: { n: 0 }, updated: { n: 0 }, deleted: { n: 0 } });
    // Nor can B hand a row of their own to A: the policy's WITH CHECK refuses the new owner.
    await expect(
      project.asRole('authenticated', { sub: userB }, (tx) => tx.query(`update ${t}.policies set owner_id = $1 where owner_id = $2`, [userA, userB])),
    ).rejects.toMatchObject({ code: '42501' });
    const own = await project.asRole('authenticated', { sub: userA }, async (tx) => (await tx.query(`select status from ${t}.outbox where id = $1`, [record.id])).rows);
    expect(own).toEqual([{ status: 'queued' }]);
    await expect(project.asRole('anon', {}, (tx) => tx.query(`select count(*) from ${t}.outbox`))).rejects.toMatchObject({ code: '42501' });
  });
});

// The test server's own contract (PostgREST's documented answers).
describe('the PostgREST-contract test server', () => {
  const post = async (fn: string, body: unknown, headers: Record<string, string>) => {
    const res = await fetch(`${project.url}/rest/v1/rpc/${fn}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-profile': project.schema, ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  it('answers a scalar as its JSON value, a set as an array of rows, and leaves out arguments that have defaults', async () => {
    const service = { authorization: `Bearer ${project.serviceRoleKey}` };
    expect(await post('counter_get', { p_owner_id: 'o', p_key: 'k', p_window: 'w' }, service)).toEqual({ status: 200, body: 0 });
    expect(await post('outbox_find_by_message_id', { p_owner_id: 'o', p_message_id: '<none@x>' }, service)).toEqual({ status: 200, body: [] });
  });

  it("refuses what PostgREST refuses, in its { code, message, details, hint } shape and status", async () => {
    const service = { authorization: `Bearer ${project.serviceRoleKey}` };
    const shape = { code: expect.any(String), message: expect.any(String), details: expect.toBeOneOf([expect.any(String), null]), hint: expect.toBeOneOf([expect.any(String), null]) };
    const unknownFn = await post('no_such_function', {}, service);
    expect(unknownFn).toMatchObject({ status: 404, body: { ...shape, code: 'PGRST202' } });
    const unknownArg = await post('counter_get', { p_owner_id: 'o', p_key: 'k', p_window: 'w', p_extra: 1 }, service);
    expect(unknownArg).toMatchObject({ status: 404, body: { code: 'PGRST202' } });
    const badSignature = await post('counter_get', { p_owner_id: 'o', p_key: 'k', p_window: 'w' }, { authorization: `Bearer ${project.serviceRoleKey.slice(0, -2)}xx` });
    expect(badSignature).toMatchObject({ status: 401, body: { ...shape, code: 'PGRST301' } });
    const expired = signJwt({ role: 'service_role', exp: Math.floor(Date.now() / 1000) - 10 }, project.jwtSecret);
    expect(await post('counter_get', { p_owner_id: 'o', p_key: 'k', p_window: 'w' }, { authorization: `Bearer ${expired}` })).toMatchObject({
      status: 401,
      body: { code: 'PGRST303' },
    });
    const otherSchema = await post('counter_get', {}, { ...service, 'content-profile': 'public' });
    expect(otherSchema).toMatchObject({ status: 406, body: { code: 'PGRST106' } });
    // A function's own raise (settle's argument check, SQLSTATE 22023): 400, the message as PostgreSQL wrote it.
    const raised = await post('settle', { p_id: 'x', p_attempt: 1, p_status: 'bogus' }, service);
    expect(raised).toMatchObject({ status: 400, body: { ...shape, code: '22023', message: 'settle: status must be sent, retry, failed or unknown, not bogus' } });
  });

  it('reaches supabase-js as its PostgrestError: a unique violation is 409 with code 23505', async () => {
    const client = project.serviceClient().schema(project.schema);
    const args = (id: string) => ({
      p_owner_id: 'o', p_id: id, p_name: 'same', p_host: 'smtp.example.com', p_port: 587, p_security: 'starttls', p_username: null,
      p_password_ciphertext: null, p_key_id: null, p_keep_password: false, p_from_address: null, p_from_name: null, p_is_default: false,
      p_active: true, p_dkim_domain: null, p_dkim_selector: null, p_dkim_key_ciphertext: null, p_dkim_key_id: null, p_keep_dkim_key: false,
    });
    expect((await client.rpc('smtp_config_save', args('c1'))).error).toBeNull();
    const { error, status } = await client.rpc('smtp_config_save', args('c2'));
    expect(status).toBe(409);
    expect(error).toMatchObject({ code: '23505', message: expect.stringContaining('smtp_configs_owner_name') });
  });
});

describe("the API's Max rows (PostgREST db-max-rows)", () => {
  it('enqueueMany answers for every record of a batch whose results the API cut: read back, created or replayed', async () => {
    const server = await startPostgrestServer({ transaction: project.transaction, jwtSecret: project.jwtSecret, schemas: [project.schema], maxRows: 3 });
    try {
      const store = createSupabaseStore({ client: supabaseClient(server.url, project.serviceRoleKey), schema: project.schema });
      const owner = `owner-${randomUUID()}`;
      expect((await store.outbox.enqueueMany(Array.from({ length: 3 }, () => newOutboxRecord(owner)))).length).toBe(3);
      const first = newOutboxRecord(owner, { idempotencyKey: 'cut-1' });
      await store.outbox.enqueue(first);
      // Five records, the API answers three: the fourth is a replay of an earlier key, the fifth new.
      const batch = [...Array.from({ length: 3 }, () => newOutboxRecord(owner)), newOutboxRecord(owner, { idempotencyKey: 'cut-1' }), newOutboxRecord(owner)];
      const results = await store.outbox.enqueueMany(batch);
      expect(results.map((r) => [r.created, r.record.id])).toEqual([...batch.slice(0, 3).map((r) => [true, r.id]), [false, first.id], [true, batch[4]!.id]]);
    } finally {
      await server.close();
    }
  });
});

// Users enqueue with clients made from their own JWTs (as an edge function does); a worker in another process, made
// with the service-role key, drains every user's outbox, each message through its user's own SMTP server.
const workerScript = fileURLToPath(new URL('./test-support/service-role-worker.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const workerKeyRing = { current: 'k1', keys: { k1: generateKeyRingKey() } };

describe.each([
  { mode: 'passwords under the key ring', keyRing: (_client: SupabaseClient) => workerKeyRing as KeyRingOptions | SecretKeeper, workerKeyRing: JSON.stringify(workerKeyRing) },
  { mode: 'passwords in Supabase Vault', keyRing: (client: SupabaseClient) => supabaseVault({ client, schema: project.schema }), workerKeyRing: 'vault' },
])(`a user's client and a service-role worker in another process, $mode (${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`, ({ keyRing, workerKeyRing: workerKeys }) => {
  const sinks: SmtpSink[] = [];
  let child: ChildProcess | undefined;

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await Promise.all(sinks.map((s) => s.close()));
  });

  /** What a user does from an edge function: save their SMTP account and an agent policy, then queue a message. */
  async function userQueues(name: string) {
    const userId = randomUUID();
    const password = `${name}-Pass-${randomUUID()}`;
    const sink = await startSmtpSink({ auth: { user: name, pass: password } });
    sinks.push(sink);
    const client = project.userClient(userId);
    const store = createSupabaseStore({ client, schema: project.schema });
    const service = createMailService({ store, credentials: storedCredentials({ store, keyRing: keyRing(client), hosts: { allowHosts: ['127.0.0.1'] } }) });
    await service.saveSmtpConfig(userId, { name: 'main', host: sink.host, port: sink.port, security: 'none', username: name, password, fromAddress: `${name}@${name}.example` });
    await service.policies.save(userId, 'support-bot', { recipients: { allow: ['@example.com'] }, dailyLimit: 10 });
    const queued = await service.forAgent({ ownerId: userId, agentId: 'support-bot' }).enqueue({ to: 'ada@example.com', subject: `from ${name}`, text: 'Queued under RLS.' });
    // The policy holds at the user's own send time too.
    await expect(service.forAgent({ ownerId: userId, agentId: 'support-bot' }).enqueue({ to: 'eve@elsewhere.test', subject: 'no', text: 'x' })).rejects.toMatchObject({
      code: 'POLICY_RECIPIENT_NOT_ALLOWED',
    });
    return { userId, sink, service, queued, password };
  }

  it("delivers each user's message once, through that user's own SMTP server", { timeout: 60_000 }, async () => {
    const alice = await userQueues('alice');
    const bob = await userQueues('bob');
    child = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', workerScript], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, SUPABASE_URL: project.url, SUPABASE_SERVICE_ROLE_KEY: project.serviceRoleKey, SCHEMA: project.schema, KEY_RING: workerKeys },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    expect(line).toBe('ready');
    for (const user of [alice, bob]) {
      await expect.poll(async () => (await user.service.forAgent({ ownerId: user.userId }).getStatus(user.queued.id))?.status, { timeout: 30_000 }).toBe('sent');
    }
    // Stopped (its sends settled) before the sinks' copies are read as final.
    child.kill('SIGTERM');
    await once(child, 'exit');
    expect(alice.sink.messages.map((m) => [m.subject, m.user, m.envelope.from])).toEqual([['from alice', 'alice', 'alice@alice.example']]);
    expect(bob.sink.messages.map((m) => [m.subject, m.user, m.envelope.from])).toEqual([['from bob', 'bob', 'bob@bob.example']]);
    // Each user sees their own message and not the other's.
    expect(await alice.service.forAgent({ ownerId: alice.userId }).getStatus(bob.queued.id)).toBeUndefined();
  });
});
