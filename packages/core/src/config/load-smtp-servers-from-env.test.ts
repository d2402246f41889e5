import { describe, expect, it } from 'vitest';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { ConfigError } from '../errors/config-error.js';
import { describeSmtpEnv, loadSmtpServersFromEnv } from './load-smtp-servers-from-env.js';
import { resolveSmtpServerConfigs } from './smtp-server-config.js';

const SECRET = 'hunter2-S3cret!';

/** Runs the loader expecting a ConfigError, checks it names `setting` and never leaks SECRET, and returns it. */
function configError(env: Record<string, string | undefined>, setting: string): ConfigError {
  let caught: unknown;
  try {
    loadSmtpServersFromEnv(env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(AgentSmtpError.isInstance(error)).toBe(true);
  expect(error.code).toBe('CONFIG_ERROR');
  expect(error.setting).toBe(setting);
  expect(error.message).toContain(setting);
  expect(error.message).not.toContain(SECRET);
  expect(JSON.stringify(error)).not.toContain(SECRET);
  expect(String(error.stack)).not.toContain(SECRET);
  return error;
}

describe('loadSmtpServersFromEnv', () => {
  it('returns [] when no host is set', () => {
    expect(loadSmtpServersFromEnv({})).toEqual([]);
    expect(loadSmtpServersFromEnv({ SMTP_HOST: '', SMTP_HOST_1: '  ' })).toEqual([]);
  });

  it('reads one server from every variable', () => {
    const servers = loadSmtpServersFromEnv({
      SMTP_HOST: 'smtp.example.com',
      SMTP_PORT: '2525',
      SMTP_USERNAME: 'agent@example.com',
      SMTP_PASSWORD: SECRET,
      SMTP_USE_TLS: 'true',
      SMTP_USE_SSL: 'false',
      SMTP_TIMEOUT: '30',
      SMTP_MAX_RETRIES: '4',
      SMTP_FROM_EMAIL: 'Agent <agent@example.com>',
      SMTP_NAME: 'main',
      SMTP_PRIORITY: '-3',
    });
    expect(servers).toStrictEqual([
      {
        name: 'main',
        host: 'smtp.example.com',
        port: 2525,
        secure: false,
        starttls: 'required',
        auth: { user: 'agent@example.com', pass: SECRET },
        timeouts: { connectionMs: 30_000, greetingMs: 30_000, socketMs: 30_000 },
        maxRetries: 4,
        from: 'Agent <agent@example.com>',
        priority: -3,
      },
    ]);
  });

  it('leaves everything but host and name to the defaults when only SMTP_HOST is set', () => {
    const servers = loadSmtpServersFromEnv({ SMTP_HOST: ' smtp.example.com ' });
    expect(servers).toStrictEqual([{ name: 'primary', host: 'smtp.example.com' }]);
    // undefined starttls means opportunistic; resolve fills in the rest.
    expect(resolveSmtpServerConfigs(servers)[0]).toMatchObject({
      name: 'primary',
      port: 587,
      secure: false,
      starttls: 'opportunistic',
      auth: undefined,
      priority: 0,
    });
  });

  it('maps SMTP_USE_TLS=false to disabled and SMTP_USE_SSL=true to secure', () => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_USE_TLS: 'false' })[0]).toMatchObject({ starttls: 'disabled' });
    const [ssl] = loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_USE_SSL: 'true' });
    expect(ssl).toMatchObject({ secure: true });
    expect(ssl?.starttls).toBeUndefined();
    expect(resolveSmtpServerConfigs([ssl!])[0]?.port).toBe(465);
  });

  it.each([
    ['true', true],
    [' TRUE ', true],
    ['1', true],
    ['Yes', true],
    ['on', true],
    ['false', false],
    ['0', false],
    ['NO', false],
    ['Off', false],
  ])('accepts %j as a boolean', (value, expected) => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_USE_SSL: value })[0]?.secure).toBe(expected);
  });

  it('accepts SMTP_USER, SMTP_PASS and SMTP_SECURE as aliases', () => {
    const [server] = loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_USER: 'u', SMTP_PASS: SECRET, SMTP_SECURE: 'yes' });
    expect(server).toMatchObject({ auth: { user: 'u', pass: SECRET }, secure: true });
  });

  it('prefers the canonical name when an alias is also set', () => {
    const [server] = loadSmtpServersFromEnv({
      SMTP_HOST: 'h',
      SMTP_USERNAME: 'canonical',
      SMTP_USER: 'alias',
      SMTP_PASSWORD: 'canonical-pass',
      SMTP_PASS: 'alias-pass',
      SMTP_USE_SSL: 'false',
      SMTP_SECURE: 'true',
    });
    expect(server).toMatchObject({ auth: { user: 'canonical', pass: 'canonical-pass' }, secure: false });
  });

  it('allows a username without a password', () => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_USERNAME: 'u' })[0]?.auth).toEqual({ user: 'u', pass: '' });
  });

  it('converts a fractional SMTP_TIMEOUT in seconds to milliseconds', () => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_TIMEOUT: '2.5' })[0]?.timeouts).toEqual({
      connectionMs: 2500,
      greetingMs: 2500,
      socketMs: 2500,
    });
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_TIMEOUT: '.25' })[0]?.timeouts?.socketMs).toBe(250);
  });

  it('reads three numbered servers in order with their own settings', () => {
    const servers = loadSmtpServersFromEnv({
      SMTP_HOST_3: 'three.example.com',
      SMTP_USE_SSL_3: 'true',
      SMTP_PORT_3: '465',
      SMTP_HOST_1: 'one.example.com',
      SMTP_PORT_1: '587',
      SMTP_USERNAME_1: 'one',
      SMTP_PASSWORD_1: SECRET,
      SMTP_USE_TLS_1: 'true',
      SMTP_HOST_2: 'two.example.com',
      SMTP_PORT_2: '25',
      SMTP_USER_2: 'two',
      SMTP_PASS_2: 'pass-2',
      SMTP_USE_TLS_2: 'off',
    });
    expect(servers).toStrictEqual([
      {
        name: 'smtp-1',
        host: 'one.example.com',
        port: 587,
        starttls: 'required',
        auth: { user: 'one', pass: SECRET },
        priority: 3,
      },
      { name: 'smtp-2', host: 'two.example.com', port: 25, starttls: 'disabled', auth: { user: 'two', pass: 'pass-2' }, priority: 2 },
      { name: 'smtp-3', host: 'three.example.com', port: 465, secure: true, priority: 1 },
    ]);
    expect(resolveSmtpServerConfigs(servers).map((s) => s.name)).toEqual(['smtp-1', 'smtp-2', 'smtp-3']);
  });

  it('puts the unnumbered server first, then numbered ones', () => {
    const servers = loadSmtpServersFromEnv({
      SMTP_HOST_1: 'backup.example.com',
      SMTP_NAME_1: 'backup',
      SMTP_HOST: 'main.example.com',
      SMTP_PORT: '2525',
    });
    expect(servers.map((s) => [s.name, s.host, s.port, s.priority])).toEqual([
      ['primary', 'main.example.com', 2525, 2],
      ['backup', 'backup.example.com', undefined, 1],
    ]);
  });

  it('accepts gaps in the numbering and orders numerically', () => {
    const servers = loadSmtpServersFromEnv({ SMTP_HOST_10: 'ten', SMTP_HOST_2: 'two', SMTP_HOST_7: 'seven' });
    expect(servers.map((s) => [s.name, s.host, s.priority])).toEqual([
      ['smtp-2', 'two', 3],
      ['smtp-7', 'seven', 2],
      ['smtp-10', 'ten', 1],
    ]);
  });

  it('keeps explicit priorities and defaults the rest by position', () => {
    const servers = loadSmtpServersFromEnv({
      SMTP_HOST: 'main',
      SMTP_PRIORITY: '-1',
      SMTP_HOST_1: 'one',
      SMTP_HOST_2: 'two',
      SMTP_PRIORITY_2: '10.5',
    });
    expect(servers.map((s) => [s.host, s.priority])).toEqual([
      ['main', -1],
      ['one', 2],
      ['two', 10.5],
    ]);
  });

  it('leaves priority unset for a single server', () => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST_4: 'only' })).toStrictEqual([{ name: 'smtp-4', host: 'only' }]);
  });

  it('does not read process.env when given an env object', () => {
    expect(loadSmtpServersFromEnv({ PATH: '/bin' })).toEqual([]);
  });
});

