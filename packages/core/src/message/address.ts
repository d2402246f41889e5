import addressparser from 'nodemailer/lib/addressparser';
import { ValidationError } from '../errors/validation-error.js';

/** An address in the one structured form everything downstream uses (policy, envelope, suppression). */
export interface ParsedAddress {
  /** Display name, or undefined. */
  name: string | undefined;
  /** `local@domain` as given (the local part keeps its case; some servers treat it as case-sensitive). */
  address: string;
  /** Lower-cased domain, for policy and suppression checks. */
  domain: string;
}

/** What callers may pass for one address. */
export type AddressInput = string | { name?: string; address: string };
/** One address, a comma-separated list, or an array of either. */
export type AddressListInput = AddressInput | readonly AddressInput[];

const MAX_ADDRESS_LENGTH = 254;
// Printable characters outside the RFC 5322 specials; non-ASCII is allowed (SMTPUTF8 / IDN).
const LOCAL_PART = /^[^\s@<>()[\]\\,;:"\u0000-\u001f\u007f]+$/u;
const DOMAIN_LABEL = /^(?!-)[^\s@<>()[\]\\,;:"'!#$%&*+/=?^`{|}~\u0000-\u001f\u007f.]{1,63}(?<!-)$/u;
const ADDRESS_LITERAL = /^\[(?:IPv6:[0-9a-f:.]+|\d{1,3}(?:\.\d{1,3}){3})\]$/i;
const LINE_BREAK = /[\r\n\u0000]/;

function isValidAddress(address: string): boolean {
  if (address.length > MAX_ADDRESS_LENGTH) return false;
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > 64 || !LOCAL_PART.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    return false;
  }
  if (ADDRESS_LITERAL.test(domain)) return true;
  const labels = domain.split('.');
  // A dotless domain is never routable on the internet; `localhost` is kept for local setups.
  if (labels.length < 2 && domain.toLowerCase() !== 'localhost') return false;
  return labels.every((label) => DOMAIN_LABEL.test(label));
}

/**
 * Parses one address, a comma-separated list, or an array of either, into `ParsedAddress`es. Throws a
 * `ValidationError` naming `field` (and the index within it) for a malformed address or a line break.
 */
export function parseAddressList(input: AddressListInput | undefined, field: string): ParsedAddress[] {
  if (input === undefined) return [];
  const items: readonly AddressInput[] = Array.isArray(input) ? input : [input as AddressInput];
  const out: ParsedAddress[] = [];
  items.forEach((item, index) => {
    const where = Array.isArray(input) ? `${field}[${index}]` : field;
    if (typeof item === 'string') {
      if (LINE_BREAK.test(item)) throw ValidationError.of(where, 'must not contain a line break (CR or LF)');
      const parsed = addressparser(item, { flatten: true });
      if (parsed.length === 0) throw ValidationError.of(where, `"${truncate(item)}" is not an email address`);
      for (const entry of parsed) {
        // addressparser reads `a b@x.com` as name "a" and `a@exa mple.com` as a@exa: guesses we refuse.
        if (entry.name && !item.includes('<')) {
          throw ValidationError.of(where, `"${truncate(item)}" is not a valid email address; write a display name as Name <name@example.com>`);
        }
        out.push(checkAddress(entry.name || undefined, entry.address ?? '', where, item));
      }
    } else if (item && typeof item === 'object' && typeof item.address === 'string') {
      if (item.name !== undefined && typeof item.name !== 'string') throw ValidationError.of(`${where}.name`, 'must be a string');
      if (item.name !== undefined && LINE_BREAK.test(item.name)) {
        throw ValidationError.of(`${where}.name`, 'must not contain a line break (CR or LF)');
      }
      if (LINE_BREAK.test(item.address)) throw ValidationError.of(`${where}.address`, 'must not contain a line break (CR or LF)');
      out.push(checkAddress(item.name?.trim() || undefined, item.address.trim(), `${where}.address`, item.address));
    } else {
      throw ValidationError.of(where, 'must be an email address string or { name, address }');
    }
  });
  return out;
}

/** Parses exactly one address. */
export function parseAddress(input: AddressInput, field: string): ParsedAddress {
  const list = parseAddressList(input, field);
  if (list.length !== 1) throw ValidationError.of(field, `must be exactly one address, got ${list.length}`);
  return list[0]!;
}

function checkAddress(name: string | undefined, address: string, where: string, original: string): ParsedAddress {
  if (!isValidAddress(address)) {
    throw ValidationError.of(where, `"${truncate(original)}" is not a valid email address (expected name@example.com)`);
  }
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  return { name, address, domain };
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
