import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { dkimSignatureTags, rsaDkimKey, verifyDkim } from '../config/__fixtures__/dkim-keys.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { SmtpPool } from '../pool/smtp-pool.js';
import { MemoryStore } from '../store/memory-store.js';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { generateKeyRingKey } from './key-ring.js';
import { rotateKeys } from './smtp-configs.js';
import { storedCredentials } from './stored-credentials.js';

// Stored configs with DKIM end to end: saved with the key encrypted in a MemoryStore, resolved, sent through a real
// sink, and the message the sink received verified by mailauth against the test key's TXT record.

const k1 = generateKeyRingKey();
const k2 = generateKeyRingKey();
const ringV1 = { current: 'k1', keys: { k1 } };
const ringV2 = { current: 'k2', keys: { k1, k2 } };
const sinkHosts = { hosts: { allowHosts: ['127.0.0.1'] } };

const KEY = rsaDkimKey();
const DNS = { 'sel1._domainkey.example.com': KEY.txtRecord };
const keyLines = KEY.privateKey.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----'));

const resources: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const r of resources.splice(0).reverse()) await r.close();
});

async function sink(): Promise<SmtpSink> {
  const started = await startSmtpSink();
  resources.push(started);
  return started;
}

const account = (s: SmtpSink) => ({
  name: 'signed',
  host: s.host,
  port: s.port,
  security: 'none' as const,
  fromAddress: 'agent@example.com',
  dkim: { domainName: 'example.com', keySelector: 'sel1', privateKey: KEY.privateKey },
});