describe('loadSmtpServersFromEnv errors', () => {
  it.each(['abc', '0', '70000', '587.5', '-1'])('rejects SMTP_PORT_2=%j', (value) => {
    const error = configError({ SMTP_HOST_2: 'h', SMTP_PORT_2: value, SMTP_PASSWORD_2: SECRET, SMTP_USERNAME_2: 'u' }, 'SMTP_PORT_2');
    expect(error.message).toBe(`SMTP_PORT_2 is "${value}" but must be a port number from 1 to 65535, usually 587 (STARTTLS) or 465 (SSL).`);
  });

  it('rejects a bad boolean, naming the alias actually used', () => {
    const error = configError({ SMTP_HOST: 'h', SMTP_SECURE: 'maybe', SMTP_USERNAME: 'u', SMTP_PASSWORD: SECRET }, 'SMTP_SECURE');
    expect(error.message).toBe('SMTP_SECURE is "maybe" but must be true or false (1/0, yes/no and on/off also work).');
    configError({ SMTP_HOST_1: 'h', SMTP_USE_TLS_1: 'required' }, 'SMTP_USE_TLS_1');
  });

  it.each(['abc', '0', '-5', '1e3', '0.0001'])('rejects SMTP_TIMEOUT=%j', (value) => {
    const error = configError({ SMTP_HOST: 'h', SMTP_TIMEOUT: value, SMTP_USERNAME: 'u', SMTP_PASSWORD: SECRET }, 'SMTP_TIMEOUT');
    expect(error.message).toContain(`"${value}"`);
    expect(error.message).toContain('number of seconds greater than 0');
  });

  it.each(['-1', '2.5', 'three'])('rejects SMTP_MAX_RETRIES=%j', (value) => {
    const error = configError({ SMTP_HOST: 'h', SMTP_MAX_RETRIES: value }, 'SMTP_MAX_RETRIES');
    expect(error.message).toBe(`SMTP_MAX_RETRIES is "${value}" but must be a whole number of retries from 0 to 20, such as 3.`);
  });

  it('accepts SMTP_MAX_RETRIES=0', () => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_MAX_RETRIES: '0' })[0]).toMatchObject({ maxRetries: 0 });
  });

  it('rejects a bad priority and a from without @', () => {
    configError({ SMTP_HOST: 'h', SMTP_PRIORITY: 'high' }, 'SMTP_PRIORITY');
    configError({ SMTP_HOST: 'h', SMTP_FROM_EMAIL: 'agent' }, 'SMTP_FROM_EMAIL');
  });

  it('rejects a host with a scheme', () => {
    configError({ SMTP_HOST: 'smtp://smtp.example.com' }, 'SMTP_HOST');
  });

  it('rejects a numbered variable whose SMTP_HOST_n is not set, naming both', () => {
    const error = configError({ SMTP_HOST_1: 'h', SMTP_PORT_3: '587' }, 'SMTP_PORT_3');
    expect(error.message).toContain('SMTP_HOST_3');
    // Even with no server at all: the numbered variable shows intent.
    configError({ SMTP_USER_5: 'u' }, 'SMTP_USER_5');
  });

  it('rejects an orphan password without repeating it', () => {
    const error = configError({ SMTP_HOST_1: 'h', SMTP_PASSWORD_2: SECRET }, 'SMTP_PASSWORD_2');
    expect(error.message).toContain('SMTP_HOST_2');
  });

  it('rejects unnumbered variables without SMTP_HOST when numbered servers exist', () => {
    const error = configError({ SMTP_HOST_1: 'h', SMTP_PORT: '587' }, 'SMTP_PORT');
    expect(error.message).toContain('SMTP_HOST');
    expect(error.message).toContain('SMTP_PORT_<n>');
  });

  it('rejects a numbered suffix of 0 or with leading zeros', () => {
    configError({ SMTP_HOST_0: 'h' }, 'SMTP_HOST_0');
    configError({ SMTP_HOST_01: 'h' }, 'SMTP_HOST_01');
  });

  it('rejects a password without a username, naming both and never the password', () => {
    const error = configError({ SMTP_HOST: 'h', SMTP_PASSWORD: SECRET }, 'SMTP_PASSWORD');
    expect(error.message).toBe('SMTP_PASSWORD is set but SMTP_USERNAME is not: set SMTP_USERNAME to the login name, or remove SMTP_PASSWORD.');
    const alias = configError({ SMTP_HOST_2: 'h', SMTP_PASS_2: SECRET }, 'SMTP_PASS_2');
    expect(alias.message).toContain('SMTP_USERNAME_2');
  });

  it('rejects SMTP_USE_TLS and SMTP_USE_SSL both true', () => {
    const error = configError(
      { SMTP_HOST: 'h', SMTP_USE_TLS: 'true', SMTP_USE_SSL: '1', SMTP_USERNAME: 'u', SMTP_PASSWORD: SECRET },
      'SMTP_USE_TLS',
    );
    expect(error.message).toContain('SMTP_USE_SSL');
    expect(error.message).toContain('465');
    expect(error.message).toContain('587');
    configError({ SMTP_HOST_2: 'h', SMTP_USE_TLS_2: 'yes', SMTP_SECURE_2: 'on' }, 'SMTP_USE_TLS_2');
  });

  it('allows SMTP_USE_TLS=false with SMTP_USE_SSL=true', () => {
    expect(loadSmtpServersFromEnv({ SMTP_HOST: 'h', SMTP_USE_TLS: 'false', SMTP_USE_SSL: 'true' })[0]).toMatchObject({
      secure: true,
      starttls: 'disabled',
    });
  });
});

