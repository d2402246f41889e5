import { domainToASCII, domainToUnicode } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { normalizeDomain } from 'nodemailer/lib/shared';
import { ValidationError } from '../errors/validation-error.js';
import { quotable } from './storable-text.js';

/** An address in the one structured form everything downstream uses (policy, suppression, envelope, audit, status). */
export interface ParsedAddress {
  /** Display name, or undefined. */
  name: string | undefined;
  /**
   * The wire form: exactly what goes into `RCPT TO` / `MAIL FROM`. The local part is kept as given (some servers
   * treat it as case-sensitive); the domain is UTS #46-mapped and lower-cased the way nodemailer maps it, as an
   * A-label (`xn--…`), or as a U-label when the local part is non-ASCII (SMTPUTF8, where nodemailer keeps UTF-8).
   */
  address: string;
  /** The domain as an ASCII A-label, lower-cased (`xn--bcher-kva.example`): the form to compare in policy and suppression lists. */
  domain: string;
}

/** What callers may pass for one address. */
export type AddressInput = string | { name?: string; address: string };
/** One address, a comma-separated list, or an array of either. */
export type AddressListInput = AddressInput | readonly AddressInput[];

const MAX_ADDRESS_LENGTH = 254;
const MAX_LOCAL_PART_LENGTH = 64;
const MAX_DOMAIN_LENGTH = 253;
/** Longest address-list string parsed at all; checked before any pattern or parser sees the text. */
export const MAX_ADDRESS_LIST_LENGTH = 64 * 1024;
const MAX_DISPLAY_NAME_LENGTH = 998;

