import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { generateKeyRingKey } from '../credentials/key-ring.js';
import { storedCredentials } from '../credentials/stored-credentials.js';
import { PolicyError } from '../errors/policy-error.js';
import { DEFAULT_AGENT_POLICY, type Policy } from '../policy/policy.js';
import { MemoryStore } from '../store/memory-store.js';
import { createMailTools, withCurrentLimits } from '../tools/create-mail-tools.js';
import { createMailService, type MailServiceOptions } from './mail-service.js';

const resources = useTestResources();

async function service(options: Partial<MailServiceOptions> = {}) {
  const sink = await resources.sink();
  const store = new MemoryStore();
  const svc = resources.track(
    createMailService({ store, credentials: { resolve: async () => [sink.serverConfig({ name: 'sink', from: 'owner@example.com' })] }, ...options }),
  );
  return { sink, store, service: svc };
}

describe('service policies', () => {
  it('gives an agent without a policy DEFAULT_AGENT_POLICY: quotas hold, and the refusal says when they reset', async () => {
    const { sink, service: svc } = await service();
    expect(await svc.policies.effective('alice', 'assistant')).toEqual(DEFAULT_AGENT_POLICY);
    const agent = svc.forAgent({ ownerId: 'alice', agentId: 'assistant' });
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => agent.send({ to: 'ada@example.com', subject: `n${i}`, text: 'x' })));
    const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(DEFAULT_AGENT_POLICY.perMinuteLimit!);
    expect(refused.map((e) => e.code)).toEqual(['POLICY_RATE_LIMIT', 'POLICY_RATE_LIMIT']);
    expect(PolicyError.isInstance(refused[0]) && refused[0].retryAt!.getTime()).toBeGreaterThan(Date.now());
    // A refused send used no quota: the day's count is what went out.
    expect(await svc.store.counters.get('alice', 'policy:daily:assistant', new Date().toISOString().slice(0, 10))).toBe(10);
    await svc.close();
    expect(sink.messages).toHaveLength(10);
    // No free sender by default.
    const other = await service();
    await expect(other.service.forAgent({ ownerId: 'alice', agentId: 'a' }).send({ from: 'ceo@example.com', to: 'ada@example.com', subject: 's', text: 'x' })).rejects.toMatchObject({
      code: 'POLICY_FROM_NOT_ALLOWED',
    });
    // …but the configured one may be named.
    await expect(other.service.forAgent({ ownerId: 'alice', agentId: 'a' }).send({ from: 'owner@example.com', to: 'ada@example.com', subject: 's', text: 'x' })).resolves.toMatchObject({ status: 'sent' });
  });

  it('stores, validates and applies a policy per agent, and the owner’s default for agents without one, each owner apart', async () => {
    const { sink, service: svc } = await service();
    await svc.policies.save('alice', undefined, { recipients: { allow: ['@example.com'] } }, { by: 'user:alice' });
    await svc.policies.save('alice', 'sales', { recipients: { allow: ['@partner.test'] } });
    await expect(svc.policies.save('alice', 'x', { recipients: { allow: ['not a rule'] } })).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'policy.recipients.allow[0]' });
    await expect(svc.policies.save('alice', 'x', { approval: { when: () => true } })).rejects.toMatchObject({ field: 'policy.approval.when' });
    await expect(svc.policies.save('alice', 'x', { dailyLimit: -1 } as never)).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'policy.dailyLimit' });

    const support = svc.forAgent({ ownerId: 'alice', agentId: 'support' });
    const sales = svc.forAgent({ ownerId: 'alice', agentId: 'sales' });
    await expect(support.send({ to: 'x@partner.test', subject: 's', text: 'x' })).rejects.toMatchObject({ code: 'POLICY_RECIPIENT_NOT_ALLOWED', field: 'to' });
    await expect(sales.send({ to: 'ada@example.com', subject: 's', text: 'x' })).rejects.toMatchObject({ code: 'POLICY_RECIPIENT_NOT_ALLOWED' });
    await sales.send({ to: 'x@partner.test', subject: 'to partner', text: 'x' });
    // Bob's agents are untouched by Alice's policies.
    expect(await svc.policies.effective('bob', 'sales')).toEqual(DEFAULT_AGENT_POLICY);
    expect(await svc.policies.get('bob', 'sales')).toBeUndefined();
    expect((await svc.policies.list('alice')).map((p) => p.agentId)).toEqual([undefined, 'sales']);

    // A change applies to the next send, and to mail already queued when it is sent.
    const queued = await support.enqueue({ to: 'ada@example.com', subject: 'queued before the change', text: 'x' });
    await svc.policies.save('alice', undefined, { maySend: false });
    const worker = svc.startWorker({ pollMs: 20 });
    try {
      await expect.poll(async () => (await support.getStatus(queued.id))?.status).toBe('failed');
    } finally {
      await worker.stop();
    }
    expect((await support.getStatus(queued.id))?.error?.code).toBe('POLICY_SEND_DISABLED');
    const audit = await svc.audit.list({ ownerId: 'alice', action: 'policy_save' });
    expect(audit.entries.map((e) => [e.agentId, e.actor])).toEqual([
      [undefined, undefined],
      ['sales', undefined],
      [undefined, 'user:alice'],
    ]);
    await svc.close();
    expect(sink.messages.map((m) => m.subject)).toEqual(['to partner']);
  });

  it('code-given policies win, and an agent limited to one SMTP config sends only through it', async () => {
    const work = await resources.sink({ auth: { user: 'work@example.com', pass: 'work-Secret-1' } });
    const personal = await resources.sink({ auth: { user: 'me@example.com', pass: 'personal-Secret-2' } });
    const store = new MemoryStore();
    let workId = '';
    const svc = resources.track(
      createMailService({
        store,
        credentials: storedCredentials({ store, keyRing: { current: 'k1', keys: { k1: generateKeyRingKey() } }, hosts: { allowHosts: ['127.0.0.1'] } }),
        policies: ({ agentId }): Policy | undefined => (agentId === 'bot' ? { smtpConfigs: [workId] } : undefined),
        defaultPolicy: {},
      }),
    );
    const account = (sink: typeof work, user: string, pass: string, name: string) => ({
      name,
      host: sink.host,
      port: sink.port,
      security: 'none' as const,
      username: user,
      password: pass,
      fromAddress: user,
    });
    await svc.saveSmtpConfig('alice', { ...account(personal, 'me@example.com', 'personal-Secret-2', 'personal'), isDefault: true });
    workId = (await svc.saveSmtpConfig('alice', account(work, 'work@example.com', 'work-Secret-1', 'work'))).id;
    await svc.forAgent({ ownerId: 'alice', agentId: 'bot' }).send({ to: 'ada@example.com', subject: 'from the bot', text: 'x' });
    await svc.forAgent({ ownerId: 'alice', agentId: 'other' }).send({ to: 'ada@example.com', subject: 'from another agent', text: 'x' });
    await svc.close();
    expect(work.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['from the bot', 'work@example.com']]);
    expect(personal.messages.map((m) => m.subject)).toEqual(['from another agent']);
  });

  it('answers a replayed idempotency key with the first result even when the quota is used up', async () => {
    const { sink, service: svc } = await service({ defaultPolicy: { dailyLimit: 1 } });
    const agent = svc.forAgent({ ownerId: 'alice', agentId: 'a' });
    const first = await agent.send({ to: 'ada@example.com', subject: 'once', text: 'x', idempotencyKey: 'k' });
    await expect(agent.send({ to: 'ada@example.com', subject: 'twice', text: 'x' })).rejects.toMatchObject({ code: 'POLICY_DAILY_LIMIT' });
    expect(await agent.send({ to: 'ada@example.com', subject: 'once', text: 'x', idempotencyKey: 'k' })).toMatchObject({ id: first.id, replayed: true });
    await svc.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('audits every operation: sends, refusals and tool calls, queryable by agent, action, time and cursor, with no body', async () => {
    const { service: svc } = await service({ defaultPolicy: { recipients: { allow: ['@example.com'] } } });
    const tools = new Map(createMailTools(svc, { operator: true }).map((t) => [t.name, t]));
    const send = tools.get('send_email')!;
    const context = { ownerId: 'alice', agentId: 'assistant', toolCallId: 'call-1' };
    expect(await send.execute(send.inputSchema.parse({ to: 'ada@example.com', subject: 'Secret plans', body: 'The body text' }), context)).toMatchObject({ ok: true });
    expect(await send.execute(send.inputSchema.parse({ to: 'eve@attacker.test', subject: 'Leak', body: 'The body text' }), { ...context, toolCallId: 'call-2' })).toMatchObject({
      ok: false,
      error: { code: 'POLICY_RECIPIENT_NOT_ALLOWED' },
    });
    await svc.forAgent({ ownerId: 'bob', agentId: 'assistant' }).send({ to: 'bob@example.com', subject: 'Bob', text: 'x' });

    const all = await svc.audit.list({ ownerId: 'alice' });
    expect(all.entries.map((e) => e.action)).toEqual(['tool_call', 'refused', 'tool_call', 'send']);
    expect(all.entries[0]).toMatchObject({ agentId: 'assistant', tool: 'send_email', outcome: 'error', errorCode: 'POLICY_RECIPIENT_NOT_ALLOWED' });
    expect(all.entries[3]).toMatchObject({ action: 'send', outcome: 'ok', recipientCount: 1 });
    expect(JSON.stringify(all)).not.toMatch(/The body text|Secret plans/);
    expect(all.entries.every((e) => e.ownerId === 'alice')).toBe(true);

    const refused = await svc.audit.list({ ownerId: 'alice', action: 'refused' });
    expect(refused.entries).toHaveLength(1);
    const page1 = await svc.audit.list({ ownerId: 'alice', limit: 3 });
    const page2 = await svc.audit.list({ ownerId: 'alice', limit: 3, cursor: page1.nextCursor });
    expect([...page1.entries, ...page2.entries].map((e) => e.id)).toEqual(all.entries.map((e) => e.id));
    expect(page2.nextCursor).toBeUndefined();
    expect((await svc.audit.list({ ownerId: 'alice', from: new Date(Date.now() + 60_000) })).entries).toEqual([]);
    expect((await svc.audit.list({ ownerId: 'alice', agentId: 'nobody' })).entries).toEqual([]);

    const audit = tools.get('list_audit_entries')!;
    const viaTool = await audit.execute(audit.inputSchema.parse({ action: 'refused' }), context);
    expect(viaTool).toMatchObject({ ok: true, value: { entries: [{ action: 'refused', error_code: 'POLICY_RECIPIENT_NOT_ALLOWED' }] } });
  });

  it('tells the model its limits in the send_email description', async () => {
    const { service: svc } = await service({ defaultPolicy: { recipients: { allow: ['@example.com'] }, dailyLimit: 5, approval: { aboveRecipients: 3 } } });
    const [send] = createMailTools(svc, { include: ['send_email'] });
    await svc.forAgent({ ownerId: 'alice', agentId: 'a' }).send({ to: 'ada@example.com', subject: 's', text: 'x' });
    const text = await send!.describeFor!({ ownerId: 'alice', agentId: 'a' });
    expect(text).toContain('@example.com');
    expect(text).toContain('4 of 5 emails left today');
    expect(text).toContain('more than 3 recipients');
    // The same, baked into tools for frameworks whose descriptions are fixed at build time.
    const [refreshed] = await withCurrentLimits(createMailTools(svc.forAgent({ ownerId: 'alice', agentId: 'a' }), { include: ['send_email'] }));
    expect(refreshed!.description).toContain('4 of 5 emails left today');
  });
});
