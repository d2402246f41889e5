import { describe, expect, it, vi } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import type { OutgoingEmail } from '../message/email-schema.js';
import type { Policy } from '../policy/policy.js';
import { MemoryStore } from '../store/memory-store.js';
import { createMailer, type EnqueueManyItem, type MailerOptions } from './mailer.js';

const resources = useTestResources();

async function setup(options: { policy?: Policy; store?: MemoryStore } & Partial<MailerOptions> = {}) {
  const sink = await resources.sink();
  const store = options.store ?? new MemoryStore();
  const mailer = resources.track(
    createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'agent@example.com' }, store, agentId: 'bulk-bot', env: {}, ...options }),
  );
  return { sink, mailer, store };
}

const message = (n: number, extra: Partial<OutgoingEmail> = {}): OutgoingEmail => ({
  to: `user${n}@example.com`,
  subject: 'Hello {name}',
  text: 'Dear {name}, number {n}.',
  variables: { name: `User ${n}`, n: String(n) },
  idempotencyKey: `bulk-${n}`,
  ...extra,
});

/** Messages of this owner that a worker could send (queued), by their keys `bulk-0` … `bulk-999`. */
async function countQueued(store: MemoryStore, ownerId: string): Promise<number> {
  let n = 0;
  for (let i = 0; i < 1_000; i++) if (await store.outbox.findByIdempotencyKey(ownerId, `bulk-${i}`)) n++;
  return n;
}

async function* generate(count: number, pulled: { n: number }, make = message): AsyncGenerator<OutgoingEmail> {
  for (let n = 0; n < count; n++) {
    pulled.n++;
    yield make(n);
  }
}

