import { ValidationError } from '../errors/validation-error.js';
import { type ParsedAddress, parseAddress } from '../message/address.js';

/**
 * A compiled list of address rules (`ada@example.com`, `@example.com`, `*.example.com`), matched against the wire
 * form of an address: its A-label domain and lower-cased local part. Built once per policy, O(labels) per match.
 */
export class AddressRules {
  private readonly addresses = new Set<string>();
  private readonly domains = new Set<string>();
  /** `*.example.com` is kept as `example.com`: any domain ending in `.example.com` matches. */
  private readonly parents = new Set<string>();

  private constructor(readonly rules: readonly string[]) {}

  /** Compiles `rules`; a malformed rule throws a `ValidationError` naming `field[i]`. */
  static compile(rules: readonly unknown[], field: string): AddressRules {
    const compiled = new AddressRules(rules.map(String));
    rules.forEach((rule, index) => compiled.add(rule, `${field}[${index}]`));
    return compiled;
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  matches(address: ParsedAddress): boolean {
    if (this.domains.has(address.domain)) return true;
    if (this.addresses.size && this.addresses.has(addressKey(address))) return true;
    if (this.parents.size) {
      for (let dot = address.domain.indexOf('.'); dot !== -1; dot = address.domain.indexOf('.', dot + 1)) {
        if (this.parents.has(address.domain.slice(dot + 1))) return true;
      }
    }
    return false;
  }

  private add(rule: unknown, field: string): void {
    if (typeof rule !== 'string' || rule.length === 0 || rule.length > 320) {
      throw ValidationError.of(field, 'must be an address (ada@example.com), a domain (@example.com) or its subdomains (*.example.com)');
    }
    if (rule.startsWith('*.')) this.parents.add(ruleDomain(rule.slice(2), field));
    else if (rule.startsWith('@')) this.domains.add(ruleDomain(rule.slice(1), field));
    else if (rule.slice(0, rule.lastIndexOf('@')).includes('*')) {
      // `*` is a legal local-part character, so `*@example.com` would be one literal mailbox: a block list that blocks nothing.
      const domain = rule.slice(rule.lastIndexOf('@') + 1);
      throw ValidationError.of(field, `"${rule}" is not a pattern: write @${domain} for every address at that domain, or *.${domain} for its subdomains`);
    } else this.addresses.add(addressKey(parseAddress(rule, field)));
  }
}

/** What two spellings of one mailbox share: the lower-cased local part and the A-label domain. */
export function addressKey(address: ParsedAddress): string {
  const at = address.address.lastIndexOf('@');
  return `${address.address.slice(0, at).toLowerCase()}@${address.domain}`;
}

/** A rule's domain in the form addresses are compared in, parsed the way an address's domain is. */
function ruleDomain(domain: string, field: string): string {
  // The address parser's domain rules refuse `*` and the rest, so `*.*.example.com` cannot read broader than it is.
  try {
    return parseAddress(`rule@${domain}`, field).domain;
  } catch {
    throw ValidationError.of(field, `"${domain}" is not a domain such as example.com`);
  }
}