describe('describeSmtpEnv', () => {
  it('describes every variable the loader reads, with an example', () => {
    const rows = describeSmtpEnv();
    expect(rows.map((r) => r.variable)).toEqual([
      'SMTP_HOST',
      'SMTP_PORT',
      'SMTP_USERNAME',
      'SMTP_USER',
      'SMTP_PASSWORD',
      'SMTP_PASS',
      'SMTP_USE_TLS',
      'SMTP_USE_SSL',
      'SMTP_SECURE',
      'SMTP_TIMEOUT',
      'SMTP_MAX_RETRIES',
      'SMTP_FROM_EMAIL',
      'SMTP_NAME',
      'SMTP_PRIORITY',
      'SMTP_<VARIABLE>_<n>',
    ]);
    for (const row of rows) {
      expect(row.description.length).toBeGreaterThan(10);
      expect(row.example).not.toBe('');
    }
  });

  it('gives examples the loader accepts', () => {
    const env = Object.fromEntries(describeSmtpEnv().filter((r) => !r.variable.includes('<')).map((r) => [r.variable, r.example]));
    expect(() => loadSmtpServersFromEnv(env)).not.toThrow();
  });
});

describe('loadSmtpServersFromEnv: values resolveSmtpServerConfigs would refuse are named by variable', () => {
  it('refuses SMTP_MAX_RETRIES over 20, naming the variable', () => {
    expect(() => loadSmtpServersFromEnv({ SMTP_HOST: 'smtp.example.com', SMTP_MAX_RETRIES: '50' })).toThrow(
      expect.objectContaining({ setting: 'SMTP_MAX_RETRIES', message: expect.stringContaining('SMTP_MAX_RETRIES') }),
    );
  });

  it('refuses two servers with one name, naming the variable to change', () => {
    expect(() =>
      loadSmtpServersFromEnv({ SMTP_HOST: 'a.example.com', SMTP_HOST_1: 'b.example.com', SMTP_NAME_1: 'primary' }),
    ).toThrow(expect.objectContaining({ setting: 'SMTP_NAME_1', message: expect.stringContaining('"primary"') }));
  });
});


// Issue 7 item 14: `SMTP_HOST=user:password@host` repeated the password in the configuration error.
describe('loadSmtpServersFromEnv with credentials in SMTP_HOST', () => {
  it.each([
    ['user:SECRET@smtp.example.com', 'SMTP_HOST'],
    ['smtp://agent%40example.com:SECRET@smtp.example.com:587', 'SMTP_HOST'],
    ['SECRET@smtp.example.com', 'SMTP_HOST_2'],
    ['a:b@c:SECRET@smtp.example.com', 'SMTP_HOST'],
  ])('%s in %s is refused without repeating the password', (template, variable) => {
    const value = template.replace('SECRET', SECRET);
    const env = variable === 'SMTP_HOST' ? { SMTP_HOST: value } : { SMTP_HOST: 'ok.example.com', [variable]: value };
    const error = configError(env, variable);
    expect(error.message).toContain('smtp.example.com');
    expect(error.message).toContain(variable === 'SMTP_HOST' ? 'SMTP_PASSWORD' : 'SMTP_PASSWORD_2');
    expect(error.message).not.toContain(encodeURIComponent(SECRET));
  });
});