describe('mailer.enqueueMany: many messages, one store call per batch', () => {
  it('streams an async iterable in batches, and a worker delivers every message once, rendered', { timeout: 30_000 }, async () => {
    const { sink, mailer, store } = await setup();
    const storeCalls = vi.spyOn(store.outbox, 'enqueueMany');
    const pulled = { n: 0 };
    let maxAhead = 0;
    const items: EnqueueManyItem[] = [];
    const summary = await mailer.enqueueMany(generate(1_200, pulled), {
      batchSize: 500,
      onResult: (item) => {
        items.push(item);
        // Never more than one batch read ahead of what was written.
        maxAhead = Math.max(maxAhead, pulled.n - items.length);
      },
    });
    expect(summary).toEqual({ queued: 1_200, pendingApproval: 0, replayed: 0, refused: 0 });
    expect(storeCalls.mock.calls.map(([records]) => records.length)).toEqual([500, 500, 200]);
    expect(maxAhead).toBeLessThanOrEqual(500);
    expect(items.map((i) => i.index)).toEqual(Array.from({ length: 1_200 }, (_, n) => n));

    mailer.startWorker({ concurrency: 20, pollMs: 20 });
    await sink.waitForMessages(1_200, 25_000);
    const subjects = new Set(sink.messages.map((m) => `${m.envelope.to[0]}|${m.subject}`));
    expect(subjects.size).toBe(1_200);
    expect(subjects.has('user777@example.com|Hello User 777')).toBe(true);
    // One audit entry per batch for what was queued, not one per message.
    const audit = (await mailer.listAudit({ action: 'enqueue' })).entries;
    expect(audit.map((e) => e.detail.count)).toEqual([200, 500, 500]);
  });

  it('honours idempotency keys within a call and across calls: a rerun replays, a reused key with other content is refused', async () => {
    const { mailer, store } = await setup();
    const inputs = [message(1), message(2), message(1), message(3, { idempotencyKey: 'bulk-2' })];
    const items: EnqueueManyItem[] = [];
    const first = await mailer.enqueueMany(inputs, { onResult: (item) => void items.push(item) });
    expect(first).toEqual({ queued: 2, pendingApproval: 0, replayed: 1, refused: 1 });
    expect(items[2]!.result).toMatchObject({ id: items[0]!.result!.id, replayed: true });
    expect(items[3]!.error).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });

    const again = await mailer.enqueueMany([message(1), message(2), message(4)]);
    expect(again).toEqual({ queued: 1, pendingApproval: 0, replayed: 2, refused: 0 });
    const queued = await Promise.all(['bulk-1', 'bulk-2', 'bulk-4'].map((key) => store.outbox.findByIdempotencyKey(mailer.ownerId, key)));
    expect(queued.every((r) => r?.status === 'queued')).toBe(true);
  });

  it('refuses what the policy refuses, message by message, and audits the refusals once per batch', async () => {
    const { sink, mailer } = await setup({ policy: { recipients: { allow: ['@example.com'] } } });
    const inputs = [message(1), message(2, { to: 'eve@elsewhere.test' }), message(3), message(4, { to: 'not an address' })];
    const items: EnqueueManyItem[] = [];
    const summary = await mailer.enqueueMany(inputs, { onResult: (item) => void items.push(item) });
    expect(summary).toEqual({ queued: 2, pendingApproval: 0, replayed: 0, refused: 2 });
    expect(items.map((i) => i.error?.code ?? i.result?.status)).toEqual(['queued', 'POLICY_RECIPIENT_NOT_ALLOWED', 'queued', 'VALIDATION_ERROR']);
    const refused = (await mailer.listAudit({ action: 'refused' })).entries;
    expect(refused).toEqual([expect.objectContaining({ outcome: 'error', detail: expect.objectContaining({ operation: 'enqueueMany', count: 2 }) })]);
    mailer.startWorker({ pollMs: 20 });
    await sink.waitForMessages(2);
    await mailer.close();
    expect(sink.messages.flatMap((m) => m.envelope.to).sort()).toEqual(['user1@example.com', 'user3@example.com']);
  });

  it('takes the daily quota per batch and, near its end, queues what fits in order; a rerun replays those and gives the quota back', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({ store, policy: { dailyLimit: 25 } });
    const inputs = Array.from({ length: 40 }, (_, n) => message(n));
    const items: EnqueueManyItem[] = [];
    expect(await mailer.enqueueMany(inputs, { batchSize: 10, onResult: (item) => void items.push(item) })).toEqual({ queued: 25, pendingApproval: 0, replayed: 0, refused: 15 });
    expect(items.slice(25).every((i) => i.error?.code === 'POLICY_DAILY_LIMIT')).toBe(true);
    expect(items.slice(0, 25).every((i) => i.result?.status === 'queued')).toBe(true);
    const day = new Date().toISOString().slice(0, 10);
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', day)).toBe(25);

    // The same job again: what was queued is a replay (no quota taken), the rest still over the limit.
    expect(await mailer.enqueueMany(inputs, { batchSize: 10 })).toEqual({ queued: 0, pendingApproval: 0, replayed: 25, refused: 15 });
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', day)).toBe(25);
  });

  it('near the limit, a rerun spends no units on what was queued before: the new messages that fit are queued', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({ store, policy: { dailyLimit: 25 } });
    expect((await mailer.enqueueMany(Array.from({ length: 20 }, (_, n) => message(n)))).queued).toBe(20);
    const items: EnqueueManyItem[] = [];
    const rerun = await mailer.enqueueMany(Array.from({ length: 12 }, (_, n) => message(n + 15)), { onResult: (i) => void items.push(i) });
    expect(rerun).toEqual({ queued: 5, pendingApproval: 0, replayed: 5, refused: 2 });
    expect(items.map((i) => i.error?.code ?? (i.result!.replayed ? 'replayed' : i.result!.status))).toEqual([
      ...Array(5).fill('replayed'), ...Array(5).fill('queued'), 'POLICY_DAILY_LIMIT', 'POLICY_DAILY_LIMIT',
    ]);
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', new Date().toISOString().slice(0, 10))).toBe(25);
  });

  it('a store that wrote the batch before failing (stored: true) keeps its quota spent', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({ store, policy: { dailyLimit: 100 } });
    const real = store.outbox.enqueueMany.bind(store.outbox);
    vi.spyOn(store.outbox, 'enqueueMany').mockImplementation(async (records) => {
      await real(records);
      throw Object.assign(new Error('written, but the answer was lost'), { stored: true });
    });
    await expect(mailer.enqueueMany(Array.from({ length: 10 }, (_, n) => message(n)))).rejects.toThrow('answer was lost');
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', new Date().toISOString().slice(0, 10))).toBe(10);
  });

  it('holds messages the policy sends for approval, each with its own audit entry', async () => {
    const { mailer } = await setup({ policy: { approval: { outside: ['@example.com'] } } });
    const summary = await mailer.enqueueMany([message(1), message(2, { to: 'eve@elsewhere.test' })]);
    expect(summary).toEqual({ queued: 1, pendingApproval: 1, replayed: 0, refused: 0 });
    expect((await mailer.listPending()).map((p) => p.recipients)).toEqual([['eve@elsewhere.test']]);
    expect((await mailer.listAudit({ action: 'approval_requested' })).entries).toHaveLength(1);
  });

  it('a store failure stops the run and throws; earlier batches stay queued and the failed batch takes no quota', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({ store, policy: { dailyLimit: 1_000 } });
    const real = store.outbox.enqueueMany.bind(store.outbox);
    let calls = 0;
    vi.spyOn(store.outbox, 'enqueueMany').mockImplementation(async (records) => {
      if (++calls === 2) throw new Error('store down');
      return real(records);
    });
    const reported: number[] = [];
    await expect(mailer.enqueueMany(Array.from({ length: 30 }, (_, n) => message(n)), { batchSize: 10, onResult: (i) => void reported.push(i.index) })).rejects.toThrow('store down');
    expect(reported).toEqual(Array.from({ length: 10 }, (_, n) => n));
    const day = new Date().toISOString().slice(0, 10);
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', day)).toBe(10);
    expect((await store.outbox.findByIdempotencyKey(mailer.ownerId, 'bulk-9'))?.status).toBe('queued');
    expect(await store.outbox.findByIdempotencyKey(mailer.ownerId, 'bulk-10')).toBeUndefined();
  });

  it('wakes the workers when a batch is queued, as enqueue does', async () => {
    const { sink, mailer } = await setup();
    mailer.startWorker({ pollMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the worker's first (empty) look at the queue
    await mailer.enqueueMany([message(1), message(2), message(3)]);
    await sink.waitForMessages(3, 5_000);
  });

  it('a key repeated in one batch takes one unit of quota and is the first one\'s replay', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({ store, policy: { dailyLimit: 2 } });
    const items: EnqueueManyItem[] = [];
    const summary = await mailer.enqueueMany([message(1), message(1), message(2), message(1, { text: 'other content' })], { onResult: (i) => void items.push(i) });
    expect(summary).toEqual({ queued: 2, pendingApproval: 0, replayed: 1, refused: 1 });
    expect(items[1]!.result).toMatchObject({ id: items[0]!.result!.id, replayed: true });
    expect(items[3]!.error).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', new Date().toISOString().slice(0, 10))).toBe(2);
  });

  it('gives the quota back when the store fails in the middle of the over-quota path', async () => {
    const store = new MemoryStore();
    const { mailer } = await setup({ store, policy: { dailyLimit: 5 } });
    vi.spyOn(store.outbox, 'findByIdempotencyKey').mockRejectedValue(new Error('store down'));
    const inputs = [message(99, { to: 'not an address' }), ...Array.from({ length: 10 }, (_, n) => message(n))];
    await expect(mailer.enqueueMany(inputs)).rejects.toThrow('store down');
    expect(await store.counters.get(mailer.ownerId, 'policy:daily:bulk-bot', new Date().toISOString().slice(0, 10))).toBe(0);
    // The batch's refusal (the bad address) was audited even though the batch was not written.
    expect((await mailer.listAudit({ action: 'refused' })).entries).toHaveLength(1);
  });

  it('writes a batch once its content reaches 32 MiB, however few messages it holds', async () => {
    const { mailer, store } = await setup();
    const storeCalls = vi.spyOn(store.outbox, 'enqueueMany');
    const big = 'x'.repeat(2 ** 20);
    const summary = await mailer.enqueueMany(Array.from({ length: 40 }, (_, n) => message(n, { text: big })), { batchSize: 1_000 });
    expect(summary.queued).toBe(40);
    const sizes = storeCalls.mock.calls.map(([records]) => records.length);
    expect(sizes.length).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(32);
  });

  it('close() stops a run between messages: nothing is written after close() returns', async () => {
    const { mailer, store } = await setup();
    const slow = async function* () {
      for (let n = 0; n < 600; n++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield message(n);
      }
    };
    const run = mailer.enqueueMany(slow(), { batchSize: 5 });
    const outcome = run.then(() => 'finished', (err: { code?: string }) => err.code);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await mailer.close({ timeoutMs: 300 });
    const storedAtClose = await countQueued(store, mailer.ownerId);
    expect(await outcome).toBe('CLOSED');
    expect(await countQueued(store, mailer.ownerId)).toBe(storedAtClose);
    expect(storedAtClose).toBeLessThan(600);
  });

  it('stops reading when its signal aborts, and refuses what is not a list of emails', async () => {
    const { mailer } = await setup();
    const controller = new AbortController();
    const pulled = { n: 0 };
    const run = mailer.enqueueMany(generate(100, pulled), {
      batchSize: 5,
      onResult: (item) => {
        if (item.index === 4) controller.abort(new Error('user cancelled'));
      },
      signal: controller.signal,
    });
    await expect(run).rejects.toThrow('user cancelled');
    expect(pulled.n).toBeLessThanOrEqual(6);
    await expect(mailer.enqueueMany(42 as never)).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'inputs' });
    await expect(mailer.enqueueMany('to@example.com' as never)).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'inputs' });
    for (const batchSize of [Number.NaN, 0, -1, 1.5, 1_001, Infinity]) {
      await expect(mailer.enqueueMany([message(1)], { batchSize }), String(batchSize)).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'batchSize' });
    }
  });
});
