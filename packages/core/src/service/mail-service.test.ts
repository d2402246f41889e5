import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { waitFor, waitForStatus } from '../outbox/__fixtures__/outbox-setup.js';
import { MemoryStore } from '../store/memory-store.js';
import { generateKeyRingKey } from '../credentials/key-ring.js';
import { storedCredentials } from '../credentials/stored-credentials.js';
import { ConfigError } from '../errors/config-error.js';
import { createMailService } from './mail-service.js';

const resources = useTestResources();

/** Two owners, each with a sink of their own, on one service and one store. */
async function twoOwners(options: { idleMs?: number } = {}) {
  const aliceSink = await resources.sink();
  const bobSink = await resources.sink();
  const servers: Record<string, SmtpServerConfig[]> = {
    alice: [aliceSink.serverConfig({ name: 'alice-smtp', from: 'alice@alice.example' })],
    bob: [bobSink.serverConfig({ name: 'bob-smtp', from: 'bob@bob.example' })],
  };
  const resolved: string[] = [];
  const store = new MemoryStore();
  const service = createMailService({
    store,
    credentials: {
      resolve: async ({ ownerId }) => {
        resolved.push(ownerId);
        const list = servers[ownerId];
        if (!list) throw new Error(`no servers for ${ownerId}`);
        return list;
      },
    },
    pools: { idleMs: options.idleMs ?? 60_000 },
    outbox: { retry: { baseMs: 50, maxMs: 100 } },
    // These tests send in bursts; the default agent policy's quotas have tests of their own.
    defaultPolicy: {},
  });
  resources.track(service);
  return { aliceSink, bobSink, servers, resolved, store, service };
}

