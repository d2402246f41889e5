import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { SmtpPool } from '../pool/smtp-pool.js';
import { MemoryStore } from '../store/memory-store.js';
import { type SmtpSink, type SmtpSinkOptions, startSmtpSink } from '@agent-smtp/testing';
import type { LookupFn } from './host-guard.js';
import { generateKeyRingKey, KeyRing } from './key-ring.js';
import { rotateKeys, saveSmtpConfig } from './smtp-configs.js';
import { storedCredentials } from './stored-credentials.js';

// Stored SMTP configs end to end: saved through the connection test, encrypted in a MemoryStore, resolved and sent
// through a real SMTP sink that requires AUTH; every assertion on what the sink received.

const k1 = generateKeyRingKey();
const k2 = generateKeyRingKey();
const ringV1 = { current: 'k1', keys: { k1 } };
const ringV2 = { current: 'k2', keys: { k1, k2 } };

/** The sinks listen on 127.0.0.1, which a stored config may reach only where the deployment allows it. */
const sinkHosts = { hosts: { allowHosts: ['127.0.0.1'] } };
const PUBLIC = '93.184.216.34';
/** Every name resolves to one public address (nothing connects to it): the tests of *.example.com configs need no network. */
const publicDns: LookupFn = async () => [{ address: PUBLIC, family: 4 }];

const resources: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const r of resources.splice(0).reverse()) await r.close();
});

async function sink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const started = await startSmtpSink(options);
  resources.push(started);
  return started;
}

/** A distinctive password per account, so a dump can be searched for it. */
const password = (): string => `Pw-${randomUUID()}-plain`;

/** The account a sink accepts, as a platform user would enter it. */
const accountFor = (s: SmtpSink, name: string, pass: string) => ({
  name,
  host: s.host,
  port: s.port,
  security: 'none' as const,
  username: `user-${name}@example.com`,
  password: pass,
  fromAddress: `${name}@example.com`,
  fromName: `Agent of ${name}`,
});

/** Sends one message through `servers` and returns what the sink received. */
async function sendThrough(servers: readonly SmtpServerConfig[], s: SmtpSink, subject: string) {
  const pool = new SmtpPool({ servers, maxRetryWaitMs: 0 });
  try {
    const before = s.messages.length;
    await pool.send({ envelope: { from: 'agent@example.com', to: ['ada@example.com'] }, messageId: `<${randomUUID()}@example.com>`, from: servers[0]!.from, to: 'ada@example.com', subject, text: 'hello' });
    const received = await s.waitForMessages(before + 1);
    return received[before]!;
  } finally {
    await pool.close();
  }
}

/** Every way the store's contents can be shown. */
const dumps = (store: MemoryStore): string[] => [inspect(store, { depth: Infinity, showHidden: true }), JSON.stringify(store), inspect(store.credentials, { depth: Infinity, showHidden: true })];

