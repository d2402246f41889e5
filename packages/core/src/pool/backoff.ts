export interface BackoffOptions {
  /** First backoff after a transient failure, in ms. Default: 1000. */
  baseMs?: number;
  /** Longest transient backoff, in ms. Default: 300000 (5 minutes). */
  maxMs?: number;
  /** First backoff after an auth or TLS failure, in ms. Default: 60000. */
  authBaseMs?: number;
  /** Longest auth backoff, in ms. Default: 3600000 (1 hour). */
  authMaxMs?: number;
}

export type ResolvedBackoff = Required<BackoffOptions>;

export const DEFAULT_BACKOFF: ResolvedBackoff = { baseMs: 1_000, maxMs: 300_000, authBaseMs: 60_000, authMaxMs: 3_600_000 };

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so servers that failed
 * together do not come back in lockstep but never sooner than half the nominal delay.
 */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const nominal = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(nominal / 2 + (nominal / 2) * random());
}
