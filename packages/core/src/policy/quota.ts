import { PolicyError } from '../errors/policy-error.js';
import type { CounterStore } from '../store/mail-store.js';
import type { CompiledPolicy } from './check-policy.js';
import type { PolicyScope } from './policy.js';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
/** The limit a refund is added under: giving quota back is never refused. */
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * Gives back what `takeQuota` took: for a message that was then refused, or already known (a replayed key). `units`
 * (default: all it took) gives back part of a batch's; call it once.
 */
export type QuotaRefund = (units?: number) => Promise<void>;

const dailyKey = (scope: PolicyScope) => `policy:daily:${scope.agentId ?? ''}`;
const minuteKey = (scope: PolicyScope) => `policy:minute:${scope.agentId ?? ''}`;
/** The UTC day, `2026-11-29`: the daily quota resets at 00:00 UTC. */
const dayWindow = (now: Date) => now.toISOString().slice(0, 10);
const minuteWindow = (now: Date) => now.toISOString().slice(0, 16);
const nextDay = (now: Date) => new Date(Math.floor(now.getTime() / DAY_MS) * DAY_MS + DAY_MS);
const nextMinute = (now: Date) => new Date(Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS + MINUTE_MS);

/**
 * Takes `count` messages (one, or a batch's) from the agent's daily and per-minute quotas, atomically in the store
 * (so the limits hold across every process sharing it), all or none. A refusal takes nothing: a per-minute refusal
 * gives the daily units back. Returns how to give them back.
 */
export async function takeQuota(counters: CounterStore, scope: PolicyScope, policy: CompiledPolicy, now = new Date(), count = 1): Promise<QuotaRefund> {
  const taken: Array<[string, string]> = [];
  const refund: QuotaRefund = async (units = count) => {
    if (units <= 0) return;
    for (const [key, window] of taken.splice(0)) await counters.increment(scope.ownerId, key, window, -Math.min(units, count), NO_LIMIT);
  };
  if (policy.dailyLimit !== undefined) {
    const window = dayWindow(now);
    const day = await counters.increment(scope.ownerId, dailyKey(scope), window, count, policy.dailyLimit);
    if (!day.allowed) {
      const resetsAt = nextDay(now);
      throw new PolicyError(
        'POLICY_DAILY_LIMIT',
        `This agent has used its ${policy.dailyLimit} emails for today (sent, queued or awaiting approval). Nothing was sent. The limit resets at ${resetsAt.toISOString()}; send then, or tell the user.`,
        { retryAt: resetsAt },
      );
    }
    taken.push([dailyKey(scope), window]);
  }
  if (policy.perMinuteLimit !== undefined) {
    const window = minuteWindow(now);
    let minute: { allowed: boolean };
    try {
      minute = await counters.increment(scope.ownerId, minuteKey(scope), window, count, policy.perMinuteLimit);
    } catch (err) {
      // The store failed between the two counters: the daily units go back before the error does.
      await refund().catch(() => undefined);
      throw err;
    }
    if (!minute.allowed) {
      await refund();
      const at = nextMinute(now);
      throw new PolicyError(
        'POLICY_RATE_LIMIT',
        `This agent may send ${policy.perMinuteLimit} emails a minute and has used them. Nothing was sent. Send it again after ${at.toISOString()}.`,
        { retryAt: at },
      );
    }
    taken.push([minuteKey(scope), window]);
  }
  return refund;
}

/**
 * Gives back one message of the agent's daily quota, taken on the day of `acceptedAt`: for a message that was then
 * rejected by a human, expired, cancelled, or refused right before sending. Nothing when the policy has no daily
 * limit (nothing was counted); the store keeps the counter at 0 or above.
 */
export async function refundDailyQuota(counters: CounterStore, scope: PolicyScope, policy: CompiledPolicy, acceptedAt: Date): Promise<void> {
  if (policy.dailyLimit === undefined) return;
  await counters.increment(scope.ownerId, dailyKey(scope), dayWindow(acceptedAt), -1, NO_LIMIT);
}

/** What is left of the agent's daily quota, for the tool descriptions; undefined when it has no daily limit. */
export async function dailyQuotaLeft(
  counters: CounterStore,
  scope: PolicyScope,
  policy: CompiledPolicy,
  now = new Date(),
): Promise<{ remaining: number; limit: number; resetsAt: Date } | undefined> {
  if (policy.dailyLimit === undefined) return undefined;
  const used = await counters.get(scope.ownerId, dailyKey(scope), dayWindow(now));
  return { remaining: Math.max(0, policy.dailyLimit - used), limit: policy.dailyLimit, resetsAt: nextDay(now) };
}