describe('stored SMTP configs', () => {
  it('tests, saves encrypted, resolves and sends through the account, and never shows the password', async () => {
    const pass = password();
    const s = await sink({ auth: { user: 'user-work@example.com', pass } });
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, ...sinkHosts });
    const ownerId = `owner-${randomUUID()}`;

    const connectionsBefore = s.stats.connections;
    const saved = await credentials.saveSmtpConfig(ownerId, accountFor(s, 'work', pass));
    // The connection test logged in once.
    expect(s.stats.connections).toBe(connectionsBefore + 1);
    expect(saved).toMatchObject({ name: 'work', host: '127.0.0.1', port: s.port, security: 'none', username: 'user-work@example.com', hasPassword: true, keyId: 'k1', isDefault: true, active: true });

    const servers = await credentials.resolve({ ownerId, agentId: 'agent-1' });
    expect(servers).toHaveLength(1);
    expect(servers[0]).toMatchObject({ name: 'work', host: '127.0.0.1', port: s.port, secure: false, starttls: 'disabled', from: '"Agent of work" <work@example.com>', auth: { user: 'user-work@example.com' } });
    const received = await sendThrough(servers, s, 'via stored config');
    expect(received).toMatchObject({ user: 'user-work@example.com', subject: 'via stored config', envelope: { from: 'agent@example.com', to: ['ada@example.com'] } });

    const shown = [
      ...dumps(store),
      inspect(credentials, { depth: Infinity, showHidden: true }),
      JSON.stringify(credentials),
      inspect(servers, { depth: Infinity }),
      JSON.stringify(servers),
      JSON.stringify({ ...servers[0] }),
      JSON.stringify(saved),
      inspect(await credentials.listSmtpConfigs(ownerId), { depth: Infinity }),
      JSON.stringify(await credentials.getSmtpConfig(ownerId, saved.id)),
    ];
    for (const text of shown) expect(text).not.toContain(pass);
    // The ciphertext is in the store; nothing that looks like the password's base64 is.
    expect(dumps(store).join('')).not.toContain(Buffer.from(pass).toString('base64').slice(0, 24));
  });

  it('refuses to save a config whose password the server refuses, naming what to fix, and stores nothing', async () => {
    const s = await sink({ auth: { user: 'user-work@example.com', pass: password() } });
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const wrong = password();
    const error = await saveSmtpConfig({ store, keyRing: ringV1, ...sinkHosts }, ownerId, accountFor(s, 'work', wrong)).then(
      () => undefined,
      (e: unknown) => e as AgentSmtpError,
    );
    expect(AgentSmtpError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ name: 'SmtpError', code: 'SMTP_AUTH', smtpCode: 'EAUTH', retryable: false });
    expect(error!.message).toMatch(/^The connection test of SMTP config "work" \(127\.0\.0\.1:\d+\) failed: the server refused the login: check username and password/);
    expect(error!.message).toMatch(/Nothing was saved; to save it without a test, pass \{ test: false \}\./);
    expect(error!.message).toContain('535');
    for (const text of [error!.message, JSON.stringify(error), inspect(error, { depth: Infinity, showHidden: true })]) expect(text).not.toContain(wrong);
    expect(await store.credentials.list(ownerId)).toEqual([]);
    expect(s.messages).toEqual([]);

    // Unreachable: a port nothing listens on (the sink's, once closed).
    const closed = await sink();
    const port = closed.port;
    await closed.close();
    const unreachable = await saveSmtpConfig({ store, keyRing: ringV1, ...sinkHosts }, ownerId, { ...accountFor(s, 'gone', wrong), port }).catch((e: unknown) => e as AgentSmtpError);
    expect(unreachable).toMatchObject({ code: 'SMTP_TRANSIENT', retryable: true });
    expect((unreachable as Error).message).toMatch(/could not be reached or did not answer: check host and port/);
    expect(await store.credentials.list(ownerId)).toEqual([]);
  });

  it('explains a TLS mistake of a stored config in its own fields (security, port), without a doubled period', async () => {
    const s = await sink();
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    // security: "tls" against a plain port: the test must name `security`, not the `secure` the account does not have.
    const account = { ...accountFor(s, 'tls', password()), security: 'tls' as const };
    const error = await saveSmtpConfig({ store, keyRing: ringV1, ...sinkHosts }, ownerId, account).catch((e: unknown) => e as AgentSmtpError);
    expect(error).toMatchObject({ code: 'SMTP_AUTH' });
    const message = (error as Error).message;
    expect(message).toContain('security: "tls" starts TLS from the first byte');
    expect(message).toContain(`port: 465, security: "tls"`);
    expect(message).not.toMatch(/secure:|SMTP_/);
    expect(message).not.toContain('..');
    expect(message).toMatch(/\. Nothing was saved; to save it without a test, pass \{ test: false \}\.$/);
    expect(await store.credentials.list(ownerId)).toEqual([]);
  });

  it('saves without connecting when test is false', async () => {
    const s = await sink({ auth: { user: 'u@example.com', pass: password() } });
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const saved = await saveSmtpConfig({ store, keyRing: ringV1, ...sinkHosts }, ownerId, accountFor(s, 'untested', password()), { test: false });
    expect(saved).toMatchObject({ name: 'untested', hasPassword: true });
    expect(s.stats.connections).toBe(0);
    expect(await store.credentials.list(ownerId)).toHaveLength(1);
  });

  it('refuses a ciphertext copied to another owner’s or another config’s row, with a clear error', async () => {
    const store = new MemoryStore();
    const keyRing = KeyRing.from(ringV1);
    const context = { store, keyRing, lookup: publicDns };
    const [alice, mallory] = [`owner-${randomUUID()}`, `owner-${randomUUID()}`];
    const pass = password();
    const account = { host: 'smtp.example.com', port: 587, security: 'starttls' as const, username: 'alice@example.com' };
    const original = await saveSmtpConfig(context, alice, { ...account, name: 'alice-work', password: pass }, { test: false });
    const second = await saveSmtpConfig(context, alice, { ...account, name: 'alice-other', password: password() }, { test: false });
    const target = await saveSmtpConfig(context, mallory, { ...account, name: 'mallory', password: password() }, { test: false });
    const stolen = (await store.credentials.get(alice, original.id))!;

    // Another owner's row, and another config of the same owner.
    for (const [ownerId, row] of [
      [mallory, target],
      [alice, second],
    ] as const) {
      const victim = (await store.credentials.get(ownerId, row.id))!;
      await store.credentials.save({ ...victim, passwordCiphertext: stolen.passwordCiphertext, keyId: stolen.keyId });
      const credentials = storedCredentials({ store, keyRing, refreshMs: 0, lookup: publicDns });
      const error = await credentials.resolve({ ownerId, configId: row.id }).catch((e: unknown) => e as AgentSmtpError);
      expect(error).toMatchObject({ name: 'ConfigError', code: 'CONFIG_ERROR', setting: 'keyRing.keys.k1' });
      expect((error as Error).message).toBe(
        `The password of SMTP config "${row.name}" (id ${row.id}, owner ${ownerId}) could not be decrypted with key "k1": it was encrypted for ` +
          'another owner or record (copied here), was altered, or keyRing.keys.k1 is not the key it was encrypted with. Save the secret again to replace it.',
      );
      expect((error as Error).message).not.toContain(pass);
    }
    // The original still opens where it belongs.
    const servers = await storedCredentials({ store, keyRing, lookup: publicDns }).resolve({ ownerId: alice, configId: original.id });
    expect(servers[0]!.auth!.pass).toBe(pass);
  });

  it('keeps every config working after rotateKeys: resolved under the new key only and sent through the sink', async () => {
    const store = new MemoryStore();
    const owners = [`owner-${randomUUID()}`, `owner-${randomUUID()}`];
    const accounts: { ownerId: string; name: string; pass: string; id?: string }[] = [];
    const sinks = new Map<string, SmtpSink>();
    for (const [i, ownerId] of owners.entries()) {
      for (const name of [`o${i}-a`, `o${i}-b`]) {
        const pass = password();
        const s = await sink({ auth: { user: `user-${name}@example.com`, pass } });
        sinks.set(name, s);
        const saved = await saveSmtpConfig({ store, keyRing: ringV1, ...sinkHosts }, ownerId, accountFor(s, name, pass), { test: false });
        accounts.push({ ownerId, name, pass, id: saved.id });
      }
    }
    // One without a password is left alone.
    const open = await saveSmtpConfig({ store, keyRing: ringV1, lookup: publicDns }, owners[0]!, { name: 'relay', host: 'relay.example.com', security: 'none' }, { test: false });

    const before = new Map((await Promise.all(owners.map((o) => store.credentials.list(o)))).flat().map((c) => [c.id, c.passwordCiphertext]));
    expect(await rotateKeys({ store, keyRing: ringV2 }, { batchSize: 3 })).toEqual({ rotated: 4, skipped: 0 });
    const after = (await Promise.all(owners.map((o) => store.credentials.list(o)))).flat();
    for (const config of after.filter((c) => c.id !== open.id)) {
      expect(config.keyId).toBe('k2');
      expect(config.passwordCiphertext).not.toBe(before.get(config.id));
    }
    expect(after.find((c) => c.id === open.id)).toMatchObject({ keyId: undefined, passwordCiphertext: undefined });
    // Nothing left to rotate.
    expect(await rotateKeys({ store, keyRing: ringV2 })).toEqual({ rotated: 0, skipped: 0 });

    // k1 is gone from the ring: every config resolves under k2 alone, and logs in.
    const credentials = storedCredentials({ store, keyRing: { current: 'k2', keys: { k2 } }, ...sinkHosts });
    for (const account of accounts) {
      const servers = await credentials.resolve({ ownerId: account.ownerId, configId: account.id });
      const s = sinks.get(account.name)!;
      const received = await sendThrough(servers, s, `after rotation ${account.name}`);
      expect(received).toMatchObject({ user: `user-${account.name}@example.com`, subject: `after rotation ${account.name}` });
      expect(s.messages).toHaveLength(1);
    }
  });

  it('names a key id missing from the ring, when resolving and when rotating', async () => {
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const saved = await saveSmtpConfig({ store, keyRing: ringV1, lookup: publicDns }, ownerId, { name: 'work', host: 'smtp.example.com', username: 'u', password: password() }, { test: false });
    const onlyK2 = { current: 'k2', keys: { k2 } };
    const error = await storedCredentials({ store, keyRing: onlyK2 }).resolve({ ownerId }).catch((e: unknown) => e as AgentSmtpError);
    expect(error).toMatchObject({ code: 'CONFIG_ERROR', setting: 'keyRing.keys.k1' });
    expect((error as Error).message).toBe(
      `The password of SMTP config "work" (id ${saved.id}, owner ${ownerId}) was encrypted with key "k1", which keyRing.keys does not have (it has k2): ` +
        'add key "k1" back to keyRing.keys, or save the secret again.',
    );
    const rotation = await rotateKeys({ store, keyRing: onlyK2 }).catch((e: unknown) => e as AgentSmtpError);
    expect(rotation).toMatchObject({ code: 'CONFIG_ERROR', setting: 'keyRing.keys.k1' });
    expect((rotation as Error).message).toMatch(/^rotateKeys re-encrypted 0 secret\(s\) but could not decrypt 1: "work" \(id smtp_[\w-]+, owner owner-[\w-]+, key k1\)\. First reason: The password/);
    expect((await store.credentials.get(ownerId, saved.id))!.keyId).toBe('k1');
  });
});

