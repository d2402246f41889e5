import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/validation-error.js';
import { parseAddress } from '../message/address.js';
import { AddressRules, addressKey } from './address-rules.js';

const rulesOf = (...rules: string[]) => AddressRules.compile(rules, 'policy.recipients.allow');
const matches = (rules: AddressRules, address: string) => rules.matches(parseAddress(address, 'to'));

/** The ValidationError `run` throws; anything else (or nothing) fails the test. */
function validationErrorOf(run: () => unknown): ValidationError {
  try {
    run();
  } catch (err) {
    if (ValidationError.isInstance(err)) return err;
    throw err;
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

describe('AddressRules', () => {
  it.each([
    // [rule, address, matches]
    ['ada@example.com', 'ada@example.com', true],
    ['ada@example.com', 'bob@example.com', false],
    ['ada@example.com', 'ada@sub.example.com', false],
    ['@example.com', 'anyone@example.com', true],
    ['@example.com', 'x@sub.example.com', false],
    ['@example.com', 'x@example.com.attacker.test', false],
    ['@example.com', 'x@notexample.com', false],
    ['*.example.com', 'x@eu.example.com', true],
    ['*.example.com', 'x@a.b.example.com', true],
    ['*.example.com', 'x@example.com', false],
    ['*.example.com', 'x@badexample.com', false],
    ['*.example.com', 'x@example.com.attacker.test', false],
  ])('rule %s vs %s: %s', (rule, address, expected) => {
    expect(matches(rulesOf(rule), address)).toBe(expected);
  });

  it('compares domains and local parts case-insensitively, in rules and in addresses', () => {
    const rules = rulesOf('Boss@Partner.EXAMPLE', '@EXAMPLE.com', '*.Corp.Example');
    expect(matches(rules, 'boss@partner.example')).toBe(true);
    expect(matches(rules, 'BOSS@PARTNER.EXAMPLE')).toBe(true);
    expect(matches(rules, 'Someone@Example.COM')).toBe(true);
    expect(matches(rules, 'x@EU.CORP.EXAMPLE')).toBe(true);
    expect(matches(rules, 'other@partner.example')).toBe(false);
  });

  it.each([
    ['U-label rule', '@bücher.example'],
    ['A-label rule', '@xn--bcher-kva.example'],
    ['upper-case U-label rule', '@BÜCHER.example'],
  ])('an IDN %s matches the address written either way', (_label, rule) => {
    const rules = rulesOf(rule);
    expect(matches(rules, 'ada@bücher.example')).toBe(true);
    expect(matches(rules, 'ada@xn--bcher-kva.example')).toBe(true);
    expect(matches(rules, 'ada@bucher.example')).toBe(false);
  });

  it('an IDN address rule and a *.IDN rule match both spellings', () => {
    expect(matches(rulesOf('ada@bücher.example'), 'ada@xn--bcher-kva.example')).toBe(true);
    expect(matches(rulesOf('ada@xn--bcher-kva.example'), 'ADA@bücher.example')).toBe(true);
    expect(matches(rulesOf('*.bücher.example'), 'x@eu.xn--bcher-kva.example')).toBe(true);
    expect(matches(rulesOf('*.xn--bcher-kva.example'), 'x@xn--bcher-kva.example')).toBe(false);
  });

  it('a confusable domain (Cyrillic а) is not the Latin one', () => {
    expect(matches(rulesOf('@example.com'), 'ok@exаmple.com')).toBe(false);
    expect(matches(rulesOf('ok@example.com'), 'ok@exаmple.com')).toBe(false);
  });

  it.each([
    [['@example.com', ''], 'policy.recipients.allow[1]'],
    [['ok@example.com', 'not an address'], 'policy.recipients.allow[1]'],
    [['@'], 'policy.recipients.allow[0]'],
    [['@example.com', '@exa mple.com'], 'policy.recipients.allow[1]'],
    [['*.'], 'policy.recipients.allow[0]'],
    [['*.*.example.com'], 'policy.recipients.allow[0]'],
    [['*example.com'], 'policy.recipients.allow[0]'],
    [['a@b.com', '@b.com', 'x@@b.com'], 'policy.recipients.allow[2]'],
    [['@example.com\r\nBcc: evil@attacker.test'], 'policy.recipients.allow[0]'],
    [['@exa\u200bmple.com'], 'policy.recipients.allow[0]'],
    [['ok@example.com', 42 as unknown as string], 'policy.recipients.allow[1]'],
    [['x'.repeat(321)], 'policy.recipients.allow[0]'],
  ])('refuses the malformed rule list %j, naming %s', (rules, field) => {
    const error = validationErrorOf(() => AddressRules.compile(rules, 'policy.recipients.allow'));
    expect(error.field).toBe(field);
    expect(error.message).toContain(field);
  });

  it('refuses *@domain, which would be one literal mailbox and block nothing', () => {
    expect(() => AddressRules.compile(['*@competitor.com'], 'policy.recipients.block')).toThrow(/write @competitor\.com .* or \*\.competitor\.com/);
    expect(() => AddressRules.compile(['a*b@competitor.com'], 'policy.recipients.block')).toThrow(ValidationError);
  });

  it('an empty list matches nothing and says it is empty', () => {
    const rules = rulesOf();
    expect(rules.empty).toBe(true);
    expect(matches(rules, 'ada@example.com')).toBe(false);
  });

  it('addressKey lower-cases the local part and uses the A-label domain', () => {
    expect(addressKey(parseAddress('Ada@Bücher.Example', 'to'))).toBe('ada@xn--bcher-kva.example');
  });
});
