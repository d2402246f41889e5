import { describe, expect, it } from 'vitest';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { checkSmtpHost, classifyAddress, connectToCheckedHost, type LookupFn } from './host-guard.js';

// Which hosts a user's SMTP config may reach. Real DNS is asked only for `localhost` and the numeric IPv4 forms
// (which the system resolver answers itself); every other name goes through a fake lookup, so nothing leaves the machine.

/** A lookup answering from a table; a name not in it does not exist. Counts the questions. */
function fakeDns(table: Record<string, string[]>): LookupFn & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (hostname: string) => {
    asked.push(hostname);
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(lookup, { asked });
}

const PUBLIC = '93.184.216.34';
const dns = fakeDns({
  'smtp.example.com': [PUBLIC],
  'v6.example.com': ['2606:2800:220:1:248:1893:25c8:1946'],
  'nat64.example.com': ['64:ff9b::5db8:d822'],
  'rebind.example.com': ['127.0.0.1'],
  'mixed.example.com': [PUBLIC, '10.0.0.5'],
  'metadata.example.com': ['169.254.169.254'],
  'internal.example.com': ['10.20.30.40'],
});

const refusedOf = (host: string, options: Parameters<typeof checkSmtpHost>[2] = { lookup: dns }) =>
  checkSmtpHost(host, {}, options).then(
    () => undefined,
    (error: unknown) => error as ValidationError,
  );

