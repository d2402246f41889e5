import ipaddr from 'ipaddr.js';
import { isbot } from 'isbot';
import type { MachineReason } from './tracking-types.js';

/** How the handler tells machines from people. */
export interface MachineRules {
  /** A hit this soon after the message was sent is a scanner at the receiving server. Default 5 s. */
  minMsAfterSend?: number;
  /** A click on another link of the same message this soon after the last is a scanner following every link. Default 2 s. */
  burstWindowMs?: number;
}

export interface Hit {
  method: string;
  headers: Headers;
  ip: string | undefined;
  kind: 'open' | 'click' | 'unsubscribe';
  now: Date;
  /** When the message was sent (its record's last update), if known. */
  sentAt: Date | undefined;
  /** For a click: whether another link of this message was clicked within the burst window. */
  otherLinkJustClicked: boolean;
}

// Apple Mail Privacy Protection fetches every image through Apple's proxies with this bare user agent.
const APPLE_PROXY_USER_AGENT = 'Mozilla/5.0';
const APPLE_NETWORK = ipaddr.parseCIDR('17.0.0.0/8');

/** Why a hit is a machine's, or undefined when it looks like a person. The first rule that matches names it. */
export function machineReason(hit: Hit, rules: MachineRules = {}): MachineReason | undefined {
  if (hit.method === 'HEAD') return 'head_request';
  const purpose = `${hit.headers.get('sec-purpose') ?? ''} ${hit.headers.get('purpose') ?? ''} ${hit.headers.get('x-moz') ?? ''} ${hit.headers.get('x-purpose') ?? ''}`;
  if (/\b(?:prefetch|preview)\b/i.test(purpose)) return 'prefetch';
  const userAgent = hit.headers.get('user-agent') ?? '';
  if (userAgent.includes('GoogleImageProxy')) return 'google_image_proxy';
  if (userAgent.trim() === APPLE_PROXY_USER_AGENT || inAppleNetwork(hit.ip)) return 'apple_privacy_proxy';
  if (userAgent.trim() === '' || isbot(userAgent)) return 'bot_user_agent';
  if (hit.sentAt && hit.now.getTime() - hit.sentAt.getTime() < (rules.minMsAfterSend ?? 5_000)) return 'too_soon_after_delivery';
  if (hit.kind === 'click' && hit.otherLinkJustClicked) return 'all_links_at_once';
  return undefined;
}

function inAppleNetwork(ip: string | undefined): boolean {
  if (!ip || !ipaddr.isValid(ip)) return false;
  let address = ipaddr.parse(ip);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) address = (address as ipaddr.IPv6).toIPv4Address();
  return address.kind() === 'ipv4' && address.match(APPLE_NETWORK);
}

/** The client address with its host part cut off (IPv4 /24, IPv6 /48): enough to tell networks apart, not people. */
export function truncateIp(ip: string | undefined): string | undefined {
  if (!ip || !ipaddr.isValid(ip)) return undefined;
  let address = ipaddr.parse(ip);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) address = (address as ipaddr.IPv6).toIPv4Address();
  if (address.kind() === 'ipv4') {
    const [a, b, c] = address.toByteArray();
    return `${a}.${b}.${c}.0`;
  }
  const bytes = address.toByteArray().map((byte, i) => (i < 6 ? byte : 0));
  return ipaddr.fromByteArray(bytes).toString();
}
