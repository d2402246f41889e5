import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors/config-error.js';
import { nearestKey, resolveSmtpServerConfigs, type SmtpServerConfig } from './smtp-server-config.js';

/** Resolves `server` (as the only server, or after a valid one) expecting a ConfigError; returns it. */
function refusal(server: Record<string, unknown>, index = 0): ConfigError {
  const servers = [...(index === 1 ? [{ host: 'ok.example.com' }] : []), server] as unknown as SmtpServerConfig[];
  let caught: unknown;
  try {
    resolveSmtpServerConfigs(servers);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

// Issue 7 item 16: `startTls: 'required'` was dropped silently (opportunistic TLS, a silent downgrade) and a `dkim`
// block vanished. Every unknown key is refused, nested ones too, with the path and the nearest known key.
describe('resolveSmtpServerConfigs refuses unknown keys', () => {
  it.each([
    [{ host: 'h', startTls: 'required' }, 'servers[0].startTls', 'starttls'],
    [{ host: 'h', StartTLS: 'required' }, 'servers[0].StartTLS', 'starttls'],
    [{ host: 'h', secrue: true }, 'servers[0].secrue', 'secure'],
    [{ host: 'h', maxRetry: 3 }, 'servers[0].maxRetry', 'maxRetries'],
    [{ host: 'h', pooSize: 3 }, 'servers[0].pooSize', 'poolSize'],
    [{ host: 'h', timeout: { greetingMs: 1 } }, 'servers[0].timeout', 'timeouts'],
    [{ host: 'h', auth: { user: 'u', password: 'pw-value-1' } }, 'servers[0].auth.password', 'pass'],
    [{ host: 'h', auth: { username: 'u', pass: 'pw-value-1' } }, 'servers[0].auth.username', 'user'],
    [{ host: 'h', auth: { user: 'u', pass: 'pw-value-1', mehtod: 'PLAIN' } }, 'servers[0].auth.mehtod', 'method'],
    [{ host: 'h', timeouts: { greeting: 5 } }, 'servers[0].timeouts.greeting', 'greetingMs'],
    [{ host: 'h', timeouts: { socketMS: 5 } }, 'servers[0].timeouts.socketMS', 'socketMs'],
    [{ host: 'h', rateLimit: { messages: 1, perMS: 5 } }, 'servers[0].rateLimit.perMS', 'perMs'],
    [{ host: 'h', tls: { rejectUnauthorised: false } }, 'servers[0].tls.rejectUnauthorised', 'rejectUnauthorized'],
    [{ host: 'h', tls: { serverName: 'x' } }, 'servers[0].tls.serverName', 'servername'],
  ] as const)('%j is refused as %s, suggesting "%s"', (server, setting, suggestion) => {
    const error = refusal(server);
    expect(error.setting).toBe(setting);
    expect(error.message).toContain(`${setting} (server #0) is not a known option; did you mean "${suggestion}"?`);
    expect(error.message).not.toContain('pw-value-1');
  });

  it('names a key with no near match and lists the known ones (a bimi block is not silently dropped)', () => {
    const error = refusal({ host: 'h', name: 'main', bimi: { domainName: 'example.com', privateKey: 'KEY' } }, 1);
    expect(error.setting).toBe('servers[1].bimi');
    expect(error.message).toMatch(/^servers\[1\]\.bimi \(server "main"\) is not a known option; known options: name, host, port, .*maxRetries, dkim\.$/);
    expect(error.message).not.toContain('KEY');
  });

  it('a dkim block without keySelector names dkim.keySelector and never quotes the key', () => {
    const error = refusal({ host: 'h', name: 'main', dkim: { domainName: 'example.com', privateKey: 'KEY-MATERIAL' } }, 1);
    expect(error.setting).toBe('servers[1].dkim.keySelector');
    expect(error.message).not.toContain('KEY-MATERIAL');
  });

  it('reports an unknown key before the problems it causes, and names the other unknown keys', () => {
    const error = refusal({ Host: 'h', prot: 25, startTls: 'required' });
    expect(error.setting).toBe('servers[0].Host');
    expect(error.message).toContain('did you mean "host"?');
    expect(error.message).toContain('also unknown: prot, startTls');
  });

  it('accepts every known key, nested ones included', () => {
    const full: SmtpServerConfig = {
      name: 'full',
      host: 'smtp.example.com',
      port: 2525,
      secure: false,
      starttls: 'required',
      auth: { user: 'u', pass: 'p', method: 'LOGIN' },
      from: 'agent@example.com',
      priority: 3,
      poolSize: 2,
      rateLimit: { messages: 10, perMs: 1000 },
      timeouts: { connectionMs: 1, greetingMs: 2, socketMs: 3 },
      tls: { servername: 'localhost', rejectUnauthorized: true, minVersion: 'TLSv1.2', ca: 'PEM' },
      maxRetries: 2,
    };
    const [resolved] = resolveSmtpServerConfigs([full]);
    expect(resolved).toMatchObject({ name: 'full', starttls: 'required', timeouts: { connectionMs: 1, greetingMs: 2, socketMs: 3 }, maxRetries: 2 });
  });
});

describe('nearestKey', () => {
  it('suggests nothing for a key far from every known one, and stays bounded on long input', () => {
    expect(nearestKey('dkim', ['host', 'port', 'secure'])).toBeUndefined();
    expect(nearestKey('x'.repeat(100_000), ['host'])).toBeUndefined();
  });
});
