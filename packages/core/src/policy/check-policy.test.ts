import { describe, expect, it } from 'vitest';
import { PolicyError } from '../errors/policy-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { parseAddress, parseAddressList } from '../message/address.js';
import { approvalReason, checkFrom, checkRecipientsAndContent, compilePolicy, OPEN_POLICY, type PolicedMessage } from './check-policy.js';
import type { Policy } from './policy.js';

function message(fields: { to?: string[]; cc?: string[]; bcc?: string[]; from?: string; subject?: string; attachments?: number[] } = {}): PolicedMessage {
  return {
    from: fields.from === undefined ? undefined : parseAddress(fields.from, 'from'),
    to: parseAddressList(fields.to ?? ['ada@example.com'], 'to'),
    cc: parseAddressList(fields.cc ?? [], 'cc'),
    bcc: parseAddressList(fields.bcc ?? [], 'bcc'),
    subject: fields.subject ?? 'Hello',
    attachments: (fields.attachments ?? []).map((size) => ({ size })),
  };
}

/** The error `run` throws; nothing thrown fails the test. */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, nothing was thrown');
}

function policyErrorOf(run: () => unknown): PolicyError {
  const err = thrown(run);
  if (!PolicyError.isInstance(err)) throw err;
  return err;
}

const check = (policy: Policy, fields: Parameters<typeof message>[0]) => checkRecipientsAndContent(message(fields), compilePolicy(policy));

describe('compilePolicy', () => {
  it.each([
    [{ recipients: { allow: ['@example.com', 'not an address'] } }, 'policy.recipients.allow[1]'],
    [{ recipients: { block: ['*.'] } }, 'policy.recipients.block[0]'],
    [{ from: ['ok@example.com', '@'] }, 'policy.from[1]'],
    [{ approval: { outside: ['@example.com', 'x@@y.com'] } }, 'policy.approval.outside[1]'],
    [{ recipients: { allow: [''] } }, 'policy.recipients.allow[0]'],
    [{ dailyLimit: -1 }, 'policy.dailyLimit'],
    [{ perMinuteLimit: 1.5 }, 'policy.perMinuteLimit'],
    [{ maxRecipientsPerMessage: '10' }, 'policy.maxRecipientsPerMessage'],
    [{ recipient: { allow: [] } }, 'policy'],
    [{ approval: { when: 'always' } }, 'policy.approval.when'],
  ])('refuses %j naming %s', (input, field) => {
    const err = thrown(() => compilePolicy(input));
    expect(ValidationError.isInstance(err)).toBe(true);
    expect((err as ValidationError).message).toContain(field);
  });

  it('uses the field prefix it is given', () => {
    const err = thrown(() => compilePolicy({ recipients: { allow: ['bad rule'] } }, 'policies.agent-1'));
    expect((err as ValidationError).field).toBe('policies.agent-1.recipients.allow[0]');
  });

  it('fills the defaults: may send, no attachment caps without an attachments key, 10 files and 10 MiB with one, 24 h approval expiry', () => {
    const p = compilePolicy({});
    expect([p.maySend, p.allow, p.block, p.from]).toEqual([true, undefined, undefined, undefined]);
    expect(p.attachments).toEqual({ maxCount: Infinity, maxTotalBytes: Infinity });
    expect(compilePolicy({ attachments: {} }).attachments).toEqual({ maxCount: 10, maxTotalBytes: 10 * 1024 * 1024, directory: undefined });
    expect(p.approval.expiresAfterMs).toBe(24 * 60 * 60 * 1000);
    // A mailer without a policy takes as many attachments as its size limit allows.
    expect(() => checkRecipientsAndContent(message({ attachments: Array.from({ length: 50 }, () => 1_000_000) }), OPEN_POLICY)).not.toThrow();
  });
});

describe('reply-to chosen by the agent', () => {
  it('is held to the recipient rules: replies would carry the thread to it', () => {
    const policy = compilePolicy({ recipients: { allow: ['@example.com'] } });
    const replyTo = parseAddressList('attacker@evil.test', 'replyTo');
    const err = thrown(() => checkRecipientsAndContent({ ...message(), replyTo }, policy));
    expect(err).toMatchObject({ code: 'POLICY_RECIPIENT_NOT_ALLOWED', field: 'replyTo' });
    expect(() => checkRecipientsAndContent({ ...message(), replyTo: parseAddressList('desk@example.com', 'replyTo') }, policy)).not.toThrow();
  });
});