async function sendThrough(servers: readonly SmtpServerConfig[], s: SmtpSink): Promise<Buffer> {
  const pool = new SmtpPool({ servers, maxRetryWaitMs: 0 });
  resources.push({ close: () => pool.close() });
  const before = s.messages.length;
  await pool.send({
    envelope: { from: 'agent@example.com', to: ['ada@example.com'] },
    messageId: `<${randomUUID()}@example.com>`,
    from: servers[0]!.from,
    to: 'ada@example.com',
    subject: 'signed from a stored config',
    text: 'hello',
    headers: { 'List-Unsubscribe': '<https://t.example/u/x>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
  });
  return (await s.waitForMessages(before + 1))[before]!.raw;
}

const leaksKey = (text: string): boolean => text.includes(KEY.privateKey.trim()) || keyLines.some((line) => text.includes(line));

describe('stored SMTP configs with DKIM', () => {
  it('saves the key encrypted, never returns it, and signs what it sends so that it verifies', async () => {
    const s = await sink();
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, ...sinkHosts });
    const ownerId = `owner-${randomUUID()}`;

    const saved = await credentials.saveSmtpConfig(ownerId, account(s));
    expect(saved).toMatchObject({ dkim: { domainName: 'example.com', keySelector: 'sel1' }, hasDkimKey: true, dkimKeyId: 'k1' });

    const row = (await store.credentials.get(ownerId, saved.id))!;
    expect(row).toMatchObject({ dkimDomain: 'example.com', dkimSelector: 'sel1', dkimKeyId: 'k1' });
    expect(row.dkimKeyCiphertext).toEqual(expect.any(String));
    expect(row.dkimKeyCiphertext).not.toBe(KEY.privateKey);
    expect(leaksKey(Buffer.from(row.dkimKeyCiphertext!, 'base64').toString('latin1'))).toBe(false);

    const servers = await credentials.resolve({ ownerId });
    const raw = await sendThrough(servers, s);
    expect((await verifyDkim(raw, DNS)).map((r) => [r.signingDomain, r.selector, r.status.result])).toEqual([['example.com', 'sel1', 'pass']]);
    expect(dkimSignatureTags(raw).h!.toLowerCase().split(':')).toEqual(expect.arrayContaining(['list-unsubscribe', 'list-unsubscribe-post']));

    const shown = [
      inspect(store, { depth: Infinity, showHidden: true }),
      JSON.stringify(store),
      inspect(credentials, { depth: Infinity, showHidden: true }),
      inspect(servers, { depth: Infinity }),
      JSON.stringify(servers),
      JSON.stringify({ ...servers[0] }),
      JSON.stringify(saved),
      inspect(await credentials.listSmtpConfigs(ownerId), { depth: Infinity }),
      JSON.stringify(await credentials.getSmtpConfig(ownerId, saved.id)),
    ];
    expect(shown.filter(leaksKey)).toEqual([]);
  });

  it('an edit without privateKey keeps the key; dkim: null removes it', async () => {
    const s = await sink();
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, ...sinkHosts });
    const ownerId = `owner-${randomUUID()}`;
    const saved = await credentials.saveSmtpConfig(ownerId, account(s));
    const ciphertext = (await store.credentials.get(ownerId, saved.id))!.dkimKeyCiphertext;

    const renamed = await credentials.saveSmtpConfig(ownerId, { id: saved.id, name: 'renamed' });
    expect(renamed).toMatchObject({ dkim: { domainName: 'example.com', keySelector: 'sel1' }, hasDkimKey: true });
    expect((await store.credentials.get(ownerId, saved.id))!.dkimKeyCiphertext).toBe(ciphertext);
    const raw = await sendThrough(await credentials.resolve({ ownerId }), s);
    expect((await verifyDkim(raw, DNS)).map((r) => r.status.result)).toEqual(['pass']);

    const cleared = await credentials.saveSmtpConfig(ownerId, { id: saved.id, dkim: null });
    expect(cleared).toMatchObject({ dkim: undefined, hasDkimKey: false, dkimKeyId: undefined });
    const unsigned = await sendThrough(await credentials.resolve({ ownerId }), s);
    expect(dkimSignatureTags(unsigned)).toEqual({});
  });

  it('refuses a bad key naming dkim.privateKey without quoting it, and a new DKIM config without a key', async () => {
    const s = await sink();
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, ...sinkHosts });
    const ownerId = `owner-${randomUUID()}`;
    // Lines missing from the middle: still PEM, no longer a key.
    const bad = KEY.privateKey.replace(keyLines.slice(3, 9).join('\n'), '');

    const error = await credentials.saveSmtpConfig(ownerId, { ...account(s), dkim: { ...account(s).dkim, privateKey: bad } }).catch((e: unknown) => e);
    expect(ValidationError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ field: 'dkim.privateKey' });
    expect(leaksKey(`${(error as Error).message}\n${inspect(error, { depth: 10 })}\n${JSON.stringify(error)}`)).toBe(false);

    await expect(credentials.saveSmtpConfig(ownerId, { ...account(s), dkim: { domainName: 'example.com', keySelector: 'sel1' } })).rejects.toMatchObject({ field: 'dkim.privateKey' });
    expect(await credentials.listSmtpConfigs(ownerId)).toEqual([]);
  });

  it('rotateKeys re-encrypts the DKIM key, which still signs', async () => {
    const s = await sink();
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const saved = await storedCredentials({ store, keyRing: ringV1, ...sinkHosts }).saveSmtpConfig(ownerId, account(s));
    const before = (await store.credentials.get(ownerId, saved.id))!.dkimKeyCiphertext;

    expect(await rotateKeys({ store, keyRing: ringV2 })).toEqual({ rotated: 1, skipped: 0 });
    const after = (await store.credentials.get(ownerId, saved.id))!;
    expect(after.dkimKeyId).toBe('k2');
    expect(after.dkimKeyCiphertext).not.toBe(before);

    const onlyK2 = storedCredentials({ store, keyRing: { current: 'k2', keys: { k2 } }, ...sinkHosts });
    const raw = await sendThrough(await onlyK2.resolve({ ownerId }), s);
    expect((await verifyDkim(raw, DNS)).map((r) => r.status.result)).toEqual(['pass']);
  });

  it('a password ciphertext swapped into the DKIM key field does not decrypt (its own additional data)', async () => {
    const s = await sink();
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, ...sinkHosts, refreshMs: 0 });
    const ownerId = `owner-${randomUUID()}`;
    const saved = await credentials.saveSmtpConfig(ownerId, { ...account(s), username: 'user', password: 'Pw-long-enough-1' }, { test: false });
    const row = (await store.credentials.get(ownerId, saved.id))!;
    await store.credentials.save({ ...row, dkimKeyCiphertext: row.passwordCiphertext, dkimKeyId: row.keyId });

    const error = await credentials.resolve({ ownerId }).catch((e: unknown) => e);
    expect(ConfigError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/^The DKIM key of SMTP config "signed" .* could not be decrypted/);
  });
});
