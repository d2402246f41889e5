import { z } from 'zod/v4';
import { PolicyError } from '../errors/policy-error.js';
import type { ParsedAddress } from '../message/address.js';
import type { NormalizedEmail } from '../message/normalize-email.js';
import type { StoredEmail } from '../message/stored-email.js';
import { toValidationError } from '../message/zod-issues.js';
import { AddressRules, addressKey } from './address-rules.js';
import type { Policy, PolicyEmailView } from './policy.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_MAX_ATTACHMENTS = 10;
const DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;
export const DEFAULT_APPROVAL_TTL_MS = DAY_MS;

const rules = z.array(z.string().min(1).max(320)).max(10_000);
const count = z.number().int().min(0).max(1_000_000_000);
const policySchema = z.strictObject({
  maySend: z.boolean().optional(),
  recipients: z.strictObject({ allow: rules.optional(), block: rules.optional() }).optional(),
  maxRecipientsPerMessage: count.optional(),
  dailyLimit: count.optional(),
  perMinuteLimit: count.optional(),
  smtpConfigs: z.array(z.string().min(1).max(256)).max(100).optional(),
  from: rules.optional(),
  attachments: z
    .union([
      z.literal(false),
      z.strictObject({ maxCount: count.optional(), maxTotalBytes: count.optional(), directory: z.string().min(1).max(4096).optional() }),
    ])
    .optional(),
  approval: z
    .strictObject({
      always: z.boolean().optional(),
      outside: rules.optional(),
      aboveRecipients: count.optional(),
      when: z.custom<(email: PolicyEmailView) => boolean>((value) => typeof value === 'function', { error: 'must be a function (email) => boolean' }).optional(),
      expiresAfterMs: z.number().int().min(1_000).max(30 * DAY_MS).optional(),
    })
    .optional(),
});

/** A policy checked and compiled once: rules as sets, defaults filled in. */
export interface CompiledPolicy {
  readonly source: Readonly<Policy>;
  readonly maySend: boolean;
  readonly allow: AddressRules | undefined;
  readonly block: AddressRules | undefined;
  readonly maxRecipients: number | undefined;
  readonly dailyLimit: number | undefined;
  readonly perMinuteLimit: number | undefined;
  readonly smtpConfigs: readonly string[] | undefined;
  /** Undefined: the agent may not choose a sender; `any`: it may choose any (a mailer without a policy). */
  readonly from: AddressRules | 'any' | undefined;
  readonly attachments: false | { maxCount: number; maxTotalBytes: number; directory: string | undefined };
  readonly approval: {
    always: boolean;
    outside: AddressRules | undefined;
    aboveRecipients: number | undefined;
    when: ((email: PolicyEmailView) => boolean) | undefined;
    expiresAfterMs: number;
  };
}

/**
 * Checks a policy's shape and compiles it. `field` prefixes the names in a `ValidationError` (`policy.recipients.allow[2]`).
 * A stored policy cannot hold `approval.when`; code may pass one.
 */
export function compilePolicy(input: unknown, field = 'policy'): CompiledPolicy {
  const parsed = policySchema.safeParse(input ?? {});
  if (!parsed.success) throw toValidationError(parsed.error, field);
  const p = parsed.data;
  const compile = (list: readonly string[] | undefined, name: string) => (list === undefined ? undefined : AddressRules.compile(list, `${field}.${name}`));
  // No `attachments` key imposes nothing (as every missing key); an object without caps gets the default caps.
  const attachments = p.attachments === false ? false : (p.attachments ?? { maxCount: Infinity, maxTotalBytes: Infinity });
  return Object.freeze({
    source: Object.freeze({ ...(input as Policy) }),
    maySend: p.maySend ?? true,
    allow: compile(p.recipients?.allow, 'recipients.allow'),
    block: compile(p.recipients?.block, 'recipients.block'),
    maxRecipients: p.maxRecipientsPerMessage,
    dailyLimit: p.dailyLimit,
    perMinuteLimit: p.perMinuteLimit,
    smtpConfigs: p.smtpConfigs,
    from: compile(p.from, 'from'),
    attachments:
      attachments === false
        ? false
        : {
            maxCount: attachments.maxCount ?? DEFAULT_MAX_ATTACHMENTS,
            maxTotalBytes: attachments.maxTotalBytes ?? DEFAULT_MAX_ATTACHMENT_BYTES,
            directory: attachments.directory,
          },
    approval: {
      always: p.approval?.always ?? false,
      outside: compile(p.approval?.outside, 'approval.outside'),
      aboveRecipients: p.approval?.aboveRecipients,
      when: p.approval?.when,
      expiresAfterMs: p.approval?.expiresAfterMs ?? DEFAULT_APPROVAL_TTL_MS,
    },
  });
}