describe('storedCredentials: which servers, and telling a cache when they change', () => {
  const config = (name: string, extra: object = {}) => ({ name, host: `${name}.example.com`, port: 587, security: 'starttls' as const, username: `${name}@example.com`, password: password(), ...extra });

  it('resolves the default (or one config by id), and says what to set up when there is none', async () => {
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, lookup: publicDns });
    const ownerId = `owner-${randomUUID()}`;
    await expect(credentials.resolve({ ownerId })).rejects.toMatchObject({ code: 'CONFIG_ERROR', message: expect.stringMatching(/has no SMTP config: save one with saveSmtpConfig/) });
    const a = await credentials.saveSmtpConfig(ownerId, config('a'), { test: false });
    const b = await credentials.saveSmtpConfig(ownerId, config('b'), { test: false });
    expect((await credentials.resolve({ ownerId })).map((s) => s.name)).toEqual(['a']);
    expect((await credentials.resolve({ ownerId, configId: b.id })).map((s) => s.name)).toEqual(['b']);
    await credentials.setDefaultSmtpConfig(ownerId, b.id);
    expect((await credentials.resolve({ ownerId })).map((s) => s.name)).toEqual(['b']);
    await credentials.saveSmtpConfig(ownerId, { id: b.id, active: false }, { test: false });
    await expect(credentials.resolve({ ownerId })).rejects.toMatchObject({ code: 'CONFIG_ERROR', message: expect.stringMatching(/default SMTP config "b" .* is inactive/) });
    await expect(credentials.resolve({ ownerId, configId: 'smtp_nope' })).rejects.toMatchObject({ setting: 'configId' });
    // With failover, the other active configs follow the default, by priority.
    const failover = storedCredentials({ store, keyRing: ringV1, failover: true, refreshMs: 0, lookup: publicDns });
    await credentials.saveSmtpConfig(ownerId, { id: b.id, active: true }, { test: false });
    expect((await failover.resolve({ ownerId })).map((s) => [s.name, s.priority])).toEqual([
      ['b', 2],
      ['a', 1],
    ]);
    expect(await credentials.deleteSmtpConfig(ownerId, a.id)).toBe(true);
    expect((await failover.resolve({ ownerId })).map((s) => s.name)).toEqual(['b']);
  });

  it('returns the same array while nothing changed, and tells listeners at once when something did', async () => {
    const store = new MemoryStore();
    // Saves under k1 and can read k2, the key the rotation below moves to.
    const credentials = storedCredentials({ store, keyRing: { current: 'k1', keys: { k1, k2 } }, refreshMs: 0, lookup: publicDns });
    const changed: string[] = [];
    const unsubscribe = credentials.onChange((ownerId) => changed.push(ownerId));
    const ownerId = `owner-${randomUUID()}`;
    const a = await credentials.saveSmtpConfig(ownerId, config('a'), { test: false });
    expect(changed).toEqual([ownerId]);
    const first = await credentials.resolve({ ownerId });
    // refreshMs 0: the store is read again each time, and unchanged rows give back the same array.
    expect(await credentials.resolve({ ownerId })).toBe(first);

    // A key rotation changes ciphertexts, not servers: same array, no change reported.
    await rotateKeys({ store, keyRing: ringV2 });
    expect(await credentials.resolve({ ownerId })).toBe(first);
    expect(changed).toEqual([ownerId]);

    // A new password through the provider: a new array, reported.
    await credentials.saveSmtpConfig(ownerId, { id: a.id, password: 'another-password' }, { test: false });
    expect(changed).toEqual([ownerId, ownerId]);
    const second = await credentials.resolve({ ownerId });
    expect(second).not.toBe(first);
    expect(second[0]!.auth!.pass).toBe('another-password');

    // A change another process made (straight to the store) is found on the next read and reported.
    // Moving the account to another host needs its password again: the stored one stays with the old server.
    await expect(saveSmtpConfig({ store, keyRing: ringV1, lookup: publicDns }, ownerId, { id: a.id, host: 'moved.example.com' }, { test: false })).rejects.toMatchObject({
      field: 'password',
    });
    await saveSmtpConfig({ store, keyRing: ringV1, lookup: publicDns }, ownerId, { id: a.id, host: 'moved.example.com', password: 'moved-password' }, { test: false });
    const third = await credentials.resolve({ ownerId });
    expect(third[0]).toMatchObject({ host: PUBLIC, tls: { servername: 'moved.example.com' } });
    expect(changed).toEqual([ownerId, ownerId, ownerId]);
    unsubscribe();
    await credentials.deleteSmtpConfig(ownerId, a.id);
    expect(changed).toHaveLength(3);
  });

  it('serves from memory within refreshMs, and a failed save reports no change', async () => {
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, refreshMs: 60_000, lookup: publicDns });
    const ownerId = `owner-${randomUUID()}`;
    await credentials.saveSmtpConfig(ownerId, config('a'), { test: false });
    const first = await credentials.resolve({ ownerId });
    let reads = 0;
    const list = store.credentials.list.bind(store.credentials);
    store.credentials.list = async (o) => {
      reads++;
      return list(o);
    };
    expect(await Promise.all(Array.from({ length: 20 }, () => credentials.resolve({ ownerId })))).toEqual(Array(20).fill(first));
    expect(reads).toBe(0);
    const changed: string[] = [];
    credentials.onChange((o) => changed.push(o));
    await expect(credentials.saveSmtpConfig(ownerId, config('a'), { test: false })).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'name' });
    expect(changed).toEqual([]);
    expect(await credentials.resolve({ ownerId })).toBe(first);
  });

  it('validates input naming the field, never repeating the password', async () => {
    const store = new MemoryStore();
    const context = { store, keyRing: ringV1, lookup: publicDns };
    const ownerId = `owner-${randomUUID()}`;
    const secret = password();
    const cases: [object, string, RegExp][] = [
      [{ host: 'smtp.example.com' }, 'name', /is required/],
      [{ name: 'x' }, 'host', /is required/],
      [{ name: 'x', host: 'user:pw@smtp.example.com' }, 'host', /host name or IP address only/],
      [{ name: 'x', host: 'smtp.example.com', port: 70_000 }, 'port', /65535/],
      [{ name: 'x', host: 'smtp.example.com', security: 'ssl' }, 'security', /tls|starttls|none/],
      [{ name: 'x', host: 'smtp.example.com', password: secret }, 'password', /needs a username/],
      [{ name: 'x', host: 'smtp.example.com', username: 'u', password: secret, fromAddress: 'not an address' }, 'fromAddress', /./],
      [{ name: 'x', host: 'smtp.example.com', passwrod: secret }, '(input)', /unknown field/],
    ];
    for (const [input, field, message] of cases) {
      const error = await saveSmtpConfig(context, ownerId, input, { test: false }).catch((e: unknown) => e as AgentSmtpError & { field: string });
      expect(error).toMatchObject({ code: 'VALIDATION_ERROR', field });
      expect((error as Error).message).toMatch(message);
      expect(JSON.stringify(error)).not.toContain(secret);
    }
    await expect(saveSmtpConfig(context, ownerId, { id: 'smtp_missing', name: 'x' }, { test: false })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await store.credentials.list(ownerId)).toEqual([]);
  });

  it('maps security to TLS settings, with usual ports', async () => {
    const store = new MemoryStore();
    const credentials = storedCredentials({ store, keyRing: ringV1, serverDefaults: { timeouts: { connectionMs: 2_000 } }, lookup: publicDns });
    const ownerId = `owner-${randomUUID()}`;
    const tls = await credentials.saveSmtpConfig(ownerId, { name: 'tls', host: 'h.example.com', security: 'tls' }, { test: false });
    const starttls = await credentials.saveSmtpConfig(ownerId, { name: 'starttls', host: 'h.example.com' }, { test: false });
    const none = await credentials.saveSmtpConfig(ownerId, { name: 'none', host: 'h.example.com', security: 'none' }, { test: false });
    const inferred = await credentials.saveSmtpConfig(ownerId, { name: 'inferred', host: 'h.example.com', port: 465 }, { test: false });
    expect([tls, starttls, none, inferred].map((c) => [c.security, c.port])).toEqual([
      ['tls', 465],
      ['starttls', 587],
      ['none', 25],
      ['tls', 465],
    ]);
    const resolved = async (id: string) => (await credentials.resolve({ ownerId, configId: id }))[0]!;
    expect(await resolved(tls.id)).toEqual({ name: 'tls', host: PUBLIC, port: 465, secure: true, timeouts: { connectionMs: 2_000 }, tls: { servername: 'h.example.com' } });
    expect(await resolved(starttls.id)).toMatchObject({ secure: false, starttls: 'required' });
    expect(await resolved(none.id)).toMatchObject({ secure: false, starttls: 'disabled' });
    // Changing the mode alone moves to that mode's port.
    expect(await credentials.saveSmtpConfig(ownerId, { id: tls.id, security: 'starttls' }, { test: false })).toMatchObject({ security: 'starttls', port: 587 });
  });
});

