import { describe, expect, it, vi } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import type { Policy } from '../policy/policy.js';
import { MemoryStore } from '../store/memory-store.js';
import { createMailer, type MailerOptions } from './mailer.js';

const resources = useTestResources();

async function setup(policy: Policy, store = new MemoryStore(), options: Partial<MailerOptions> = {}) {
  const sink = await resources.sink();
  const mailer = resources.track(
    createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, policy, store, agentId: 'assistant', env: {}, ...options }),
  );
  return { sink, mailer, store };
}

describe('approval: nothing is sent before a human approves it', () => {
  it('holds a message, sends it once on approve, and audits who approved', async () => {
    const { sink, mailer } = await setup({ approval: { outside: ['@example.com'] } });
    const inside = await mailer.send({ to: 'ada@example.com', subject: 'Inside', text: 'x' });
    expect(inside.status).toBe('sent');
    const held = await mailer.send({ to: 'eve@elsewhere.test', subject: 'Outside', text: 'Body of the held email' });
    expect(held).toMatchObject({ status: 'pending_approval', approval: { reason: expect.stringContaining('eve@elsewhere.test') } });
    expect(held.approval!.expiresAt.getTime()).toBeGreaterThan(Date.now());
    await sink.waitForMessages(1);
    expect(sink.messages.map((m) => m.subject)).toEqual(['Inside']);

    const pending = await mailer.listPending();
    expect(pending).toEqual([
      expect.objectContaining({ id: held.id, agentId: 'assistant', recipients: ['eve@elsewhere.test'], subject: 'Outside', preview: 'Body of the held email' }),
    ]);

    const approved = await mailer.approve(held.id, { by: 'user:ada' });
    expect(approved).toMatchObject({ id: held.id, status: 'sent', accepted: ['eve@elsewhere.test'] });
    const [, second] = await sink.waitForMessages(2);
    expect(second!.envelope.to).toEqual(['eve@elsewhere.test']);
    expect(await mailer.listPending()).toEqual([]);

    // A second approval changes nothing and sends nothing.
    await expect(mailer.approve(held.id, { by: 'user:ada' })).rejects.toMatchObject({ code: 'APPROVAL_NOT_PENDING' });
    const status = await mailer.getStatus(held.id);
    expect(status?.history.map((h) => h.type)).toEqual(expect.arrayContaining(['pending_approval', 'approved', 'sent']));
    const audit = await mailer.listAudit({ action: 'approve' });
    expect(audit.entries[audit.entries.length - 1]).toMatchObject({ actor: 'user:ada', outcome: 'ok', messageId: held.id, recipientCount: 1 });
    await mailer.close();
    expect(sink.messages).toHaveLength(2);
  });

  it('sends nothing after a rejection', async () => {
    const { sink, mailer, store } = await setup({ approval: { always: true } });
    const held = await mailer.send({ to: 'ada@example.com', subject: 'No', text: 'x' });
    expect(held.status).toBe('pending_approval');
    expect(await mailer.reject(held.id, { by: 'user:ada' })).toEqual({ id: held.id, status: 'rejected' });
    await expect(mailer.approve(held.id, { by: 'user:ada' })).rejects.toMatchObject({ code: 'APPROVAL_NOT_PENDING' });
    // No worker can claim it either, however late.
    expect(await store.outbox.claim({ workerId: 'w', leaseMs: 1_000, limit: 10, now: new Date(Date.now() + 86_400_000) })).toEqual([]);
    await mailer.close();
    expect(sink.stats.connections).toBe(0);
    expect((await mailer.getStatus(held.id))?.status).toBe('rejected');
  });

  it('never sends an expired message, even when approved late', async () => {
    const store = new MemoryStore();
    const { sink, mailer } = await setup({ approval: { always: true, expiresAfterMs: 1_000 } }, store);
    const held = await mailer.send({ to: 'ada@example.com', subject: 'Late', text: 'x' });
    const expiresAt = held.approval!.expiresAt;
    // The store decides by its clock; a decision dated after the expiry is what a late approval is.
    const late = await store.outbox.decide('default', held.id, { approve: true, by: 'user:ada', now: new Date(expiresAt.getTime() + 1) });
    expect(late?.outcome).toBe('expired');
    await expect(mailer.approve(held.id, { by: 'user:ada' })).rejects.toMatchObject({ code: 'APPROVAL_NOT_PENDING' });
    expect(await store.outbox.claim({ workerId: 'w', leaseMs: 1_000, limit: 10, now: new Date(expiresAt.getTime() + 60_000) })).toEqual([]);
    await mailer.close();
    expect(sink.stats.connections).toBe(0);
  });

  it('shows a pending message past its expiry as expired, and approving it says so', async () => {
    const { sink, mailer } = await setup({ approval: { always: true, expiresAfterMs: 1_000 }, dailyLimit: 5 });
    const held = await mailer.send({ to: 'ada@example.com', subject: 'Soon gone', text: 'x' });
    // The clock moves past the expiry (only Date: the store and the mailer read it, the sockets keep their timers).
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 1_500 });
    try {
      expect((await mailer.getStatus(held.id))?.status).toBe('expired');
      expect(await mailer.getPending(held.id)).toBeUndefined();
      const error = await mailer.approve(held.id, { by: 'user:ada' }).catch((e: unknown) => e);
      expect(AgentSmtpError.isInstance(error) && error.code).toBe('APPROVAL_EXPIRED');
      // It will never be sent, so it took no quota in the end.
      expect(await mailer.describeLimits()).toContain('5 of 5 emails left today');
    } finally {
      vi.useRealTimers();
    }
    await mailer.close();
    expect(sink.stats.connections).toBe(0);
  });

  it('lets code that already asked a human send at once (approvedBy), and audits it', async () => {
    const { sink, mailer } = await setup({ approval: { always: true } });
    const result = await mailer.send({ to: 'ada@example.com', subject: 'Approved upstream', text: 'x' }, { approvedBy: 'ai-sdk:needsApproval' });
    expect(result.status).toBe('sent');
    await sink.waitForMessages(1);
    const { entries } = await mailer.listAudit({ action: 'approve' });
    expect(entries).toEqual([expect.objectContaining({ actor: 'ai-sdk:needsApproval', messageId: result.id })]);
  });

  it('holds queued mail too; a worker sends it only after approval', async () => {
    const { sink, mailer } = await setup({ approval: { aboveRecipients: 1 } });
    const queued = await mailer.enqueue({ to: ['ada@example.com', 'bob@example.com'], subject: 'Two', text: 'x' });
    expect(queued.status).toBe('pending_approval');
    const worker = mailer.startWorker({ pollMs: 20 });
    try {
      expect(await mailer.approve(queued.id, { by: 'ops' })).toMatchObject({ status: 'sent' });
      const [message] = await sink.waitForMessages(1);
      expect(message!.envelope.to).toEqual(['ada@example.com', 'bob@example.com']);
    } finally {
      await worker.stop();
    }
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('cancels a pending message', async () => {
    const { sink, mailer } = await setup({ approval: { always: true } });
    const held = await mailer.send({ to: 'ada@example.com', subject: 'Cancel me', text: 'x' });
    expect(await mailer.cancel(held.id)).toEqual({ cancelled: true, status: 'cancelled' });
    await expect(mailer.approve(held.id, { by: 'ops' })).rejects.toMatchObject({ code: 'APPROVAL_NOT_PENDING' });
    await mailer.close();
    expect(sink.stats.connections).toBe(0);
  });

  it('an approved email the server cannot take now is queued and sent once it can, never left failed', async () => {
    const { sink, mailer } = await setup({ approval: { always: true } }, new MemoryStore(), {
      pool: { maxRetryWaitMs: 0, backoff: { baseMs: 10, maxMs: 10 } },
      outbox: { retry: { baseMs: 100, maxMs: 100 } },
    });
    const held = await mailer.send({ to: 'ada@example.com', subject: 'Approved while the server is down', text: 'x' });
    let down = true;
    sink.behavior.mailFrom = () => (down ? { code: 421, message: 'Try again later' } : undefined);
    const approved = await mailer.approve(held.id, { by: 'user:ada' });
    expect(approved.status).toBe('queued');
    down = false;
    // No worker runs: the process that approved it sends it when its retry is due.
    await expect.poll(async () => (await mailer.getStatus(held.id))?.status, { timeout: 10_000, interval: 50 }).toBe('sent');
    await mailer.close();
    expect(sink.messages.map((m) => m.subject)).toEqual(['Approved while the server is down']);
  });

  it('an approval whose first claim fails at the store is still sent, from this process, with no worker', async () => {
    const store = new MemoryStore();
    const { sink, mailer } = await setup({ approval: { always: true } }, store);
    const held = await mailer.send({ to: 'ada@example.com', subject: 'Approved while the store hiccups', text: 'x' });
    const claim = store.outbox.claim.bind(store.outbox);
    let failures = 1;
    store.outbox.claim = async (options) => {
      if (failures-- > 0) throw new Error('connection terminated');
      return claim(options);
    };
    expect((await mailer.approve(held.id, { by: 'user:ada' })).status).toBe('queued');
    await expect.poll(async () => (await mailer.getStatus(held.id))?.status, { timeout: 15_000, interval: 100 }).toBe('sent');
    await mailer.close();
    expect(sink.messages.map((m) => m.subject)).toEqual(['Approved while the store hiccups']);
  });

  it('gives quota back for what is never sent: rejected, cancelled, refused right before sending', async () => {
    const { mailer, store } = await setup({ approval: { aboveRecipients: 1 }, dailyLimit: 3 });
    const held = await mailer.send({ to: ['ada@example.com', 'bob@example.com'], subject: 'Two', text: 'x' });
    await mailer.reject(held.id, { by: 'ops' });
    const queued = await mailer.enqueue({ to: 'ada@example.com', subject: 'Later', text: 'x', sendAt: new Date(Date.now() + 3_600_000) });
    await mailer.cancel(queued.id);
    await store.suppressions.add({ ownerId: 'default', address: 'gone@example.com', reason: 'manual' });
    await expect(mailer.send({ to: 'gone@example.com', subject: 'Suppressed', text: 'x' })).rejects.toMatchObject({ code: 'SUPPRESSED' });
    expect(await mailer.describeLimits()).toContain('3 of 3 emails left today');
    // And the three it may send still go.
    for (const i of [1, 2, 3]) await mailer.send({ to: 'ada@example.com', subject: `n${i}`, text: 'x' });
    await expect(mailer.send({ to: 'ada@example.com', subject: 'n4', text: 'x' })).rejects.toMatchObject({ code: 'POLICY_DAILY_LIMIT' });
  });

  it('refuses an approver that names no one', async () => {
    const { mailer } = await setup({ approval: { always: true } });
    const held = await mailer.send({ to: 'ada@example.com', subject: 'x', text: 'x' });
    await expect(mailer.approve(held.id, { by: '' })).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'by' });
    await expect(mailer.approve('msg_nope', { by: 'ops' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