/** A policy that imposes nothing, `from` included: what a mailer without a policy uses. */
export const OPEN_POLICY: CompiledPolicy = Object.freeze({ ...compilePolicy({}), from: 'any' as const });

/** The parts of a message a policy looks at (a composed email and a stored one both have them). */
export interface PolicedMessage {
  from: ParsedAddress | undefined;
  to: readonly ParsedAddress[];
  cc: readonly ParsedAddress[];
  bcc: readonly ParsedAddress[];
  /**
   * Where replies go, when the agent chose it: held to the recipient rules, since a reply would carry the
   * conversation to that address. Undefined for the configured default.
   */
  replyTo?: readonly ParsedAddress[] | undefined;
  subject: string;
  /** Sizes only: a policy never reads content. */
  attachments: readonly { size: number }[];
}

/**
 * A composed email as the policy sees it. `agentReplyTo`: the reply-to the caller set (not the mailer's default),
 * checked like a recipient.
 */
export function policedComposed(email: NormalizedEmail, agentReplyTo?: readonly ParsedAddress[]): PolicedMessage {
  return policed(email, agentReplyTo, email.attachments.map((a) => ({ size: a.content.length })));
}

/** A stored email as the policy sees it (attachment sizes from their base64 length, without decoding). */
export function policedStored(email: StoredEmail): PolicedMessage {
  return policed(email, undefined, email.attachments.map((a) => ({ size: base64Bytes(a.contentBase64) })));
}

/**
 * Only the parts a policy reads, field by field: a spread of the whole email plus fields gave every message a V8
 * hidden class of its own on Node 20, on the path of every send.
 */
function policed(email: Omit<PolicedMessage, 'replyTo' | 'attachments'>, replyTo: PolicedMessage['replyTo'], attachments: PolicedMessage['attachments']): PolicedMessage {
  return { from: email.from, to: email.to, cc: email.cc, bcc: email.bcc, replyTo, subject: email.subject, attachments };
}

function base64Bytes(base64: string): number {
  const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
  return Math.floor((base64.length * 3) / 4) - padding;
}

/**
 * The checks that need no store: may send, recipients (every envelope address, in wire form), recipients per
 * message, attachments. Throws a `PolicyError` saying what the agent may do instead. Run when a message is
 * accepted and again right before it is sent (the policy may have changed while it waited).
 */
export function checkRecipientsAndContent(message: PolicedMessage, policy: CompiledPolicy): void {
  assertMaySend(policy);
  const lists = [
    ['to', message.to],
    ['cc', message.cc],
    ['bcc', message.bcc],
  ] as const;
  let total = 0;
  for (const [field, list] of lists) {
    total += list.length;
    list.forEach((address, index) => assertRecipientAllowed(address, policy, list.length === 1 ? field : `${field}[${index}]`));
  }
  message.replyTo?.forEach((address, index) => assertRecipientAllowed(address, policy, message.replyTo!.length === 1 ? 'replyTo' : `replyTo[${index}]`));
  if (policy.maxRecipients !== undefined && total > policy.maxRecipients) {
    throw new PolicyError(
      'POLICY_TOO_MANY_RECIPIENTS',
      `This email has ${total} recipients (to, cc and bcc together); this agent may send to at most ${policy.maxRecipients} per email. Nothing was sent; send it to fewer people, or in several emails if the user wants that.`,
      { field: 'to' },
    );
  }
  checkAttachments(message.attachments, policy);
}

/** Refuses everything for an agent whose policy says it may not send. */
export function assertMaySend(policy: CompiledPolicy): void {
  if (!policy.maySend) {
    throw new PolicyError('POLICY_SEND_DISABLED', 'This agent is not allowed to send email. Nothing was sent; ask the user to allow it, or give them the text to send themselves.');
  }
}