describe('storedCredentials: which hosts a stored config may reach', () => {
  /** A lookup whose answers the test changes, counting the questions. */
  function switchableDns(initial: string[]) {
    const dns = { answers: initial, asked: 0 };
    const lookup: LookupFn = async () => {
      dns.asked++;
      return dns.answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
    return Object.assign(dns, { lookup });
  }

  it('refuses to save a host on a private network by default, before connecting, and stores nothing', async () => {
    const s = await sink({ auth: { user: 'user-work@example.com', pass: password() } });
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const credentials = storedCredentials({ store, keyRing: ringV1, lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    const changed: string[] = [];
    credentials.onChange((o) => changed.push(o));
    const account = accountFor(s, 'work', password());
    for (const [input, options] of [
      [account, undefined],
      [account, { test: false }],
      [{ ...account, host: 'mail.rebind.example.com' }, undefined],
      [{ ...account, host: '[::1]' }, { test: false }],
      [{ ...account, host: '2130706433' }, { test: false }],
    ] as const) {
      const error = await credentials.saveSmtpConfig(ownerId, input, options).catch((e: unknown) => e as AgentSmtpError);
      expect(error).toMatchObject({ name: 'ValidationError', code: 'VALIDATION_ERROR', field: 'host' });
      expect((error as Error).message).toMatch(/a loopback address, which an SMTP config may not reach.*hosts: \{ allowPrivate: true \}/);
      expect((error as Error).message).not.toContain(input.password);
    }
    expect(s.stats.connections).toBe(0);
    expect(await store.credentials.list(ownerId)).toEqual([]);
    expect(changed).toEqual([]);
  });

  it('with allowPrivate, saves and sends through a name on the private network, connecting to the address it was checked at', async () => {
    const pass = password();
    const s = await sink({ auth: { user: 'user-relay@example.com', pass } });
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const dns = switchableDns(['127.0.0.1']);
    const credentials = storedCredentials({ store, keyRing: ringV1, hosts: { allowPrivate: true }, lookup: dns.lookup });
    const saved = await credentials.saveSmtpConfig(ownerId, { ...accountFor(s, 'relay', pass), host: 'relay.internal.example' });
    expect(s.stats.connections).toBe(1);
    // What the user entered is what they see.
    expect(saved).toMatchObject({ name: 'relay', host: 'relay.internal.example' });
    const servers = await credentials.resolve({ ownerId });
    expect(servers[0]).toMatchObject({ name: 'relay', host: '127.0.0.1', port: s.port, tls: { servername: 'relay.internal.example' } });
    const received = await sendThrough(servers, s, 'through the relay');
    expect(received).toMatchObject({ user: 'user-relay@example.com', subject: 'through the relay' });
  });

  it('connects to the address checked at resolve even when DNS answers otherwise later (rebinding), and checks again after refreshMs', async () => {
    const pass = password();
    const s = await sink({ auth: { user: 'user-work@example.com', pass } });
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const dns = switchableDns(['127.0.0.1']);
    const options = { store, keyRing: ringV1, hosts: { allowHosts: ['127.0.0.1'] }, lookup: dns.lookup };
    const credentials = storedCredentials({ ...options, refreshMs: 60_000 });
    const saved = await credentials.saveSmtpConfig(ownerId, { ...accountFor(s, 'work', pass), host: 'mail.rebind.example' });
    const servers = await credentials.resolve({ ownerId });
    expect(servers[0]).toMatchObject({ host: '127.0.0.1', tls: { servername: 'mail.rebind.example' } });
    const asked = dns.asked;

    // The name now points into the private network. Within refreshMs nothing looks it up again, and the pool
    // connects to the checked address: the name itself would not resolve at all (nothing but the fake knows it).
    dns.answers = ['10.9.9.9'];
    expect(await credentials.resolve({ ownerId })).toBe(servers);
    const received = await sendThrough(servers, s, 'to the checked address');
    expect(received).toMatchObject({ subject: 'to the checked address' });
    expect(dns.asked).toBe(asked);

    // Once looked up again, it is refused, naming the config.
    const error = await storedCredentials({ ...options, refreshMs: 0 })
      .resolve({ ownerId })
      .catch((e: unknown) => e as AgentSmtpError);
    expect(error).toMatchObject({ name: 'ValidationError', field: 'host' });
    expect((error as Error).message).toBe(
      `host: (SMTP config "work", owner "${ownerId}") "mail.rebind.example" resolves to a private address, which an SMTP config may not reach: use the mail server's public host name. ` +
        'An operator who means to allow it sets hosts: { allowPrivate: true } or lists the host in hosts.allowHosts (storedCredentials options).',
    );
    expect(dns.asked).toBe(asked + 1);
    expect(saved.host).toBe('mail.rebind.example');
  });

  it('answers public first, then loopback: the resolved config keeps the first checked address until a new check refuses it', async () => {
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const dns = switchableDns([PUBLIC]);
    const cached = storedCredentials({ store, keyRing: ringV1, lookup: dns.lookup, refreshMs: 60_000 });
    const fresh = storedCredentials({ store, keyRing: ringV1, lookup: dns.lookup, refreshMs: 0 });
    await cached.saveSmtpConfig(ownerId, { name: 'work', host: 'smtp.rebind.example', username: 'u', password: password() }, { test: false });
    const first = await cached.resolve({ ownerId });
    expect(first[0]).toMatchObject({ host: PUBLIC, tls: { servername: 'smtp.rebind.example' } });
    expect(await fresh.resolve({ ownerId })).toMatchObject([{ host: PUBLIC }]);

    dns.answers = ['127.0.0.1'];
    expect(await cached.resolve({ ownerId })).toBe(first);
    expect(first[0]!.host).toBe(PUBLIC);
    await expect(fresh.resolve({ ownerId })).rejects.toMatchObject({ field: 'host', message: expect.stringContaining('resolves to a loopback address') });
    // A refusal is not remembered: once DNS answers public again, the config resolves again.
    dns.answers = [PUBLIC];
    expect(await fresh.resolve({ ownerId })).toMatchObject([{ host: PUBLIC }]);
  });

  it('keeps the same array while the checked address stays the same, and gives a new one when DNS moves the host', async () => {
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    const dns = switchableDns([PUBLIC, '2606:2800:220:1:248:1893:25c8:1946']);
    const credentials = storedCredentials({ store, keyRing: ringV1, lookup: dns.lookup, refreshMs: 0 });
    const changed: string[] = [];
    credentials.onChange((o) => changed.push(o));
    await credentials.saveSmtpConfig(ownerId, { name: 'work', host: 'smtp.example.com', username: 'u', password: password() }, { test: false });
    // Overlapping checks agree on one array.
    const burst = await Promise.all(Array.from({ length: 10 }, () => credentials.resolve({ ownerId })));
    const first = burst[0]!;
    expect(burst).toEqual(Array(10).fill(first));
    expect(new Set(burst).size).toBe(1);
    const asked = dns.asked;
    expect(await credentials.resolve({ ownerId })).toBe(first);
    // refreshMs 0: looked up on every resolve.
    expect(dns.asked).toBe(asked + 1);
    // Other addresses after the first one do not move the connection.
    dns.answers = [PUBLIC];
    expect(await credentials.resolve({ ownerId })).toBe(first);

    dns.answers = ['1.1.1.1'];
    const moved = await credentials.resolve({ ownerId });
    expect(moved).not.toBe(first);
    expect(moved[0]).toMatchObject({ host: '1.1.1.1', tls: { servername: 'smtp.example.com' }, auth: { user: 'u' } });
    expect(moved[0]!.auth!.pass).toBe(first[0]!.auth!.pass);
    expect(await credentials.resolve({ ownerId })).toBe(moved);
    // The store did not change, so no listener was told: the new array tells a pool cache.
    expect(changed).toEqual([ownerId]);
  });

  it('verifies a STARTTLS server reached by address against the name entered', async () => {
    const pass = password();
    const s = await sink({ tls: 'starttls', auth: { user: 'user-tls@example.com', pass } });
    const store = new MemoryStore();
    const ownerId = `owner-${randomUUID()}`;
    // The sink's certificate is for localhost (and 127.0.0.1); the platform trusts it as its private CA.
    const credentials = storedCredentials({
      store,
      keyRing: ringV1,
      hosts: { allowPrivate: true },
      lookup: async () => [{ address: '127.0.0.1', family: 4 }],
      serverDefaults: { tls: { ca: s.certificate } },
    });
    const account = { ...accountFor(s, 'tls', pass), host: 'localhost', security: 'starttls' as const };
    await credentials.saveSmtpConfig(ownerId, account);
    const servers = await credentials.resolve({ ownerId });
    expect(servers[0]).toMatchObject({ host: '127.0.0.1', starttls: 'required', tls: { ca: s.certificate, servername: 'localhost' } });
    expect(await sendThrough(servers, s, 'over verified TLS')).toMatchObject({ user: 'user-tls@example.com', subject: 'over verified TLS' });

    // Same address, another name: the certificate (which also covers 127.0.0.1) is checked against the name, and fails.
    const error = await credentials.saveSmtpConfig(ownerId, { ...account, name: 'wrong', host: 'mail.wrong.example' }).catch((e: unknown) => e as AgentSmtpError);
    expect(error).toMatchObject({ name: 'SmtpError', code: 'SMTP_AUTH' });
    expect((error as Error).message).toMatch(new RegExp(`^The connection test of SMTP config "wrong" \\(mail\\.wrong\\.example:${s.port}\\) failed: TLS failed`));
    expect((error as Error).message).toContain('mail.wrong.example');
    expect((await store.credentials.list(ownerId)).map((c) => c.name)).toEqual(['tls']);
  });
});
