import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { markConfigSource, type SmtpConfigSource } from '../config/smtp-config-source.js';
import { resolveSmtpServerConfigs, type SmtpServerConfig } from '../config/smtp-server-config.js';
import { SmtpError } from '../errors/smtp-error.js';
import { createMailer, type Mailer, type MailerOptions } from '../mailer/mailer.js';
import { usePoolResources } from './__fixtures__/pool-fixtures.js';
import { explainTlsFailure, type TlsFailureKind } from './explain-tls-failure.js';

// Issue 9 item 4: `secure: true` against a plain port showed OpenSSL's `ssl3_get_record:wrong version number:
// ../deps/openssl/...`, and the reverse a bare greeting timeout. Each TLS mistake now says what it means and what to
// set, in the settings the user wrote (config fields, SMTP_* variables, a stored account's fields).

const resources = useTestResources();
const peers = usePoolResources();

const email = { to: 'ada@example.com', subject: 'TLS', text: 'hello' };
const CHOICES_IN_CODE = 'Use port 587 with STARTTLS (port: 587, secure: false), or port 465 with implicit TLS (port: 465, secure: true).';
/** Anything of OpenSSL's or nodemailer's own wording that used to reach the caller. */
const RAW_TEXT = /openssl|ssl3_|ssl routines|wrong version number|Greeting never received|self-signed certificate|altnames/i;

function mailer(options: Omit<MailerOptions, 'defaults' | 'env'> & { env?: MailerOptions['env'] }): Mailer {
  // One attempt per send: the second would only repeat the first.
  return resources.track(createMailer({ defaults: { from: 'agent@example.com' }, env: {}, pool: { maxRetryWaitMs: 0 }, ...options }));
}

/** The SmtpError `send` rejects with (and fails the test if it resolves). */
async function sendFailure(m: Mailer): Promise<SmtpError> {
  const caught = await m.send(email).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(SmtpError.isInstance(caught), String(caught)).toBe(true);
  return caught as SmtpError;
}

describe('a TLS mismatch says what to set', () => {
  it('secure: true against a plain port names STARTTLS on 587 or implicit TLS on 465, in send and testConnection', async () => {
    const plain = await resources.sink();
    const m = mailer({ servers: [plain.serverConfig({ secure: true, maxRetries: 0 })] });
    const explanation =
      `TLS mismatch: port ${plain.port} answered in plain text (it expects STARTTLS or no TLS), but secure: true starts TLS ` +
      `from the first byte. ${CHOICES_IN_CODE}`;

    const error = await sendFailure(m);
    expect(error.code).toBe('SMTP_AUTH');
    expect(error.message).toContain(explanation);
    expect(error.message).not.toMatch(RAW_TEXT);
    expect(error.attempts.map((a) => [a.code, a.failure, a.message])).toEqual([['ETLS', 'auth', explanation]]);

    expect(await m.testConnection()).toEqual([{ name: 'smtp-1', ok: false, latencyMs: expect.any(Number), error: { code: 'ETLS', message: explanation } }]);
    await m.close();
    expect(plain.stats.messages).toBe(0);
  });

  it('secure: false against an implicit-TLS port names the missing greeting as the same mismatch', async () => {
    const implicit = await resources.sink({ tls: 'implicit' });
    // A short greeting timeout keeps the test quick; the probe that finds the port speaks TLS takes no longer.
    const m = mailer({ servers: [implicit.serverConfig({ secure: false, starttls: 'required', maxRetries: 0, timeouts: { greetingMs: 400 } })] });
    const explanation =
      `TLS mismatch: port ${implicit.port} expects TLS from the first byte (implicit TLS), but the connection started in plain ` +
      `text (secure: false), so no greeting came. ${CHOICES_IN_CODE}`;

    const error = await sendFailure(m);
    expect(error.code).toBe('SMTP_AUTH');
    expect(error.message).toContain(explanation);
    expect(error.message).not.toMatch(RAW_TEXT);
    expect(error.attempts.map((a) => [a.code, a.failure])).toEqual([['ETLS', 'auth']]);

    expect(await m.testConnection()).toEqual([{ name: 'smtp-1', ok: false, latencyMs: expect.any(Number), error: { code: 'ETLS', message: explanation } }]);
    await m.close();
    expect(implicit.stats.messages).toBe(0);
  });

  it('a server that is only slow to greet is not called a TLS mismatch', async () => {
    // Accepts the connection and says nothing, in plain text or TLS: the probe finds no TLS, so the timeout stays one.
    const silent = await peers.peer(() => undefined);
    const m = mailer({ servers: [{ host: '127.0.0.1', port: silent.port, starttls: 'disabled', maxRetries: 0, timeouts: { greetingMs: 300 } }] });

    const error = await sendFailure(m);
    expect(error.code).toBe('SMTP_UNAVAILABLE');
    expect(error.message).not.toContain('TLS mismatch');
    expect(error.attempts.map((a) => [a.code, a.failure])).toEqual([['ETIMEDOUT', 'transient']]);
  });

  it('a server from the environment is told in its own variables (SMTP_USE_SSL_2, SMTP_PORT_2)', async () => {
    const plain = await resources.sink();
    const m = mailer({ env: { SMTP_HOST_2: '127.0.0.1', SMTP_PORT_2: String(plain.port), SMTP_USE_SSL_2: 'true', SMTP_MAX_RETRIES_2: '0' } });

    const error = await sendFailure(m);
    expect(error.code).toBe('SMTP_AUTH');
    expect(error.message).toContain(
      `TLS mismatch: port ${plain.port} answered in plain text (it expects STARTTLS or no TLS), but SMTP_USE_SSL_2=true starts TLS from the ` +
        'first byte. Use port 587 with STARTTLS (SMTP_PORT_2=587, SMTP_USE_SSL_2=false), or port 465 with implicit TLS (SMTP_PORT_2=465, SMTP_USE_SSL_2=true).',
    );
    expect(error.message).not.toMatch(/secure:|port:/);
  });
});