describe('checkSmtpHost', () => {
  it('refuses every non-public address, literal or looked up, naming its kind and the option that allows it', async () => {
    const cases: [host: string, kind: RegExp][] = [
      ['127.0.0.1', /a loopback address/],
      ['::1', /a loopback address/],
      ['[::1]', /a loopback address/],
      ['10.1.2.3', /a private address/],
      ['172.16.0.1', /a private address/],
      ['192.168.1.1', /a private address/],
      ['100.64.0.1', /carrier-grade NAT/],
      ['169.254.169.254', /a cloud metadata address/],
      ['fd00:ec2::254', /a cloud metadata address/],
      ['168.63.129.16', /a cloud metadata address/],
      ['169.254.1.1', /a link-local address/],
      ['fe80::1', /a link-local address/],
      ['fc00::1', /unique local/],
      ['::ffff:127.0.0.1', /a loopback address/],
      ['::ffff:10.0.0.1', /a private address/],
      ['64:ff9b::7f00:1', /a loopback address/],
      ['64:ff9b::a9fe:a9fe', /a cloud metadata address/],
      ['64:ff9b:1::1', /NAT64/],
      ['0.0.0.0', /unspecified/],
      ['::', /unspecified/],
      ['255.255.255.255', /broadcast/],
      ['224.0.0.1', /multicast/],
      ['ff02::1', /multicast/],
      ['240.0.0.1', /reserved/],
      ['192.0.2.1', /reserved/],
      ['2001:db8::1', /reserved/],
      ['2002:7f00:1::', /6to4/],
      // Numeric forms net.isIP does not take for addresses; the system resolver turns them into 127.0.0.1.
      ['2130706433', /resolves to a loopback address/],
      ['0x7f.1', /resolves to a loopback address/],
      ['127.1', /resolves to a loopback address/],
      ['017700000001', /resolves to a loopback address/],
      ['localhost', /resolves to a loopback address/],
    ];
    for (const [host, kind] of cases) {
      // Real DNS for these: they never leave the machine.
      const error = await refusedOf(host, {});
      expect({ host, valid: ValidationError.isInstance(error) }).toEqual({ host, valid: true });
      expect(error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'host' });
      expect({ host, message: error!.message }).toMatchObject({ host, message: expect.stringMatching(kind) });
      expect(error!.message).toContain('hosts: { allowPrivate: true }');
      expect(error!.message).toContain('hosts.allowHosts');
    }
  });

  it('refuses a name that resolves to a non-public address, or to a public and a private one, without saying the address', async () => {
    for (const [host, kind] of [
      ['rebind.example.com', 'a loopback address'],
      ['mixed.example.com', 'a private address'],
      ['metadata.example.com', 'a cloud metadata address'],
      ['internal.example.com', 'a private address'],
    ] as const) {
      const error = await refusedOf(host);
      expect(error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'host' });
      expect(error!.message).toMatch(new RegExp(`^host: "${host.replace(/\./g, '\\.')}" resolves to ${kind}, which an SMTP config may not reach`));
      // What an internal name resolves to stays unsaid: the message must not map the network for the user.
      expect(error!.message).not.toMatch(/127\.0\.0\.1|10\.0\.0\.5|169\.254|10\.20\.30\.40|93\.184/);
    }
  });

  it('passes a public address, connecting to it and keeping the name for TLS', async () => {
    expect(await checkSmtpHost('smtp.example.com', {}, { lookup: dns })).toEqual({ address: PUBLIC, servername: 'smtp.example.com' });
    expect(await checkSmtpHost('SMTP.example.com.', {}, { lookup: async () => [{ address: PUBLIC, family: 4 }] })).toEqual({ address: PUBLIC, servername: 'SMTP.example.com' });
    expect(await checkSmtpHost('v6.example.com', {}, { lookup: dns })).toEqual({ address: '2606:2800:220:1:248:1893:25c8:1946', servername: 'v6.example.com' });
    // NAT64 of a public IPv4 address is how an IPv6-only network reaches it.
    expect(await checkSmtpHost('nat64.example.com', {}, { lookup: dns })).toMatchObject({ address: '64:ff9b::5db8:d822' });
    // A literal address is not looked up and has no name for TLS.
    const lookup = fakeDns({});
    expect(await checkSmtpHost(PUBLIC, {}, { lookup })).toEqual({ address: PUBLIC, servername: undefined });
    expect(await checkSmtpHost('[2606:2800:220:1:248:1893:25c8:1946]', {}, { lookup })).toEqual({ address: '2606:2800:220:1:248:1893:25c8:1946', servername: undefined });
    expect(lookup.asked).toEqual([]);
  });

  it('allows non-public addresses with allowPrivate, and listed hosts or addresses with allowHosts', async () => {
    expect(await checkSmtpHost('127.0.0.1', { allowPrivate: true })).toEqual({ address: '127.0.0.1', servername: undefined });
    expect(await checkSmtpHost('rebind.example.com', { allowPrivate: true }, { lookup: dns })).toEqual({ address: '127.0.0.1', servername: 'rebind.example.com' });
    expect(await checkSmtpHost('mixed.example.com', { allowPrivate: true }, { lookup: dns })).toMatchObject({ address: PUBLIC });

    // A listed name, whatever it resolves to (case and a trailing dot aside).
    expect(await checkSmtpHost('Internal.Example.com', { allowHosts: ['internal.example.com.'] }, { lookup: async () => [{ address: '10.20.30.40', family: 4 }] })).toEqual({
      address: '10.20.30.40',
      servername: 'Internal.Example.com',
    });
    // A listed address, typed or resolved, in any spelling.
    expect(await checkSmtpHost('127.0.0.1', { allowHosts: ['127.0.0.1'] })).toMatchObject({ address: '127.0.0.1' });
    expect(await checkSmtpHost('::ffff:127.0.0.1', { allowHosts: ['127.0.0.1'] })).toMatchObject({ address: '::ffff:127.0.0.1' });
    expect(await checkSmtpHost('[::1]', { allowHosts: ['0:0:0:0:0:0:0:1'] })).toMatchObject({ address: '::1' });
    expect(await checkSmtpHost('rebind.example.com', { allowHosts: ['127.0.0.1'] }, { lookup: dns })).toMatchObject({ address: '127.0.0.1' });
    // Listing one address allows that one only.
    await expect(checkSmtpHost('mixed.example.com', { allowHosts: ['127.0.0.1'] }, { lookup: dns })).rejects.toMatchObject({ field: 'host' });
    await expect(checkSmtpHost('10.1.2.3', { allowHosts: ['10.1.2.4', 'internal.example.com'] })).rejects.toMatchObject({ field: 'host' });
  });

  it('says when a name does not exist (ValidationError) and when DNS did not answer (transient SmtpError)', async () => {
    await expect(checkSmtpHost('nope.example.com', {}, { lookup: dns })).rejects.toMatchObject({
      code: 'VALIDATION_ERROR',
      field: 'host',
      message: 'host: "nope.example.com" is not a known host name: check it for typos',
    });
    await expect(checkSmtpHost('empty.example.com', {}, { lookup: async () => [] })).rejects.toMatchObject({ field: 'host' });
    const timeout = Object.assign(new Error('queryA ETIMEOUT'), { code: 'EAI_AGAIN' });
    const error = await checkSmtpHost('smtp.example.com', {}, { lookup: () => Promise.reject(timeout) }).catch((e: unknown) => e as AgentSmtpError);
    expect(error).toMatchObject({ name: 'SmtpError', code: 'SMTP_TRANSIENT', retryable: true, smtpCode: 'EDNS' });
    expect((error as Error).message).toMatch(/"smtp\.example\.com" could not be looked up \(EAI_AGAIN\)/);
  });

  it('classifies public unicast as allowed and names the rest', () => {
    expect([PUBLIC, '8.8.8.8', '2a00:1450:4001:80b::201a', '::ffff:8.8.8.8'].map(classifyAddress)).toEqual([undefined, undefined, undefined, undefined]);
    expect(classifyAddress('not-an-ip')).toBe('not an IP address');
    expect(classifyAddress('4000::1')).toBe('an unassigned IPv6 address');
  });
});

describe('connectToCheckedHost', () => {
  it('connects to the checked address with TLS verifying the name, keeping the other TLS options', () => {
    const server = { name: 'work', host: 'smtp.example.com', port: 587, tls: { minVersion: 'TLSv1.2' as const } };
    expect(connectToCheckedHost(server, { address: PUBLIC, servername: 'smtp.example.com' })).toEqual({
      name: 'work',
      host: PUBLIC,
      port: 587,
      tls: { minVersion: 'TLSv1.2', servername: 'smtp.example.com' },
    });
    expect(connectToCheckedHost({ host: PUBLIC }, { address: PUBLIC, servername: undefined })).toEqual({ host: PUBLIC });
    expect(server.host).toBe('smtp.example.com');
  });
});
