import { describe, expect, it } from 'vitest';
import { PolicyError } from '../errors/policy-error.js';
import { MemoryStore } from '../store/memory-store.js';
import { compilePolicy } from './check-policy.js';
import { dailyQuotaLeft, takeQuota } from './quota.js';

const scope = { ownerId: 'owner-1', agentId: 'agent-1' };
// 13:45:30.250 UTC: the day resets at the next midnight UTC, the minute at 13:46:00.
const now = new Date('2026-03-10T13:45:30.250Z');
const nextMidnight = new Date('2026-03-11T00:00:00.000Z');
const nextMinute = new Date('2026-03-10T13:46:00.000Z');

async function refusal(run: () => Promise<unknown>): Promise<PolicyError> {
  try {
    await run();
  } catch (err) {
    if (PolicyError.isInstance(err)) return err;
    throw err;
  }
  throw new Error('expected a PolicyError, the quota was taken');
}

const daily = (store: MemoryStore, at = now) => store.counters.get(scope.ownerId, `policy:daily:${scope.agentId}`, at.toISOString().slice(0, 10));
const minute = (store: MemoryStore, at = now) => store.counters.get(scope.ownerId, `policy:minute:${scope.agentId}`, at.toISOString().slice(0, 16));

describe('takeQuota', () => {
  it('takes nothing and refuses nothing without limits', async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 5; i++) await takeQuota(store.counters, scope, compilePolicy({}), now);
    expect(await daily(store)).toBe(0);
  });

  it('daily limit: the limit-th message passes, the next is refused with the next 00:00 UTC in the error and retryAt', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 3 });
    for (let i = 0; i < 3; i++) await takeQuota(store.counters, scope, policy, now);
    const err = await refusal(() => takeQuota(store.counters, scope, policy, now));
    expect(err.code).toBe('POLICY_DAILY_LIMIT');
    expect(err.retryAt).toEqual(nextMidnight);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(nextMidnight.toISOString());
    expect(err.toJSON()).toMatchObject({ code: 'POLICY_DAILY_LIMIT', retryAt: nextMidnight.toISOString() });
    expect(await daily(store)).toBe(3);
  });

  it('the daily quota is per UTC day: a minute before midnight and a minute after are two windows', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 1 });
    const late = new Date('2026-03-10T23:59:59.999Z');
    await takeQuota(store.counters, scope, policy, late);
    expect((await refusal(() => takeQuota(store.counters, scope, policy, late))).retryAt).toEqual(nextMidnight);
    await takeQuota(store.counters, scope, policy, nextMidnight);
    expect(await daily(store, nextMidnight)).toBe(1);
  });

  it('per-minute limit: refused with the next minute in the error and retryAt', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ perMinuteLimit: 2 });
    await takeQuota(store.counters, scope, policy, now);
    await takeQuota(store.counters, scope, policy, now);
    const err = await refusal(() => takeQuota(store.counters, scope, policy, now));
    expect(err.code).toBe('POLICY_RATE_LIMIT');
    expect(err.retryAt).toEqual(nextMinute);
    expect(err.message).toContain(nextMinute.toISOString());
    // The next minute has a fresh window.
    await takeQuota(store.counters, scope, policy, nextMinute);
  });

  it('checks the daily limit first, then the minute: a minute refusal gives the daily unit back', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 10, perMinuteLimit: 1 });
    await takeQuota(store.counters, scope, policy, now);
    expect([await daily(store), await minute(store)]).toEqual([1, 1]);
    for (let i = 0; i < 5; i++) expect((await refusal(() => takeQuota(store.counters, scope, policy, now))).code).toBe('POLICY_RATE_LIMIT');
    // Five refusals consumed nothing of the day.
    expect([await daily(store), await minute(store)]).toEqual([1, 1]);
  });

  it('a daily refusal takes no minute unit either', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 1, perMinuteLimit: 5 });
    await takeQuota(store.counters, scope, policy, now);
    expect((await refusal(() => takeQuota(store.counters, scope, policy, now))).code).toBe('POLICY_DAILY_LIMIT');
    expect([await daily(store), await minute(store)]).toEqual([1, 1]);
  });

  it('the refund gives back both units, once', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 1, perMinuteLimit: 1 });
    const refund = await takeQuota(store.counters, scope, policy, now);
    await refund();
    await refund();
    expect([await daily(store), await minute(store)]).toEqual([0, 0]);
    await takeQuota(store.counters, scope, policy, now);
  });

  it('counts per agent and per owner', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 1 });
    await takeQuota(store.counters, scope, policy, now);
    await takeQuota(store.counters, { ...scope, agentId: 'agent-2' }, policy, now);
    await takeQuota(store.counters, { ...scope, ownerId: 'owner-2' }, policy, now);
    expect((await refusal(() => takeQuota(store.counters, scope, policy, now))).code).toBe('POLICY_DAILY_LIMIT');
  });

  it('concurrent takes never pass the limit', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 7 });
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => takeQuota(store.counters, scope, policy, now)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(7);
    expect(await daily(store)).toBe(7);
  });
});

describe('dailyQuotaLeft', () => {
  it('what is left today and when it resets; undefined without a daily limit', async () => {
    const store = new MemoryStore();
    const policy = compilePolicy({ dailyLimit: 5 });
    await takeQuota(store.counters, scope, policy, now);
    await takeQuota(store.counters, scope, policy, now);
    expect(await dailyQuotaLeft(store.counters, scope, policy, now)).toEqual({ remaining: 3, limit: 5, resetsAt: nextMidnight });
    expect(await dailyQuotaLeft(store.counters, scope, compilePolicy({}), now)).toBeUndefined();
  });
});