describe('a certificate failure says what to set', () => {
  it('a self-signed certificate names tls.ca in code and NODE_EXTRA_CA_CERTS from the environment', async () => {
    const implicit = await resources.sink({ tls: 'implicit' });
    const inCode = mailer({ servers: [{ host: '127.0.0.1', port: implicit.port, secure: true, maxRetries: 0 }] });
    const fromEnv = mailer({ env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(implicit.port), SMTP_USE_SSL: 'true', SMTP_MAX_RETRIES: '0' } });

    const [codeError, envError] = [await sendFailure(inCode), await sendFailure(fromEnv)];
    expect(codeError.code).toBe('SMTP_AUTH');
    expect(codeError.message).toContain(
      "The server's certificate is not from an authority this machine trusts (it is self-signed). If the server is yours, trust its " +
        'authority with tls.ca (the CA certificate, PEM); otherwise check that host names the server you meant.',
    );
    expect(envError.message).toContain(
      'If the server is yours, trust its authority with NODE_EXTRA_CA_CERTS=/path/to/ca.pem (read when Node starts); otherwise check ' +
        'that SMTP_HOST names the server you meant.',
    );
    expect([codeError.message, envError.message].filter((message) => RAW_TEXT.test(message))).toEqual([]);
  });

  it('a certificate for another name lists the names it covers and the setting to change', async () => {
    const implicit = await resources.sink({ tls: 'implicit' });
    const m = mailer({ servers: [implicit.serverConfig({ tls: { ca: implicit.certificate, servername: 'mail.wrong.example' }, maxRetries: 0 })] });

    const [result] = await m.testConnection();
    expect(result).toMatchObject({ ok: false, error: { code: 'ETLS' } });
    expect(result!.error!.message).toBe(
      "The server's certificate is for localhost, 127.0.0.1, not mail.wrong.example. Set host to one of those names " +
        '(or, to keep connecting by IP address, set tls.servername to one of them).',
    );
    expect((await sendFailure(m)).message).toContain(result!.error!.message);
  });
});

