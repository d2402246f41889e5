import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createMailService, generateKeyRingKey, storedCredentials } from '@agent-smtp/core';
import { startSmtpSink, type SmtpSink } from '@agent-smtp/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseStore } from './supabase-store.js';
import { DATABASE_URL, startTestProject, type TestProject } from './test-support/test-project.js';

// Users enqueue with clients made from their own JWTs (as an edge function does); a worker in another process, made
// with the service-role key, drains every user's outbox, each message through its user's own SMTP server.
const workerScript = fileURLToPath(new URL('./test-support/service-role-worker.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const keyRing = { current: 'k1', keys: { k1: generateKeyRingKey() } };

describe(`a user's client and a service-role worker in another process (${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`, () => {
  let project: TestProject;
  const sinks: SmtpSink[] = [];
  let child: ChildProcess | undefined;

  // Starting PGlite, and a worker process under tsx, each take seconds on a loaded machine.
  beforeAll(async () => {
    project = await startTestProject({ database: DATABASE_URL ? 'server' : 'pglite' });
  }, 60_000);
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await Promise.all(sinks.map((s) => s.close()));
    await project?.close();
  });

  /** What a user does from an edge function: save their SMTP account and an agent policy, then queue a message. */
  async function userQueues(name: string) {
    const userId = randomUUID();
    const password = `${name}-Pass-${randomUUID()}`;
    const sink = await startSmtpSink({ auth: { user: name, pass: password } });
    sinks.push(sink);
    const store = createSupabaseStore({ client: project.userClient(userId), schema: project.schema });
    const service = createMailService({ store, credentials: storedCredentials({ store, keyRing, hosts: { allowHosts: ['127.0.0.1'] } }) });
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
      env: { PATH: process.env.PATH, SUPABASE_URL: project.url, SUPABASE_SERVICE_ROLE_KEY: project.serviceRoleKey, SCHEMA: project.schema, KEY_RING: JSON.stringify(keyRing) },
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
