import { describe, expect, it } from 'vitest';
import { newOutboxRecord } from '../testing/outbox-record-fixture.js';
import { runStoreContract } from '../testing/store-contract.js';
import { MemoryStore } from './memory-store.js';

runStoreContract({ name: 'MemoryStore', create: () => new MemoryStore() });

describe('MemoryStore retention', () => {
  const input = (id: string, idempotencyKey?: string) => newOutboxRecord('o', { id, idempotencyKey });

  it('drops the oldest finished messages and their events past maxMessages, never an unfinished one', async () => {
    const store = new MemoryStore({ maxMessages: 3 });
    await store.outbox.enqueue(input('unfinished'));
    for (let i = 0; i < 5; i++) {
      const { record } = await store.outbox.enqueue(input(`m${i}`, `k${i}`), { claim: { workerId: 'w', leaseMs: 60_000 } });
      await store.outbox.settle(record.id, 1, { status: 'sent', server: 's', accepted: [], rejected: [], response: '250' });
    }
    expect(await store.outbox.get('o', 'unfinished')).toBeDefined();
    expect(await store.outbox.get('o', 'm0')).toBeUndefined();
    expect(await store.outbox.findByIdempotencyKey('o', 'k0')).toBeUndefined();
    expect(await store.events.list('o', { messageId: 'm0' })).toEqual([]);
    expect(await store.outbox.get('o', 'm4')).toBeDefined();
    expect((await store.events.list('o', { messageId: 'm4' })).map((e) => e.type)).toEqual(['queued', 'claimed', 'sent']);
  });

  it('keeps at least maxEvents and maxAuditEntries of the newest, in bounded memory', async () => {
    const store = new MemoryStore({ maxEvents: 10, maxAuditEntries: 10 });
    for (let i = 0; i < 100; i++) {
      await store.events.append({ ownerId: 'o', messageId: `m${i}`, type: 'sent', attempt: 1, detail: {} });
      await store.audit.append({ ownerId: 'o', agentId: undefined, action: `a${i}`, outcome: 'ok', detail: {} });
    }
    const events = await store.events.list('o');
    expect(events.length).toBeGreaterThanOrEqual(10);
    expect(events.length).toBeLessThanOrEqual(20);
    expect(events.at(-1)!.messageId).toBe('m99');
    expect(await store.events.list('o', { messageId: 'm0' })).toEqual([]);
    const audit = await store.audit.list('o', { limit: 1_000 });
    expect(audit.length).toBeGreaterThanOrEqual(10);
    expect(audit.length).toBeLessThanOrEqual(20);
    expect(audit[0]!.action).toBe('a99');
  });
});