describe('checkRecipientsAndContent', () => {
  it('no allow key allows every address; allow: [] blocks every one', () => {
    expect(() => check({}, { to: ['anyone@anywhere.test'] })).not.toThrow();
    expect(() => check({ recipients: {} }, { to: ['anyone@anywhere.test'] })).not.toThrow();
    const err = policyErrorOf(() => check({ recipients: { allow: [] } }, { to: ['ada@example.com'] }));
    expect(err.code).toBe('POLICY_RECIPIENT_NOT_ALLOWED');
    expect(err.message).toContain('may not send to anyone');
    expect(err.retryable).toBe(false);
    expect(err.retryAt).toBeUndefined();
  });

  it('block beats allow, and names the address and that it is blocked', () => {
    const policy = { recipients: { allow: ['@example.com'], block: ['ceo@example.com'] } };
    expect(() => check(policy, { to: ['ada@example.com'] })).not.toThrow();
    const err = policyErrorOf(() => check(policy, { to: ['CEO@Example.com'] }));
    expect(err.code).toBe('POLICY_RECIPIENT_NOT_ALLOWED');
    expect(err.message).toContain('blocked');
    expect(err.field).toBe('to');
  });

  it('a block list alone blocks only what it lists', () => {
    const policy = { recipients: { block: ['*.attacker.test', '@attacker.test'] } };
    expect(() => check(policy, { to: ['ada@example.com'] })).not.toThrow();
    for (const to of ['x@attacker.test', 'x@eu.attacker.test']) {
      expect(policyErrorOf(() => check(policy, { to: [to] })).code).toBe('POLICY_RECIPIENT_NOT_ALLOWED');
    }
  });

  it.each([
    ['to', { to: ['ada@example.com', 'evil@attacker.test'] }, 'to[1]'],
    ['cc', { cc: ['evil@attacker.test'] }, 'cc'],
    ['bcc', { bcc: ['ada@example.com', 'bob@example.com', 'evil@attacker.test'] }, 'bcc[2]'],
  ])('checks %s and names the field of the refused address', (_list, fields, field) => {
    const err = policyErrorOf(() => check({ recipients: { allow: ['@example.com'] } }, fields));
    expect(err.code).toBe('POLICY_RECIPIENT_NOT_ALLOWED');
    expect(err.field).toBe(field);
    expect(err.message).toContain('evil@attacker.test');
    expect(err.message).toContain('It may send to: @example.com');
  });

  it('maxRecipientsPerMessage counts to + cc + bcc together', () => {
    const policy = { maxRecipientsPerMessage: 3 };
    expect(() => check(policy, { to: ['a@example.com'], cc: ['b@example.com'], bcc: ['c@example.com'] })).not.toThrow();
    const err = policyErrorOf(() => check(policy, { to: ['a@example.com', 'd@example.com'], cc: ['b@example.com'], bcc: ['c@example.com'] }));
    expect(err.code).toBe('POLICY_TOO_MANY_RECIPIENTS');
    expect(err.message).toContain('4 recipients');
    expect(err.message).toContain('at most 3');
  });

  it('maySend: false refuses everything', () => {
    expect(policyErrorOf(() => check({ maySend: false }, {})).code).toBe('POLICY_SEND_DISABLED');
  });

  it('attachments: false refuses any attachment, none is fine', () => {
    expect(() => check({ attachments: false }, {})).not.toThrow();
    const err = policyErrorOf(() => check({ attachments: false }, { attachments: [1] }));
    expect([err.code, err.field]).toEqual(['POLICY_ATTACHMENT_NOT_ALLOWED', 'attachments']);
  });

  it('attachments: counts and total bytes, at the limit allowed, above refused', () => {
    const policy = { attachments: { maxCount: 2, maxTotalBytes: 100 } };
    expect(() => check(policy, { attachments: [50, 50] })).not.toThrow();
    const count = policyErrorOf(() => check(policy, { attachments: [1, 1, 1] }));
    expect(count.code).toBe('POLICY_ATTACHMENT_NOT_ALLOWED');
    expect(count.message).toContain('at most 2');
    const bytes = policyErrorOf(() => check(policy, { attachments: [50, 51] }));
    expect(bytes.code).toBe('POLICY_ATTACHMENT_NOT_ALLOWED');
    expect(bytes.message).toContain('101 bytes');
  });

  it('an attachments object without caps caps at 10 attachments', () => {
    expect(() => check({ attachments: {} }, { attachments: Array(10).fill(1) })).not.toThrow();
    expect(policyErrorOf(() => check({ attachments: {} }, { attachments: Array(11).fill(1) })).code).toBe('POLICY_ATTACHMENT_NOT_ALLOWED');
  });
});

