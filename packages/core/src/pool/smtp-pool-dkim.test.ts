import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { dkimSignatureTags, rsaDkimKey, verifyDkim } from '../config/__fixtures__/dkim-keys.js';
import { DEFAULT_DKIM_HEADER_FIELDS, NODEMAILER_DKIM_HEADER_FIELDS } from '../config/dkim-config.js';
import { resolveSmtpServerConfigs, sameResolvedConfig } from '../config/smtp-server-config.js';
import { ConfigError } from '../errors/config-error.js';
import { SmtpError } from '../errors/smtp-error.js';
import { poolMessage, usePoolResources } from './__fixtures__/pool-fixtures.js';

const resources = useTestResources();
const pools = usePoolResources();

const KEY = rsaDkimKey();
const DNS = { 's1._domainkey.example.com': KEY.txtRecord };
const DKIM = { domainName: 'example.com', keySelector: 's1', privateKey: KEY.privateKey };
const TRACKING_HEADERS = { 'List-Unsubscribe': '<https://t.example/u/x>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' };

/** Every line of the key's base64 body, the pieces an error could quote. */
const keyLines = KEY.privateKey.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----'));

function leaksKey(text: string): boolean {
  return text.includes(KEY.privateKey.trim()) || keyLines.some((line) => text.includes(line));
}

describe('SmtpPool signs with the server\'s DKIM key', () => {
  it('signs a message with tracking headers so that mailauth verifies it, both List-Unsubscribe headers in h=', async () => {
    const sink = await resources.sink();
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), name: 'signed', dkim: DKIM }] });

    await pool.send(poolMessage({ from: 'agent@example.com', headers: TRACKING_HEADERS, text: 'Hello\r\nwith two lines.' }));
    const [received] = await sink.waitForMessages(1);

    const results = await verifyDkim(received!.raw, DNS);
    expect(results.map((r) => [r.signingDomain, r.selector, r.status.result])).toEqual([['example.com', 's1', 'pass']]);
    const signed = dkimSignatureTags(received!.raw).h!.toLowerCase().split(':');
    expect(signed).toEqual(expect.arrayContaining(['from', 'subject', 'list-unsubscribe', 'list-unsubscribe-post']));
  });

  it('a body changed after signing fails verification', async () => {
    const sink = await resources.sink();
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), dkim: DKIM }] });
    await pool.send(poolMessage({ headers: TRACKING_HEADERS, text: 'Pay 10 EUR.' }));
    const [received] = await sink.waitForMessages(1);

    const tampered = received!.raw.toString().replace('Pay 10 EUR.', 'Pay 99 EUR.');
    expect(tampered).not.toBe(received!.raw.toString());
    const results = await verifyDkim(tampered, DNS);
    // mailauth reports a body hash mismatch as neutral (RFC 6376 6.3: the signature does not verify), not pass.
    expect(results.map((r) => [r.status.result, r.status.comment])).toEqual([['neutral', 'body hash did not verify']]);
  });

  it('a changed List-Unsubscribe-Post header fails verification (it is signed)', async () => {
    const sink = await resources.sink();
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), dkim: DKIM }] });
    await pool.send(poolMessage({ headers: TRACKING_HEADERS }));
    const [received] = await sink.waitForMessages(1);

    const tampered = received!.raw.toString().replace('List-Unsubscribe=One-Click', 'List-Unsubscribe=Two-Click');
    expect((await verifyDkim(tampered, DNS)).map((r) => r.status.result)).toEqual(['fail']);
  });

  it('a user header list keeps its fields and gains From and both List-Unsubscribe headers', async () => {
    const sink = await resources.sink();
    const pool = pools.pool({ servers: [{ ...sink.serverConfig(), dkim: { ...DKIM, headerFieldNames: ['Subject', 'Date'] } }] });
    await pool.send(poolMessage({ headers: TRACKING_HEADERS }));
    const [received] = await sink.waitForMessages(1);

    expect(dkimSignatureTags(received!.raw).h!.toLowerCase().split(':').sort()).toEqual(['date', 'from', 'list-unsubscribe', 'list-unsubscribe-post', 'subject']);
    expect((await verifyDkim(received!.raw, DNS)).map((r) => r.status.result)).toEqual(['pass']);
  });

  it('the key appears in no inspection, JSON, status or error of a failing send', async () => {
    const sink = await resources.sink({ behavior: { data: () => ({ code: 554, message: `rejected ${KEY.privateKey}` }) } });
    const servers = [{ ...sink.serverConfig(), name: 'rejects', dkim: DKIM }];
    const pool = pools.pool({ servers });
    const [resolved] = resolveSmtpServerConfigs(servers);

    const error = await pool.send(poolMessage({ headers: TRACKING_HEADERS })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SmtpError);
    const seen = [
      inspect(resolved, { depth: 10 }),
      JSON.stringify(resolved),
      JSON.stringify(pool.status()),
      inspect(pool.status(), { depth: 10 }),
      inspect(pool, { depth: 10 }),
      String((error as Error).message),
      inspect(error, { depth: 10 }),
      JSON.stringify(error),
    ].join('\n');
    expect(leaksKey(seen)).toBe(false);
    // The server did say the key: the scrubber, not luck, kept it out.
    expect((error as Error).message).toContain('[redacted]');
    expect(resolved!.dkim!.privateKey).toBe(KEY.privateKey);
  });
});

