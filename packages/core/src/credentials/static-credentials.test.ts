import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sameServerSet } from './credential-provider.js';
import { envCredentials, staticCredentials } from './static-credentials.js';

const PASS = 'Static-pass-7c1e';

describe('staticCredentials and envCredentials', () => {
  it('gives every owner the same servers, the same array each time, with the password hidden from logs', async () => {
    const provider = staticCredentials([
      { host: 'smtp.example.com', auth: { user: 'u', pass: PASS } },
      { name: 'backup', host: 'backup.example.com', port: 2525 },
    ]);
    const a = await provider.resolve({ ownerId: 'a' });
    expect(await provider.resolve({ ownerId: 'b', agentId: 'x' })).toBe(a);
    expect(a.map((s) => s.name)).toEqual(['smtp-1', 'backup']);
    expect(a[0]!.auth!.pass).toBe(PASS);
    for (const shown of [inspect(a, { depth: Infinity }), JSON.stringify(a), JSON.stringify({ ...a[0] })]) expect(shown).not.toContain(PASS);
    expect((await provider.resolve({ ownerId: 'a', configId: 'backup' })).map((s) => s.host)).toEqual(['backup.example.com']);
    await expect(provider.resolve({ ownerId: 'a', configId: 'nope' })).rejects.toMatchObject({ code: 'CONFIG_ERROR', setting: 'configId' });
    expect(provider.onChange!(() => {})).toBeTypeOf('function');
  });

  it('refuses a bad server list at once, naming the field', () => {
    expect(() => staticCredentials([{ host: 'h', startTls: 'required' } as never])).toThrow(/servers\[0\]\.startTls .* did you mean "starttls"/);
    expect(() => staticCredentials([])).toThrow(/No SMTP server is configured/);
  });

  it('reads the SMTP_* variables existing SMTP MCP servers use', async () => {
    const provider = envCredentials({ SMTP_HOST: 'smtp.example.com', SMTP_PORT: '465', SMTP_USE_SSL: 'true', SMTP_USERNAME: 'u@example.com', SMTP_PASSWORD: PASS, SMTP_HOST_2: 'backup.example.com' });
    const servers = await provider.resolve({ ownerId: 'default' });
    expect(servers.map((s) => [s.name, s.host, s.port, s.secure, s.priority])).toEqual([
      ['primary', 'smtp.example.com', 465, true, 2],
      ['smtp-2', 'backup.example.com', undefined, undefined, 1],
    ]);
    expect(servers[0]!.auth).toMatchObject({ user: 'u@example.com' });
    expect(servers[0]!.auth!.pass).toBe(PASS);
    expect(() => envCredentials({})).toThrow(expect.objectContaining({ code: 'CONFIG_ERROR', setting: 'SMTP_HOST' }));
    expect(() => envCredentials({ SMTP_HOST: 'h', SMTP_PORT: 'abc' })).toThrow(/SMTP_PORT is "abc" but must be a port number/);
  });

  it('sameServerSet tells server lists apart by their passwords too', () => {
    const base = { host: 'h', auth: { user: 'u', pass: 'one-pass' } };
    expect(sameServerSet([base], [{ ...base, auth: { ...base.auth } }])).toBe(true);
    expect(sameServerSet([base], [{ ...base, auth: { user: 'u', pass: 'two-pass' } }])).toBe(false);
    expect(sameServerSet([base], [base, { host: 'other' }])).toBe(false);
  });
});