describe('checkFrom', () => {
  const configured = parseAddress('agent@example.com', 'defaults.from');

  it('without a from key, only the configured sender (in any case) is allowed', () => {
    const policy = compilePolicy({});
    expect(() => checkFrom(parseAddress('Agent@EXAMPLE.com', 'from'), configured, policy)).not.toThrow();
    const err = policyErrorOf(() => checkFrom(parseAddress('ceo@example.com', 'from'), configured, policy));
    expect([err.code, err.field]).toEqual(['POLICY_FROM_NOT_ALLOWED', 'from']);
    expect(err.message).toContain('Leave "from" out');
    expect(policyErrorOf(() => checkFrom(parseAddress('agent@example.com', 'from'), undefined, policy)).code).toBe('POLICY_FROM_NOT_ALLOWED');
  });

  it('with from rules, any address they match; from: [] only the configured sender', () => {
    const policy = compilePolicy({ from: ['@example.com', 'news@bücher.example'] });
    expect(() => checkFrom(parseAddress('ceo@example.com', 'from'), configured, policy)).not.toThrow();
    expect(() => checkFrom(parseAddress('news@xn--bcher-kva.example', 'from'), configured, policy)).not.toThrow();
    const err = policyErrorOf(() => checkFrom(parseAddress('ceo@example.com.attacker.test', 'from'), configured, policy));
    expect(err.message).toContain('It may send as: @example.com, news@bücher.example');
    const none = compilePolicy({ from: [] });
    expect(() => checkFrom(configured, configured, none)).not.toThrow();
    expect(policyErrorOf(() => checkFrom(parseAddress('ceo@example.com', 'from'), configured, none)).code).toBe('POLICY_FROM_NOT_ALLOWED');
  });

  it('a mailer without a policy may send as anyone', () => {
    expect(() => checkFrom(parseAddress('anyone@anywhere.test', 'from'), configured, OPEN_POLICY)).not.toThrow();
  });
});

describe('approvalReason', () => {
  const reason = (policy: Policy, fields: Parameters<typeof message>[0] = {}) => approvalReason(message(fields), compilePolicy(policy));

  it('none without approval rules', () => {
    expect(reason({}, { to: ['a@example.com', 'b@example.com'] })).toBeUndefined();
  });

  it('always', () => {
    expect(reason({ approval: { always: true } })).toContain('every email');
  });

  it('outside: any recipient (to, cc or bcc) outside the rules, naming them', () => {
    const policy = { approval: { outside: ['@example.com'] } };
    expect(reason(policy, { to: ['a@example.com'], cc: ['B@EXAMPLE.COM'] })).toBeUndefined();
    expect(reason(policy, { to: ['a@example.com'], bcc: ['x@partner.example'] })).toBe('recipient outside the approved list: x@partner.example');
    expect(reason(policy, { to: ['a@sub.example.com', 'b@other.test'] })).toBe('recipients outside the approved list: a@sub.example.com, b@other.test');
  });

  it('aboveRecipients counts to + cc + bcc', () => {
    const policy = { approval: { aboveRecipients: 2 } };
    expect(reason(policy, { to: ['a@example.com'], cc: ['b@example.com'] })).toBeUndefined();
    expect(reason(policy, { to: ['a@example.com'], cc: ['b@example.com'], bcc: ['c@example.com'] })).toBe('more than 2 recipients (3)');
  });

  it('when: sees a frozen view of the envelope, subject and attachment count, never content', () => {
    const seen: unknown[] = [];
    const policy: Policy = {
      approval: {
        when: (email) => {
          seen.push(email);
          return email.subject.includes('invoice');
        },
      },
    };
    expect(reason(policy, { subject: 'hello', from: 'agent@example.com', to: ['a@bücher.example'], bcc: ['b@example.com'], attachments: [5] })).toBeUndefined();
    expect(reason(policy, { subject: 'your invoice' })).toBe('the policy’s approval rule matched');
    expect(seen[0]).toEqual({ from: 'agent@example.com', recipients: ['a@xn--bcher-kva.example', 'b@example.com'], subject: 'hello', attachmentCount: 1 });
    expect(Object.isFrozen(seen[0])).toBe(true);
  });
});
