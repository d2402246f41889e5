import type { MailStore } from '../store/mail-store.js';
import { type CompiledPolicy, compilePolicy, OPEN_POLICY } from './check-policy.js';
import { DEFAULT_AGENT_POLICY, type Policy, type PolicyScope } from './policy.js';

/**
 * Policies given in code: one per agent id, or a function of the scope (return undefined to fall through to the
 * stored policy and then the default).
 */
export type PoliciesOption = Readonly<Record<string, Policy>> | ((scope: PolicyScope) => Policy | undefined | Promise<Policy | undefined>);

export interface PolicySourceOptions {
  store: MailStore;
  policies?: PoliciesOption | undefined;
  /** For agents with no policy of their own. Default: `DEFAULT_AGENT_POLICY`. */
  defaultPolicy?: Policy | undefined;
  /** How long a stored policy is reused before it is read again; a change made through the service applies at once. Default 5 s. */
  ttlMs?: number | undefined;
}

interface Cached {
  policy: CompiledPolicy;
  until: number;
}

/**
 * Finds the policy an agent acts under: the one given in code for it, else its stored one, else its owner's stored
 * default, else the service's `defaultPolicy`. Compiled once and cached briefly per scope (a send reads it twice).
 */
export class PolicySource {
  private readonly cache = new Map<string, Cached>();
  private readonly fallback: CompiledPolicy;
  private readonly ttlMs: number;

  constructor(private readonly options: PolicySourceOptions) {
    if (options.policies !== undefined && typeof options.policies !== 'function') {
      // Checked now, so a typo in a policy fails at startup rather than on the first send.
      for (const [agentId, policy] of Object.entries(options.policies)) compilePolicy(policy, `policies.${agentId}`);
    }
    this.fallback = compilePolicy(options.defaultPolicy ?? DEFAULT_AGENT_POLICY, 'defaultPolicy');
    this.ttlMs = options.ttlMs ?? 5_000;
  }

  /** One policy for every send (a `createMailer` with `policy`), or none at all (`OPEN_POLICY`). */
  static fixed(policy: Policy | undefined): FixedPolicySource {
    return new FixedPolicySource(policy === undefined ? OPEN_POLICY : compilePolicy(policy, 'policy'));
  }

  async policyFor(scope: PolicyScope): Promise<CompiledPolicy> {
    const key = cacheKey(scope);
    const cached = this.cache.get(key);
    if (cached && cached.until > Date.now()) return cached.policy;
    const policy = await this.find(scope);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { policy, until: Date.now() + this.ttlMs });
    return policy;
  }

  /** Forgets the cached policies of an owner (and agent): after a change saved through the service. */
  invalidate(ownerId: string): void {
    for (const key of [...this.cache.keys()]) if (key.startsWith(`${ownerId}\u0000`)) this.cache.delete(key);
  }

  private async find(scope: PolicyScope): Promise<CompiledPolicy> {
    const given = this.options.policies;
    const inCode =
      typeof given === 'function' ? await given(scope) : scope.agentId !== undefined && Object.hasOwn(given ?? {}, scope.agentId) ? given![scope.agentId] : undefined;
    if (inCode !== undefined) return compilePolicy(inCode, scope.agentId === undefined ? 'policy' : `policies.${scope.agentId}`);
    const stored = this.options.store.policies;
    if (stored) {
      const own = scope.agentId === undefined ? undefined : await stored.get(scope.ownerId, scope.agentId);
      const entry = own ?? (await stored.get(scope.ownerId, undefined));
      if (entry) return compilePolicy(entry.policy, 'policy');
    }
    return this.fallback;
  }
}

/** The same compiled policy for every scope. */
export class FixedPolicySource {
  constructor(private readonly policy: CompiledPolicy) {}

  async policyFor(): Promise<CompiledPolicy> {
    return this.policy;
  }

  invalidate(): void {}
}

export type PolicyLookup = Pick<PolicySource, 'policyFor' | 'invalidate'>;

function cacheKey(scope: PolicyScope): string {
  return `${scope.ownerId}\u0000${scope.agentId ?? ''}`;
}
