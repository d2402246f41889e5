import { randomUUID } from 'node:crypto';
import type { MailService } from '@agent-smtp/core';
import { startSmtpSink, type SmtpSink } from '@agent-smtp/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createHandler } from '../../../examples/supabase-edge/handler.js';
import { startServiceWorker } from '../../../examples/supabase-edge/worker.js';
import { DATABASE_URL, startTestProject, type TestProject } from './test-support/test-project.js';

// docs/supabase.md's flow, as the example in examples/supabase-edge runs it: users call an edge-function-style
// handler with their JWT (save an SMTP account into Vault and an agent policy, queue mail, read its status), and a
// service-role worker sends each message through its user's own SMTP server.

const hosts = { allowHosts: ['127.0.0.1'] };
let project: TestProject;
let handler: (req: Request) => Promise<Response>;
const sinks: SmtpSink[] = [];
let worker: MailService | undefined;

beforeAll(async () => {
  project = await startTestProject({ database: DATABASE_URL ? 'server' : 'pglite' });
  handler = createHandler(
    { SUPABASE_URL: project.url, SUPABASE_ANON_KEY: project.anonKey },
    { hosts, schema: project.schema, clientOptions: { realtime: { transport: WebSocket as never } } },
  );
}, 60_000);
afterAll(async () => {
  await worker?.close();
  await Promise.all(sinks.map((s) => s.close()));
  await project?.close();
});

const call = async (jwt: string | undefined, method: string, path: string, body?: unknown) => {
  const res = await handler(
    new Request(`https://project.functions.example/agent-mail${path}`, {
      method,
      headers: { ...(jwt ? { Authorization: `Bearer ${jwt}` } : {}), 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function signUp(name: string) {
  const id = randomUUID();
  const jwt = project.userJwt(id);
  const password = `${name}-${randomUUID()}`;
  const sink = await startSmtpSink({ auth: { user: name, pass: password } });
  sinks.push(sink);
  const saved = await call(jwt, 'POST', '/settings', {
    host: sink.host, port: sink.port, security: 'none', username: name, password, fromAddress: `${name}@${name}.example`,
    agentId: 'support-bot', allow: ['@example.com'], dailyLimit: 5,
  });
  expect(saved.status, JSON.stringify(saved.body)).toBe(200);
  expect(JSON.stringify(saved.body)).not.toContain(password);
  return { id, jwt, sink, password };
}

async function vaultSecretsOf(ownerId: string): Promise<number> {
  const { rows } = await project.db.query(`select count(*)::int as n from vault.secrets where name like $1`, [`%"${ownerId}"%`]);
  return (rows[0] as { n: number }).n;
}

describe(`the Supabase edge example (${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`, () => {
  it('users save settings and queue mail as themselves; the service-role worker sends each through its user\'s SMTP account', { timeout: 60_000 }, async () => {
    const alice = await signUp('alice');
    const bob = await signUp('bob');
    // Saving the settings again edits the one account (its old vault secret goes) and the policy.
    const again = await call(alice.jwt, 'POST', '/settings', {
      host: alice.sink.host, port: alice.sink.port, security: 'none', username: 'alice', password: alice.password, fromAddress: 'alice@alice.example',
      agentId: 'support-bot', allow: ['@example.com'], dailyLimit: 3,
    });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(await vaultSecretsOf(alice.id)).toBe(1);
    const sent = await call(alice.jwt, 'POST', '/send', { agentId: 'support-bot', to: 'ada@example.com', subject: 'Your ticket', text: 'We are on it.' });
    expect(sent).toMatchObject({ status: 202, body: { status: 'queued' } });
    const id = sent.body.id as string;

    // The agent's policy holds, and nothing is queued for what it refuses.
    expect(await call(alice.jwt, 'POST', '/send', { agentId: 'support-bot', to: 'eve@elsewhere.test', subject: 'x', text: 'x' })).toMatchObject({
      status: 403,
      body: { code: 'POLICY_RECIPIENT_NOT_ALLOWED' },
    });
    // Bob cannot see Alice's message; nobody without a valid token gets anything.
    expect((await call(bob.jwt, 'GET', `/status?id=${id}`)).status).toBe(404);
    expect((await call(undefined, 'GET', `/status?id=${id}`)).status).toBe(401);
    expect((await call(project.anonKey, 'GET', `/status?id=${id}`)).status).toBe(401);

    worker = startServiceWorker({ SUPABASE_URL: project.url, SUPABASE_SERVICE_ROLE_KEY: project.serviceRoleKey }, { hosts, schema: project.schema, pollMs: 50 });
    await expect.poll(async () => (await call(alice.jwt, 'GET', `/status?id=${id}`)).body.status, { timeout: 30_000 }).toBe('sent');
    await worker.close();
    worker = undefined;
    expect(alice.sink.messages.map((m) => [m.user, m.envelope.from, m.envelope.to, m.subject])).toEqual([
      ['alice', 'alice@alice.example', ['ada@example.com'], 'Your ticket'],
    ]);
    expect(bob.sink.messages).toEqual([]);
  });
});
