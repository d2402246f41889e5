import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { copyConfigSource } from '../config/smtp-config-source.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { SmtpError } from '../errors/smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';

/**
 * Which hosts a user-supplied SMTP config may reach. By default only public addresses: a user of a multi-tenant
 * service must not make it connect to its own loopback, private network or a cloud metadata endpoint.
 */
export interface HostPolicy {
  /** Allow loopback, private, link-local and every other non-public address (a deployment for one trusted team). Default false. */
  allowPrivate?: boolean;
  /** Host names (compared case-insensitively) or IP addresses allowed whatever they resolve to or are, e.g. an internal relay. */
  allowHosts?: readonly string[];
}

/** `dns.promises.lookup` with `{ all: true }`, or a stand-in for it (tests, a resolver of your own). */
export type LookupFn = (hostname: string, options: { all: true }) => Promise<readonly { address: string; family: number }[]>;

/** Where to connect: the address that was checked, and the name the server's certificate must be for. */
export interface CheckedHost {
  address: string;
  /** The host name as entered, for TLS SNI and the certificate check; undefined when the host is an IP address. */
  servername: string | undefined;
}

/**
 * Looks `host` up once and checks every address it resolves to against `policy`. Returns the first address, to connect
 * to instead of the name, so that DNS answering differently between check and connect (rebinding) cannot move the
 * connection; the name comes back as `servername` so TLS still verifies the certificate against it.
 *
 * A name with any refused address is refused, not narrowed to its public ones: mixing public and private answers is
 * how a rebinding attack looks, and a real mail server has no reason to. Throws `ValidationError` (field `host`)
 * naming the kind of address refused and the option that allows it, never the address a name resolved to (that
 * would let users map the internal network); `SmtpError` `SMTP_TRANSIENT` when DNS did not answer.
 */
export async function checkSmtpHost(host: string, policy: HostPolicy, options: { lookup?: LookupFn } = {}): Promise<CheckedHost> {
  const name = host.trim().replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(name) !== 0;
  const addresses = literal ? [name] : await lookupAll(name, options.lookup ?? dnsLookup);
  const allowed = allowList(policy.allowHosts ?? []);
  if (!allowed.names.has(hostKey(name))) {
    for (const address of addresses) {
      if (policy.allowPrivate || allowed.addresses.has(addressKey(address))) continue;
      const refused = classifyAddress(address);
      if (refused !== undefined) throw refusal(host, name, literal, refused);
    }
  }
  return { address: addresses[0]!, servername: literal ? undefined : name.replace(/\.$/, '') };
}

/**
 * What kind of non-public address `address` is (`"a loopback address"`), or undefined for a public unicast one.
 * IPv4-mapped IPv6 and NAT64 (64:ff9b::/96) addresses are judged by the IPv4 address inside them: through NAT64 an
 * IPv6-only network reaches every public IPv4 server, and must not reach a private one.
 */
export function classifyAddress(address: string): string | undefined {
  if (!isIP(address)) return 'not an IP address';
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip.match(NAT64) || (ip as ipaddr.IPv6).isIPv4MappedAddress())) {
    ip = ipaddr.fromByteArray(ip.toByteArray().slice(12));
  }
  const normalized = ip.toNormalizedString();
  if (METADATA.has(normalized)) return 'a cloud metadata address';
  const range = ip.range();
  if (range === 'unicast') return ip.kind() === 'ipv6' && !ip.match(GLOBAL_UNICAST) ? 'an unassigned IPv6 address' : undefined;
  return RANGE_NAMES[range] ?? `a special-purpose address (${range})`;
}

/** The server, connecting to the checked address, with TLS checking the certificate against the name entered. */
export function connectToCheckedHost(server: SmtpServerConfig, checked: CheckedHost): SmtpServerConfig {
  const pinned: SmtpServerConfig = { ...server, host: checked.address };
  if (checked.servername !== undefined) pinned.tls = { ...server.tls, servername: checked.servername };
  // The config's source (a stored account) stays, so TLS mistakes are still explained in its own fields.
  return copyConfigSource(server, pinned);
}

const NAT64 = ipaddr.parseCIDR('64:ff9b::/96');
const GLOBAL_UNICAST = ipaddr.parseCIDR('2000::/3');
const METADATA = new Set(['169.254.169.254', 'fd00:ec2:0:0:0:0:0:254', '100.100.100.200', '168.63.129.16'].map((a) => ipaddr.parse(a).toNormalizedString()));

/** ipaddr.js's range names as a message says them; a range not listed is named as it is. */
const RANGE_NAMES: Readonly<Record<string, string>> = {
  unspecified: 'an unspecified address (0.0.0.0, ::)',
  broadcast: 'a broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a carrier-grade NAT address (100.64.0.0/10)',
  private: 'a private address',
  uniqueLocal: 'a private (unique local) IPv6 address',
  reserved: 'a reserved address',
  rfc6052: 'a local-use NAT64 address',
  rfc6145: 'an IPv4-translated address',
  '6to4': 'a 6to4 address',
  teredo: 'a Teredo address',
  benchmarking: 'a benchmarking address',
};

/** Looks the name up, turning "no such host" into a ValidationError of `host` and other DNS failures into a transient SmtpError. */
async function lookupAll(name: string, lookup: LookupFn): Promise<string[]> {
  let answers: readonly { address: string }[];
  try {
    answers = await lookup(name, { all: true });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') throw ValidationError.of('host', `"${name}" is not a known host name: check it for typos`);
    throw new SmtpError('SMTP_TRANSIENT', `The SMTP host "${name}" could not be looked up (${typeof code === 'string' ? code : 'no answer'}): DNS did not answer; try again later.`, { smtpCode: 'EDNS' }, { retryable: true, cause: error });
  }
  if (answers.length === 0) throw ValidationError.of('host', `"${name}" is not a known host name: check it for typos`);
  return answers.map((a) => a.address);
}

function allowList(entries: readonly string[]): { names: Set<string>; addresses: Set<string> } {
  const names = new Set<string>();
  const addresses = new Set<string>();
  for (const entry of entries) {
    const bare = entry.trim().replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare)) addresses.add(addressKey(bare));
    else names.add(hostKey(bare));
  }
  return { names, addresses };
}

const hostKey = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** One spelling per address: `::ffff:127.0.0.1` and `127.0.0.1` match, as do `::1` and `0:0:0:0:0:0:0:1`. */
const addressKey = (address: string): string => (isIP(address) ? ipaddr.process(address).toNormalizedString() : address);

function refusal(host: string, name: string, literal: boolean, kind: string): ValidationError {
  // A literal address is the user's own input, so it may be repeated; what a name resolved to is not said.
  const what = literal ? `${name} is ${kind}` : `"${host.trim()}" resolves to ${kind}`;
  return ValidationError.of(
    'host',
    `${what}, which an SMTP config may not reach: use the mail server's public host name. ` +
      `An operator who means to allow it sets hosts: { allowPrivate: true } or lists the host in hosts.allowHosts (storedCredentials options).`,
  );
}