describe('explainTlsFailure', () => {
  const evidence = {
    'expects-plain': { originalCode: 'ERR_SSL_WRONG_VERSION_NUMBER' },
    'expects-tls': { code: 'ETIMEDOUT', timeoutType: 'GREETING_TIMEOUT' },
    'untrusted-certificate': { originalCode: 'SELF_SIGNED_CERT_IN_CHAIN' },
    'wrong-host': { originalCode: 'ERR_TLS_CERT_ALTNAME_INVALID', host: 'smtp.example.com', cert: { subjectaltname: 'DNS:mx.example.net' } },
    'expired-certificate': { originalCode: 'CERT_HAS_EXPIRED', cert: { valid_to: 'Jan  1 00:00:00 2024 GMT' } },
    'certificate-not-yet-valid': { originalCode: 'CERT_NOT_YET_VALID', cert: { valid_from: 'Jan  1 00:00:00 2099 GMT' } },
    'no-starttls': { code: 'ETLS', command: 'STARTTLS', responseCode: 500, response: '500 command not recognized' },
  } satisfies Record<TlsFailureKind, object>;
  const kinds = Object.keys(evidence) as TlsFailureKind[];

  /** The server `smtp.example.com:2525` as each source writes it. */
  function serverFrom(source: SmtpConfigSource): ReturnType<typeof resolveSmtpServerConfigs>[number] {
    const config: SmtpServerConfig = markConfigSource({ host: 'smtp.example.com', port: 2525 }, source);
    return resolveSmtpServerConfigs([config])[0]!;
  }

  // Each source's own words, and none of the others': a user who saved an account has no `secure` to set.
  const sources: [SmtpConfigSource, RegExp, RegExp][] = [
    [{ kind: 'code' }, /secure: (true|false)|tls\.ca|\bhost\b/, /SMTP_|security:/],
    [{ kind: 'env', suffix: '_3' }, /SMTP_USE_SSL_3=|SMTP_HOST_3|NODE_EXTRA_CA_CERTS/, /secure:|security:|tls\.ca/],
    [{ kind: 'stored' }, /security: "(tls|starttls)"|\bhost\b/, /SMTP_|secure:|tls\.ca/],
  ];

  it.each(sources)('names the settings of a %j config and no others', (source, own, others) => {
    const server = serverFrom(source);
    const messages = kinds.map((kind) => explainTlsFailure(kind, server, evidence[kind]));
    const mismatches = messages.slice(0, 4);
    expect(mismatches.filter((message) => !own.test(message))).toEqual([]);
    expect(messages.filter((message) => others.test(message))).toEqual([]);
  });

  it.each([
    [{ kind: 'code' } as SmtpConfigSource, "starttls: 'required' requires it. Set starttls: 'opportunistic'", /SMTP_|security:/],
    [{ kind: 'env', suffix: '_2' } as SmtpConfigSource, 'SMTP_USE_TLS_2=true requires it. Unset SMTP_USE_TLS_2', /secure:|security:|starttls:/],
    [{ kind: 'stored' } as SmtpConfigSource, 'security: "starttls" requires it. Use the server\'s TLS port: port: 587', /SMTP_|secure:|starttls:/],
  ])('says a server without STARTTLS does not offer it, in the %j config\'s settings', (source, advice, others) => {
    const message = explainTlsFailure('no-starttls', serverFrom(source), evidence['no-starttls']);
    expect(message).toMatch(/^The server at smtp\.example\.com:2525 does not offer STARTTLS \(it answered STARTTLS with "500 command not recognized"\), but /);
    expect(message).toContain(advice);
    expect(message).not.toMatch(others);
  });

  it('dates an expired certificate and one not valid yet, and sends the reader to the clock', () => {
    const server = serverFrom({ kind: 'code' });
    expect(explainTlsFailure('expired-certificate', server, evidence['expired-certificate'])).toBe(
      "The server's certificate expired on 2024-01-01: it must be renewed on the server. If the server works elsewhere, check this " +
        "machine's clock and that host names the server you meant.",
    );
    expect(explainTlsFailure('certificate-not-yet-valid', server, evidence['certificate-not-yet-valid'])).toMatch(
      /^The server's certificate is not valid yet \(from 2099-01-01\): check this machine's clock \(it reads \d{4}-/,
    );
  });
});