describe('createMailService: many owners, one store', () => {
  it('sends each owner’s mail through that owner’s servers, and shows no owner another’s records', async () => {
    const { aliceSink, bobSink, service } = await twoOwners();
    const alice = service.forAgent({ ownerId: 'alice', agentId: 'assistant' });
    const bob = service.forAgent({ ownerId: 'bob', agentId: 'support' });
    const a = await alice.send({ to: 'ada@example.com', subject: 'From Alice', text: 'x' });
    const b = await bob.send({ to: 'ada@example.com', subject: 'From Bob', text: 'x' });

    expect(aliceSink.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['From Alice', 'alice@alice.example']]);
    expect(bobSink.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['From Bob', 'bob@bob.example']]);
    expect(await alice.getStatus(b.id)).toBeUndefined();
    expect(await bob.getStatus(a.id)).toBeUndefined();
    expect((await alice.getStatus(a.id))!.agentId).toBe('assistant');
    const aliceAudit = await service.store.audit.list('alice');
    expect(aliceAudit.map((e) => [e.action, e.messageId, e.agentId])).toEqual([['send', a.id, 'assistant']]);
    expect((await service.store.events.list('alice')).every((e) => e.messageId === a.id)).toBe(true);
    await expect(bob.cancel(a.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('one worker drains every owner’s queue, each message through its owner’s servers', async () => {
    const { aliceSink, bobSink, service } = await twoOwners();
    const queued = await Promise.all(
      Array.from({ length: 10 }, (_, i) => service.forAgent({ ownerId: i % 2 ? 'bob' : 'alice' }).enqueue({ to: 'ada@example.com', subject: `n${i}`, text: 'x' })),
    );
    service.startWorker({ pollMs: 20 });
    await aliceSink.waitForMessages(5);
    await bobSink.waitForMessages(5);
    expect(aliceSink.messages.map((m) => m.subject).sort()).toEqual(['n0', 'n2', 'n4', 'n6', 'n8']);
    expect(bobSink.messages.map((m) => m.subject).sort()).toEqual(['n1', 'n3', 'n5', 'n7', 'n9']);
    for (const [i, q] of queued.entries()) await waitForStatus(service.forAgent({ ownerId: i % 2 ? 'bob' : 'alice' }), q.id, 'sent');
  });

  it('refuses a suppressed address at send time, through send and through a worker: nothing reaches the server', async () => {
    const { aliceSink, service, store } = await twoOwners();
    const alice = service.forAgent({ ownerId: 'alice' });
    const queued = await alice.enqueue({ to: 'gone@example.com', subject: 'Queued before the unsubscribe', text: 'x' });
    // Suppressed after it was queued: the check runs when it is sent, not when it was accepted.
    await store.suppressions.add({ ownerId: 'alice', address: 'Gone@Example.com', reason: 'unsubscribe' });
    await expect(alice.send({ to: ['ada@example.com', 'gone@example.com'], subject: 'Direct', text: 'x' })).rejects.toMatchObject({
      code: 'SUPPRESSED',
      retryable: false,
    });
    service.startWorker({ pollMs: 20 });
    const failed = await waitForStatus(alice, queued.id, 'failed');
    expect(failed.error).toMatchObject({ code: 'SUPPRESSED', retryable: false });
    // Another owner's suppression list is its own.
    await service.forAgent({ ownerId: 'bob' }).send({ to: 'gone@example.com', subject: 'Bob may', text: 'x' });
    expect(aliceSink.stats.connections).toBe(0);
    expect(aliceSink.messages).toHaveLength(0);
  });

  it('reads an owner’s servers once for a burst of sends, and again after invalidate()', async () => {
    const { aliceSink, servers, resolved, service } = await twoOwners();
    const alice = service.forAgent({ ownerId: 'alice' });
    await Promise.all(Array.from({ length: 20 }, (_, i) => alice.send({ to: 'ada@example.com', subject: `b${i}`, text: 'x' })));
    expect(resolved.filter((o) => o === 'alice')).toHaveLength(1);
    const moved = await resources.sink();
    servers.alice = [moved.serverConfig({ name: 'alice-new', from: 'alice@alice.example' })];
    service.invalidate('alice');
    await alice.send({ to: 'ada@example.com', subject: 'After the change', text: 'x' });
    expect(moved.messages.map((m) => m.subject)).toEqual(['After the change']);
    expect(aliceSink.messages).toHaveLength(20);
    // The old pool was closed politely once its sends were done.
    await waitFor('the old pool to quit', async () => (aliceSink.stats.quits > 0 ? true : undefined));
  });

  it('closes a pool nobody used for idleMs', async () => {
    const { aliceSink, service } = await twoOwners({ idleMs: 300 });
    await service.forAgent({ ownerId: 'alice' }).send({ to: 'ada@example.com', subject: 'Then idle', text: 'x' });
    await waitFor('the idle pool to close', async () => (aliceSink.stats.closed >= aliceSink.stats.connections ? true : undefined), 5_000);
    // A later send opens a new pool.
    await service.forAgent({ ownerId: 'alice' }).send({ to: 'ada@example.com', subject: 'Back', text: 'x' });
    expect(aliceSink.messages.map((m) => m.subject)).toEqual(['Then idle', 'Back']);
  });

  it('an owner without servers gets a clear error and nothing is kept half-sent', async () => {
    const { service } = await twoOwners();
    const carol = service.forAgent({ ownerId: 'carol' });
    const refused = carol.send({ from: 'carol@example.com', to: 'ada@example.com', subject: 'No servers', text: 'x' });
    await expect(refused).rejects.toMatchObject({ code: 'CONFIG_ERROR', setting: 'credentials' });
    // The provider's raw words stay out of the message (they may hold SQL or a connection string).
    await expect(refused).rejects.not.toThrow(/no servers for carol/);
    expect(() => service.forAgent({ ownerId: '' })).toThrow(/ownerId/);
  });

  it('composes with the From of the servers read without secrets only where their passwords may not be read here (a user client over Vault)', async () => {
    const store = new MemoryStore();
    let fullReads = 0;
    const server = { name: 'main', host: 'smtp.example.com', port: 587, from: 'Team <team@example.com>' };
    const service = createMailService({
      store,
      credentials: {
        resolve: async () => {
          fullReads++;
          throw new ConfigError('The password is in Supabase Vault, which only the service role may read.', { setting: 'keyRing', secretNotReadableHere: true });
        },
        resolveWithoutSecrets: async () => [server],
      },
    });
    try {
      const bot = service.forAgent({ ownerId: 'o1', agentId: 'bot' });
      const queued = await bot.enqueue({ to: 'ada@example.com', subject: 's', text: 't' });
      const record = await store.outbox.get('o1', queued.id);
      expect([record?.status, record?.email.from.address, record?.email.from.name]).toEqual(['queued', 'team@example.com', 'Team']);
      expect(fullReads).toBe(1);
      // Sending needs the password: refused, saying why.
      await expect(bot.send({ to: 'ada@example.com', subject: 's', text: 't' })).rejects.toThrow(/only the service role may read/);
    } finally {
      await service.close();
    }
  });

  it('refuses to queue what could never be sent: a password under a key the ring lost, a host the policy now refuses', async () => {
    const store = new MemoryStore();
    const ring = { current: 'k1', keys: { k1: generateKeyRingKey() } };
    const first = createMailService({ store, credentials: storedCredentials({ store, keyRing: ring, hosts: { allowHosts: ['127.0.0.1'] } }) });
    await first.saveSmtpConfig('o1', { name: 'main', host: '127.0.0.1', port: 2525, security: 'none', username: 'u', password: 'p', fromAddress: 'a@a.example' }, { test: false });
    await first.close();
    const email = { to: 'ada@example.com', subject: 's', text: 't' };
    const lostKey = createMailService({ store, credentials: storedCredentials({ store, keyRing: { current: 'k2', keys: { k2: generateKeyRingKey() } }, hosts: { allowHosts: ['127.0.0.1'] } }) });
    const hostRefused = createMailService({ store, credentials: storedCredentials({ store, keyRing: ring }) });
    try {
      await expect(lostKey.forAgent({ ownerId: 'o1' }).enqueue(email)).rejects.toMatchObject({ code: 'CONFIG_ERROR', setting: 'keyRing.keys.k1' });
      await expect(hostRefused.forAgent({ ownerId: 'o1' }).enqueue(email)).rejects.toThrow(/\(SMTP config "main", owner "o1"\).*(loopback|127\.0\.0\.1)/);
      expect(await store.events.list('o1')).toEqual([]); // nothing was queued
    } finally {
      await lostKey.close();
      await hostRefused.close();
    }
  });

  it('stored configurations: saved through the service (tested, encrypted), used at once, replaced at once', async () => {
    const first = await resources.sink({ auth: { user: 'alice@alice.example', pass: 'first-Secret-1' } });
    const second = await resources.sink({ auth: { user: 'alice@alice.example', pass: 'second-Secret-2' } });
    const store = new MemoryStore();
    const service = resources.track(
      createMailService({ store, credentials: storedCredentials({ store, keyRing: { current: 'k1', keys: { k1: generateKeyRingKey() } }, hosts: { allowHosts: ['127.0.0.1'] } }) }),
    );
    const account = (sink: typeof first, pass: string) => ({
      name: 'work',
      host: sink.host,
      port: sink.port,
      security: 'none' as const,
      username: 'alice@alice.example',
      password: pass,
      fromAddress: 'alice@alice.example',
    });
    const saved = await service.saveSmtpConfig('alice', account(first, 'first-Secret-1'));
    expect(JSON.stringify(await service.listSmtpConfigs('alice'))).not.toContain('first-Secret-1');
    const alice = service.forAgent({ ownerId: 'alice', agentId: 'assistant' });
    await alice.send({ to: 'ada@example.com', subject: 'Through the first', text: 'x' });
    // The same config moved to another server: the next send goes there, with no cache to wait out.
    await service.saveSmtpConfig('alice', { id: saved.id, ...account(second, 'second-Secret-2') });
    await alice.send({ to: 'ada@example.com', subject: 'Through the second', text: 'x' });
    expect(first.messages.map((m) => [m.subject, m.user])).toEqual([['Through the first', 'alice@alice.example']]);
    expect(second.messages.map((m) => [m.subject, m.user])).toEqual([['Through the second', 'alice@alice.example']]);
    expect((await store.audit.list('alice', { action: 'smtp_config_save' })).length).toBe(2);
    const plain = resources.track(createMailService({ credentials: { resolve: async () => [] } }));
    await expect(plain.listSmtpConfigs('alice')).rejects.toMatchObject({ code: 'CONFIG_ERROR', setting: 'credentials' });
  });

  it('owners with the same servers still get pools of their own: no status, backoff or preference crosses over', async () => {
    const primary = await resources.sink({ behavior: { rcptTo: (to) => (to === 'secret@victim.example' ? { code: 450, message: '4.2.0 <secret@victim.example> Greylisted' } : undefined) } });
    const backup = await resources.sink();
    const shared = [primary.serverConfig({ name: 'primary', priority: 2, maxRetries: 0 }), backup.serverConfig({ name: 'backup', priority: 1 })];
    const service = resources.track(
      createMailService({ credentials: { resolve: async () => shared }, defaults: { from: 'relay@example.com' }, pool: { maxRetryWaitMs: 0, backoff: { baseMs: 60_000 } } }),
    );
    const a = service.forAgent({ ownerId: 'tenant-a' });
    const b = service.forAgent({ ownerId: 'tenant-b' });
    await b.send({ to: 'ada@example.com', subject: 'B first', text: 'x' });
    // B's preference does not route A's mail.
    await b.useServer('backup');
    await a.send({ to: 'ada@example.com', subject: 'A after B chose backup', text: 'x' });
    expect(primary.messages.map((m) => m.subject)).toEqual(['B first', 'A after B chose backup']);
    // A's refusal puts A's primary into backoff, not B's: B's status holds nothing of A's.
    await a.send({ to: 'secret@victim.example', subject: 'A private', text: 'x' });
    expect(a.status().servers.find((s) => s.name === 'primary')).toMatchObject({ state: 'backoff' });
    expect(JSON.stringify(b.status())).not.toContain('secret@victim.example');
    expect(b.status().servers.find((s) => s.name === 'primary')).toMatchObject({ state: 'healthy' });
  });

  it('a change made while an owner’s servers were being read is applied to the next send', async () => {
    const oldSink = await resources.sink();
    const newSink = await resources.sink();
    let servers = [oldSink.serverConfig({ name: 'old', from: 'alice@alice.example' })];
    let release: (() => void) | undefined;
    const service = resources.track(
      createMailService({
        credentials: {
          resolve: async () => {
            const read = servers;
            // The first read is slow: the configuration changes while it runs.
            if (!release) await new Promise<void>((r) => (release = r));
            return read;
          },
        },
      }),
    );
    const alice = service.forAgent({ ownerId: 'alice' });
    const first = alice.send({ to: 'ada@example.com', subject: 'Started before the change', text: 'x' });
    await waitFor('the slow read', async () => (release ? true : undefined));
    servers = [newSink.serverConfig({ name: 'new', from: 'alice@alice.example' })];
    service.invalidate('alice');
    release!();
    await first;
    await alice.send({ to: 'ada@example.com', subject: 'After the change', text: 'x' });
    expect(newSink.messages.map((m) => m.subject)).toContain('After the change');
    expect(oldSink.messages.map((m) => m.subject)).not.toContain('After the change');
  });

  it('invalidate() while a send waits out a backoff does not cut it off, and an unchanged server set keeps its pool', async () => {
    let refusals = 1;
    const sink = await resources.sink({ behavior: { connect: () => (refusals-- > 0 ? { code: 421, message: '4.3.2 busy' } : undefined) } });
    const service = resources.track(
      createMailService({
        credentials: { resolve: async () => [sink.serverConfig({ name: 'only', maxRetries: 2, from: 'alice@alice.example' })] },
        pool: { maxRetryWaitMs: 5_000, backoff: { baseMs: 400, maxMs: 400 } },
      }),
    );
    const alice = service.forAgent({ ownerId: 'alice' });
    const sending = alice.send({ to: 'ada@example.com', subject: 'Through a backoff', text: 'x' });
    await waitFor('the refused connection', async () => (sink.stats.rejected > 0 ? true : undefined));
    service.invalidate('alice');
    await expect(sending).resolves.toMatchObject({ status: 'sent' });
    const connections = sink.stats.connections;
    await alice.send({ to: 'ada@example.com', subject: 'Same pool', text: 'x' });
    // Same servers after the re-read: the pooled connection was reused, not closed and reopened.
    expect(sink.stats.connections).toBe(connections);
    expect(sink.stats.quits).toBe(0);
  });

  it('reload() on a service mailer reads the owner’s servers again and reports them', async () => {
    const { service } = await twoOwners();
    const alice = service.forAgent({ ownerId: 'alice' });
    await alice.reload();
    expect(alice.status().servers.map((s) => s.name)).toEqual(['alice-smtp']);
    expect(() => service.forAgent({ ownerId: 'a\u0000b' })).toThrow(/ownerId/);
  });
});
