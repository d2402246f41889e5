import type { CounterStore } from '../store/mail-store.js';
import type { CompiledPolicy } from './check-policy.js';
import type { PolicyScope } from './policy.js';
import { dailyQuotaLeft } from './quota.js';

const MAX_RULES_SHOWN = 20;

/**
 * The agent's limits as a model reads them in a tool description, so it can plan instead of learning each limit
 * from a refusal: whom it may write to, what is left of today's quota, what waits for approval. Empty when the
 * policy limits nothing a model could run into.
 */
export async function describeLimits(counters: CounterStore, scope: PolicyScope, policy: CompiledPolicy): Promise<string> {
  if (!policy.maySend) return 'This agent may not send email at all.';
  const parts: string[] = [];
  if (policy.allow) parts.push(policy.allow.empty ? 'It may send to nobody' : `It may send only to ${listed(policy.allow.rules)}`);
  if (policy.block && !policy.block.empty) parts.push(`never to ${listed(policy.block.rules)}`);
  if (policy.maxRecipients !== undefined) parts.push(`at most ${policy.maxRecipients} recipients per email`);
  const quota = await dailyQuotaLeft(counters, scope, policy);
  if (quota) parts.push(`${quota.remaining} of ${quota.limit} emails left today (resets ${quota.resetsAt.toISOString()})`);
  if (policy.perMinuteLimit !== undefined) parts.push(`at most ${policy.perMinuteLimit} emails a minute`);
  if (policy.attachments === false) parts.push('no attachments');
  else if (policy.attachments.directory !== undefined) parts.push(`files may be attached by a path inside its attachment folder (up to ${policy.attachments.maxCount} files)`);
  const approval = policy.approval;
  if (approval.always) parts.push('every email waits for a human to approve it before it is sent');
  else {
    if (approval.outside) parts.push(`emails to anyone outside ${listed(approval.outside.rules)} wait for a human's approval`);
    if (approval.aboveRecipients !== undefined) parts.push(`emails to more than ${approval.aboveRecipients} recipients wait for a human's approval`);
    if (approval.when) parts.push('some emails wait for a human’s approval');
  }
  if (!parts.length) return '';
  const [first, ...rest] = parts;
  const sentence = first!.startsWith('It ') ? [first, ...rest].join('; ') : `This agent's limits: ${[first, ...rest].join('; ')}`;
  return `${sentence}.`;
}

function listed(rules: readonly string[]): string {
  const shown = rules.slice(0, MAX_RULES_SHOWN).join(', ');
  return rules.length > MAX_RULES_SHOWN ? `${shown} and ${rules.length - MAX_RULES_SHOWN} more` : shown;
}