// Invisible and formatting characters (zero-width, bidi controls, soft hyphen, fillers, variation selectors),
// controls, private-use, unassigned and any space: UTS #46 drops or maps several of them, so the address a
// reader sees, the one we validate and the one nodemailer puts in RCPT TO would differ. Refused, never mapped.
const INVISIBLE_IN_ADDRESS = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Z}\p{Default_Ignorable_Code_Point}]/u;
// In a display name, joiners (emoji sequences, Indic scripts) and spaces are legitimate; controls, lone surrogates
// and the bidi controls that reorder what a reader sees (`‮` spoofing) are not.
const FORBIDDEN_IN_NAME = /[\p{Cc}\p{Cs}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/u;
const LINE_BREAK = /[\r\n]/;
// Printable characters outside the RFC 5322 specials; non-ASCII is allowed (SMTPUTF8). With the dot rules below
// this is exactly nodemailer's dot-atom, so nodemailer never quotes (and so never changes) a local part we accept.
const LOCAL_PART = /^[^\s@<>()[\]\\,;:"]+$/u;
// Characters a domain may hold before mapping: none of the specials, and none that the WHATWG host parser in the
// mapping would treat as a URL delimiter.
const RAW_DOMAIN = /^[^\s@<>()[\]\\,;:"'!#$%&*+/=?^`{|}~]+$/u;
const ASCII_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const NUMERIC_LABEL = /^[0-9]+$/;
const ADDRESS_LITERAL = /^\[(?:IPv6:[0-9a-f:.]+|\d{1,3}(?:\.\d{1,3}){3})\]$/i;
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * Parses one address, a comma-separated list, or an array of either, into `ParsedAddress`es in their wire form.
 * Throws a `ValidationError` naming `field` (and the index within it) for a malformed address, a line break, or an
 * invisible or formatting character.
 */
export function parseAddressList(input: AddressListInput | undefined, field: string): ParsedAddress[] {
  if (input === undefined) return [];
  const items: readonly AddressInput[] = Array.isArray(input) ? input : [input as AddressInput];
  const out: ParsedAddress[] = [];
  items.forEach((item, index) => {
    const where = Array.isArray(input) ? `${field}[${index}]` : field;
    if (typeof item === 'string') parseAddressString(item, where, out);
    else if (item && typeof item === 'object' && typeof item.address === 'string') {
      if (item.name !== undefined && typeof item.name !== 'string') throw ValidationError.of(`${where}.name`, 'must be a string');
      const name = item.name === undefined ? undefined : checkDisplayName(item.name, `${where}.name`);
      if (item.address.length > MAX_ADDRESS_LENGTH) throw tooLong(`${where}.address`, item.address);
      if (LINE_BREAK.test(item.address)) throw ValidationError.of(`${where}.address`, 'must not contain a line break (CR or LF)');
      // Only ASCII blanks are trimmed: String#trim would also drop U+FEFF and U+3000, which are refused instead.
      out.push(toWireAddress(name?.trim() || undefined, trimAsciiBlanks(item.address), `${where}.address`, item.address));
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

/** The address for people to read: the domain as Unicode (`ada@bücher.example`), never used on the wire. */
export function toDisplayAddress(address: ParsedAddress): string {
  const at = address.address.lastIndexOf('@');
  if (address.domain.startsWith('[')) return address.address;
  return `${address.address.slice(0, at)}@${domainToUnicode(address.domain) || address.domain}`;
}

function parseAddressString(item: string, where: string, out: ParsedAddress[]): void {
  if (item.length > MAX_ADDRESS_LIST_LENGTH) {
    throw ValidationError.of(where, `is ${item.length} characters long; an address list may be at most ${MAX_ADDRESS_LIST_LENGTH} (pass an array instead)`);
  }
  // addressparser drops some characters (a U+FEFF, a bidi control) silently; what it would hide is refused first.
  // One scan on the common path: the pattern covers CR and LF, which are told apart only once it matched.
  const hidden = FORBIDDEN_IN_NAME.exec(item);
  if (hidden) {
    if (LINE_BREAK.test(item)) throw ValidationError.of(where, 'must not contain a line break (CR or LF)');
    throw ValidationError.of(where, `"${quotable(item)}" contains ${describeCharacter(hidden[0])}, a control or bidi character; remove it`);
  }
  const parsed = addressparser(item, { flatten: true });
  if (parsed.length === 0) throw ValidationError.of(where, `"${quotable(item)}" is not an email address`);
  // addressparser folds what follows `<address>` into the display name (`<a@x.com> b@y.com` is one recipient named
  // "b@y.com"): a recipient the caller wrote would vanish without an error.
  if (item.includes('>') && textAfterAngleAddress(item)) {
    throw ValidationError.of(where, `"${quotable(item)}" has text after <address>; write each recipient as Name <name@example.com>, separated by commas`);
  }
  for (const entry of parsed) {
    // addressparser reads `a b@x.com` as name "a" and `a@exa mple.com` as a@exa: guesses we refuse.
    if (entry.name && !item.includes('<')) {
      throw ValidationError.of(where, `"${quotable(item)}" is not a valid email address; write a display name as Name <name@example.com>`);
    }
    const name = entry.name ? checkDisplayName(entry.name, where) : undefined;
    out.push(toWireAddress(name, entry.address ?? '', where, item));
  }
}

/** True when, outside quotes and comments, something other than a separator follows a `>`: one linear scan. */
function textAfterAngleAddress(item: string): boolean {
  let quoted = false;
  let comment = false;
  let afterAngle = false;
  for (let i = 0; i < item.length; i++) {
    const c = item[i]!;
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (comment) {
      if (c === ')') comment = false;
    } else if (c === '(') comment = true;
    else if (afterAngle) {
      if (c === ',' || c === ';') afterAngle = false;
      else if (c !== ' ' && c !== '\t') return true;
    } else if (c === '"') quoted = true;
    else if (c === '>') afterAngle = true;
  }
  return false;
}

function checkDisplayName(name: string, where: string): string {
  if (name.length > MAX_DISPLAY_NAME_LENGTH) {
    throw ValidationError.of(where, `has a display name of ${name.length} characters; the most is ${MAX_DISPLAY_NAME_LENGTH}`);
  }
  const bad = FORBIDDEN_IN_NAME.exec(name);
  if (bad) {
    if (LINE_BREAK.test(name)) throw ValidationError.of(where, 'must not contain a line break (CR or LF)');
    throw ValidationError.of(where, `has ${describeCharacter(bad[0])} in its display name; remove it (controls and bidi overrides are not allowed)`);
  }
  return name;
}

/**
 * Checks one `local@domain` and returns it as nodemailer will send it. The domain goes through nodemailer's own
 * `normalizeDomain` (the same function its envelope uses), so the address we record cannot differ from `RCPT TO`.
 */
function toWireAddress(name: string | undefined, address: string, where: string, original: string): ParsedAddress {
  const invalid = (why: string): ValidationError =>
    ValidationError.of(where, `"${quotable(original)}" is not a valid email address: ${why} (expected name@example.com)`);
  if (address.length > MAX_ADDRESS_LENGTH) throw tooLong(where, original);
  const invisible = INVISIBLE_IN_ADDRESS.exec(address);
  if (invisible) {
    throw ValidationError.of(where, `"${quotable(original)}" contains ${describeCharacter(invisible[0])}, an invisible or formatting character; retype the address without it`);
  }
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) throw invalid('it needs a local part, an @ and a domain');
  const local = address.slice(0, at);
  const rawDomain = address.slice(at + 1);
  if (local.length > MAX_LOCAL_PART_LENGTH || !LOCAL_PART.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    throw invalid('the part before @ has a character or dot that is not allowed');
  }
  if (ADDRESS_LITERAL.test(rawDomain)) {
    const literal = rawDomain.toLowerCase();
    return { name, address: `${local}@${normalizeDomain(rawDomain, false)}`, domain: literal };
  }
  if (!RAW_DOMAIN.test(rawDomain)) throw invalid('the domain has a character that is not allowed');
  const domain = mapDomain(rawDomain);
  if (domain === undefined) throw invalid('the domain is not a valid internationalized domain name');
  const labels = domain.split('.');
  // A dotless domain is never routable on the internet; `localhost` is kept for local setups.
  if (labels.length < 2 && domain !== 'localhost') throw invalid('the domain needs a dot, as in example.com');
  if (domain.length > MAX_DOMAIN_LENGTH || !labels.every((label) => ASCII_LABEL.test(label))) throw invalid('the domain has an empty, over-long or malformed label');
  // The host parser reads a domain ending in a number as an IPv4 address (`a@1.2.3` -> 1.2.0.3); an IP address
  // belongs in brackets.
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) throw invalid('an IP address must be written in brackets, as in name@[192.0.2.1]');
  // nodemailer keeps the domain in UTF-8 when the local part already needs SMTPUTF8; the same test decides here.
  const wireDomain = NON_ASCII.test(local) ? normalizeDomain(rawDomain, true) : domain;
  if (local.length + 1 + domain.length > MAX_ADDRESS_LENGTH) throw tooLong(where, original);
  return { name, address: `${local}@${wireDomain}`, domain };
}

/**
 * The A-label form nodemailer will send, or undefined when UTS #46 rejects the domain. nodemailer falls back to
 * plain Punycode for what the mapping rejects (`xn--zz` stays as written), so the mapping's own verdict decides.
 */
/**
 * Mapped domains, by the domain as written: mail goes to few domains, and the mapping (UTS #46, twice) was the
 * costliest step of parsing an address. Bounded: cleared whole when full, so a stream of new domains cannot grow it.
 */
const mappedDomains = new Map<string, string | undefined>();
const MAX_MAPPED_DOMAINS = 2_000;

function mapDomain(rawDomain: string): string | undefined {
  if (mappedDomains.has(rawDomain)) return mappedDomains.get(rawDomain);
  const mapped = mapDomainUncached(rawDomain);
  if (mappedDomains.size >= MAX_MAPPED_DOMAINS) mappedDomains.clear();
  mappedDomains.set(rawDomain, mapped);
  return mapped;
}

function mapDomainUncached(rawDomain: string): string | undefined {
  if (!domainToASCII(rawDomain)) return undefined;
  try {
    const ascii = normalizeDomain(rawDomain, false);
    return ascii && !NON_ASCII.test(ascii) ? ascii : undefined;
  } catch {
    return undefined;
  }
}

function trimAsciiBlanks(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 0x20 || value.charCodeAt(start) === 0x09)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
  return value.slice(start, end);
}

function tooLong(where: string, original: string): ValidationError {
  return ValidationError.of(where, `"${quotable(original)}" is longer than the ${MAX_ADDRESS_LENGTH} characters an email address may have`);
}

function describeCharacter(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