describe('dkim configuration', () => {
  const base = { host: 'smtp.example.com' };

  it('defaults to nodemailer\'s header list plus List-Unsubscribe-Post', () => {
    const [resolved] = resolveSmtpServerConfigs([{ ...base, dkim: DKIM }]);
    expect(resolved!.dkim!.headerFieldNames).toEqual([...NODEMAILER_DKIM_HEADER_FIELDS, 'List-Unsubscribe-Post']);
    expect(DEFAULT_DKIM_HEADER_FIELDS).toContain('List-Unsubscribe');
  });

  it('a user list that has the fields in another case is not given them twice', () => {
    const [resolved] = resolveSmtpServerConfigs([{ ...base, dkim: { ...DKIM, headerFieldNames: ['from', 'LIST-UNSUBSCRIBE', 'Subject'] } }]);
    expect(resolved!.dkim!.headerFieldNames).toEqual(['from', 'LIST-UNSUBSCRIBE', 'Subject', 'List-Unsubscribe-Post']);
  });

  const ed25519 = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const shortRsa = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const encrypted = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }).toString();
  const publicOnly = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const truncated = KEY.privateKey.slice(0, 400);

  // Ed25519: nodemailer 10 signs rsa-sha256 only and sends a message it cannot sign unsigned, so such a key is refused.
  it.each([
    ['not PEM', 'not a key at all, just a secret-ish string'],
    ['truncated PEM', truncated],
    ['a public key', publicOnly],
    ['an encrypted key', encrypted],
    ['an Ed25519 key', ed25519],
    ['a 512-bit RSA key', shortRsa],
  ])('refuses %s naming dkim.privateKey, quoting none of it', (_label, privateKey) => {
    const error = (() => {
      try {
        resolveSmtpServerConfigs([{ ...base, name: 'k', dkim: { ...DKIM, privateKey } }]);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(ConfigError.isInstance(error)).toBe(true);
    expect((error as ConfigError).setting).toBe('servers[0].dkim.privateKey');
    const text = `${(error as Error).message}\n${inspect(error, { depth: 10 })}\n${JSON.stringify(error)}`;
    const pieces = privateKey.split('\n').filter((line) => line.length >= 16 && !line.startsWith('-----'));
    expect(pieces.filter((piece) => text.includes(piece))).toEqual([]);
    expect((error as ConfigError).cause).toBeUndefined();
  });

  it.each([
    ['domainName', { domainName: 'not a domain' }],
    ['domainName', { domainName: 'https://example.com' }],
    ['keySelector', { keySelector: 's1._domainkey' }],
    ['keySelector', { keySelector: '' }],
    ['headerFieldNames.0', { headerFieldNames: ['Bad:Name'] }],
  ])('refuses a bad %s', (field, override) => {
    expect(() => resolveSmtpServerConfigs([{ ...base, dkim: { ...DKIM, ...override } }])).toThrow(
      expect.objectContaining({ setting: `servers[0].dkim.${field}` }),
    );
  });

  it('names a misspelt dkim option with the nearest known one', () => {
    expect(() => resolveSmtpServerConfigs([{ ...base, dkim: { ...DKIM, selector: 's1' } as never }])).toThrow(/dkim\.selector .*did you mean "keySelector"/);
  });

  it('a new key makes a different configuration (a pool cache opens a new pool)', () => {
    const other = rsaDkimKey(1024);
    const [a] = resolveSmtpServerConfigs([{ ...base, dkim: DKIM }]);
    const [b] = resolveSmtpServerConfigs([{ ...base, dkim: { ...DKIM, privateKey: other.privateKey } }]);
    const [c] = resolveSmtpServerConfigs([{ ...base, dkim: DKIM }]);
    const [d] = resolveSmtpServerConfigs([{ ...base, dkim: { ...DKIM, keySelector: 's2' } }]);
    const [none] = resolveSmtpServerConfigs([base]);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(sameResolvedConfig(a!, b!)).toBe(false);
    expect(sameResolvedConfig(a!, c!)).toBe(true);
    expect(sameResolvedConfig(a!, d!)).toBe(false);
    expect(sameResolvedConfig(a!, none!)).toBe(false);
  });
});