function assertRecipientAllowed(address: ParsedAddress, policy: CompiledPolicy, field: string): void {
  const blocked = policy.block?.matches(address) ?? false;
  if (!blocked && (policy.allow === undefined || policy.allow.matches(address))) return;
  const may = policy.allow === undefined ? '' : allowedText(policy.allow);
  throw new PolicyError(
    'POLICY_RECIPIENT_NOT_ALLOWED',
    `This agent may not send to ${address.address}${blocked ? ' (it is on the blocked list)' : ''}. Nothing was sent.${may} Remove that address, or ask the user to allow it.`,
    { field },
  );
}

/** "It may write to: …" with the rules as written, or that it may write to nobody. */
function allowedText(allow: AddressRules): string {
  if (allow.empty) return ' This agent may not send to anyone.';
  const shown = allow.rules.slice(0, 20).join(', ');
  return ` It may send to: ${shown}${allow.rules.length > 20 ? ` and ${allow.rules.length - 20} more` : ''}.`;
}

function checkAttachments(attachments: readonly { size: number }[], policy: CompiledPolicy): void {
  if (attachments.length === 0) return;
  const rules = policy.attachments;
  if (rules === false) {
    throw new PolicyError('POLICY_ATTACHMENT_NOT_ALLOWED', 'This agent may not attach files. Nothing was sent; send the email without attachments, or put the content in the body.', {
      field: 'attachments',
    });
  }
  if (attachments.length > rules.maxCount) {
    throw new PolicyError('POLICY_ATTACHMENT_NOT_ALLOWED', `This email has ${attachments.length} attachments; this agent may attach at most ${rules.maxCount}. Nothing was sent.`, {
      field: 'attachments',
    });
  }
  const total = attachments.reduce((sum, a) => sum + a.size, 0);
  if (total > rules.maxTotalBytes) {
    throw new PolicyError(
      'POLICY_ATTACHMENT_NOT_ALLOWED',
      `The attachments are ${total} bytes together; this agent may attach at most ${rules.maxTotalBytes} bytes per email. Nothing was sent; attach less, or link to the files.`,
      { field: 'attachments' },
    );
  }
}

/**
 * Whether the agent may send as `from`, which it set itself. Without `policy.from` it may set only the sender it
 * would get anyway (`defaultFrom`); with it, any address the rules match.
 */
export function checkFrom(from: ParsedAddress, defaultFrom: ParsedAddress | undefined, policy: CompiledPolicy): void {
  if (policy.from === 'any' || (defaultFrom && addressKey(from) === addressKey(defaultFrom))) return;
  if (policy.from?.matches(from)) return;
  const may = policy.from && !policy.from.empty ? ` It may send as: ${policy.from.rules.slice(0, 20).join(', ')}.` : ' Leave "from" out: the configured sender is used.';
  throw new PolicyError('POLICY_FROM_NOT_ALLOWED', `This agent may not send as ${from.address}. Nothing was sent.${may}`, { field: 'from' });
}

/** Whether the policy holds any message for approval at all (a quick answer before composing anything). */
export function hasApprovalRules(policy: CompiledPolicy): boolean {
  const rule = policy.approval;
  return rule.always || rule.outside !== undefined || rule.aboveRecipients !== undefined || rule.when !== undefined;
}

/** Why this message must wait for a human, or undefined when it may go out. */
export function approvalReason(message: PolicedMessage, policy: CompiledPolicy): string | undefined {
  const rule = policy.approval;
  if (rule.always) return 'the policy asks for approval of every email';
  const recipients = [...message.to, ...message.cc, ...message.bcc];
  if (rule.aboveRecipients !== undefined && recipients.length > rule.aboveRecipients) {
    return `more than ${rule.aboveRecipients} recipients (${recipients.length})`;
  }
  if (rule.outside) {
    const outside = recipients.filter((r) => !rule.outside!.matches(r));
    if (outside.length) return `recipient${outside.length === 1 ? '' : 's'} outside the approved list: ${outside.slice(0, 5).map((r) => r.address).join(', ')}${outside.length > 5 ? ', …' : ''}`;
  }
  if (rule.when?.(viewOf(message))) return 'the policy’s approval rule matched';
  return undefined;
}

function viewOf(message: PolicedMessage): PolicyEmailView {
  return Object.freeze({
    from: message.from?.address ?? '',
    recipients: Object.freeze([...message.to, ...message.cc, ...message.bcc].map((r) => r.address)),
    subject: message.subject,
    attachmentCount: message.attachments.length,
  });
}
