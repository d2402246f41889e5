import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError, storedCredentials, type MailStore, type SecretKeeper } from '@agent-smtp/core';
import { startSmtpSink, type SmtpSink } from '@agent-smtp/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseStore } from './supabase-store.js';
import { supabaseVault, VAULT_KEY_ID } from './supabase-vault.js';
import { DATABASE_URL, startTestProject, type TestProject } from './test-support/test-project.js';

// Vault mode: SMTP passwords and DKIM keys in Supabase Vault (emulated in the test project as the supabase_vault
// extension defines its interface), the config row holding only the secret's id. Users store, only the service role
// reads, and only for the config that refers to the secret.

const passwordAad = (ownerId: string, configId: string) => JSON.stringify(['agent-smtp/smtp-config-password/v1', ownerId, configId]);
const hosts = { allowHosts: ['127.0.0.1'] };
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let project: TestProject;
let sink: SmtpSink;
beforeAll(async () => {
  project = await startTestProject({ database: DATABASE_URL ? 'server' : 'pglite' });
  sink = await startSmtpSink();
}, 60_000);
afterAll(async () => {
  await sink?.close();
  await project?.close();
});

interface User {
  id: string;
  store: MailStore;
  vault: SecretKeeper;
  credentials: ReturnType<typeof storedCredentials>;
}

function user(id = randomUUID()): User {
  const client = project.userClient(id);
  const store = createSupabaseStore({ client, schema: project.schema });
  const vault = supabaseVault({ client, schema: project.schema });
  return { id, store, vault, credentials: storedCredentials({ store, keyRing: vault, hosts }) };
}

function worker() {
  const client = project.serviceClient();
  const store = createSupabaseStore({ client, schema: project.schema });
  const vault = supabaseVault({ client, schema: project.schema });
  return { store, vault, credentials: storedCredentials({ store, keyRing: vault, hosts, refreshMs: 0 }) };
}

const secretsNamed = async (ownerId: string) =>
  (await project.db.query(`select id::text, name, secret from vault.secrets where name like $1 order by name`, [`"${project.schema}":%"${ownerId}"%`])).rows as {
    id: string;
    name: string;
    secret: string;
  }[];

describe(`Supabase Vault mode (${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`, () => {
  it('a user saves a config: the row holds the vault secret id only, and the service role reads the password for sending', async () => {
    const alice = user();
    const password = `alice-${randomUUID()}`;
    const saved = await alice.credentials.saveSmtpConfig(alice.id, { name: 'main', host: sink.host, port: sink.port, security: 'none', username: 'alice', password }, { test: false });
    const [row] = await alice.store.credentials!.list(alice.id);
    expect(row).toMatchObject({ id: saved.id, keyId: VAULT_KEY_ID, passwordCiphertext: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(JSON.stringify(row)).not.toContain(password);
    const secrets = await secretsNamed(alice.id);
    expect(secrets.map((s) => s.id)).toEqual([row!.passwordCiphertext]);
    // Named by the schema, the additional data in jsonb's text form and a random suffix (a new secret per save).
    expect(secrets[0]!.name).toMatch(new RegExp(`^${escapeRegExp(`"${project.schema}":${passwordAad(alice.id, saved.id).replaceAll(',', ', ')}/`)}[0-9a-f-]{36}$`));

    const { credentials } = worker();
    const [server] = await credentials.resolve({ ownerId: alice.id });
    expect([server!.auth?.user, server!.auth?.pass]).toEqual(['alice', password]);
  });

  it("a user's client cannot read a password back: not through the keeper, the API, or SQL on the vault", async () => {
    const bob = user();
    const password = `bob-${randomUUID()}`;
    const saved = await bob.credentials.saveSmtpConfig(bob.id, { name: 'main', host: sink.host, port: sink.port, security: 'none', username: 'bob', password }, { test: false });
    const [row] = await bob.store.credentials!.list(bob.id);
    const secret = { keyId: VAULT_KEY_ID, ciphertext: row!.passwordCiphertext! };

    const refused = await bob.vault.decrypt(secret, passwordAad(bob.id, saved.id), 'the password of SMTP config "main"').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toMatch(/only the service role may read: send from a worker made with the service-role client/);
    expect((refused as Error).message).not.toContain(password);
    // Resolving (sending directly) from the user's own client says the same.
    await expect(bob.credentials.resolve({ ownerId: bob.id })).rejects.toThrow(/only the service role may read/);

    const { data, error, status } = await project.userClient(bob.id).schema(project.schema).rpc('vault_read_secret', { p_id: secret.ciphertext, p_additional_data: passwordAad(bob.id, saved.id) });
    expect({ data, status, code: error?.code }).toEqual({ data: null, status: 403, code: '42501' });

    for (const sql of ['select secret from vault.secrets', 'select decrypted_secret from vault.decrypted_secrets', `select vault.create_secret('x')`]) {
      await expect(project.asRole('authenticated', { sub: bob.id }, (tx) => tx.query(sql)), sql).rejects.toMatchObject({ code: '42501' });
    }
    const anon = await project.anonClient().schema(project.schema).rpc('vault_save_secret', { p_additional_data: passwordAad(bob.id, saved.id), p_secret: 'x' });
    expect({ status: anon.status, code: anon.error?.code }).toEqual({ status: 401, code: '42501' });
  });

  it("user B can neither overwrite A's secret nor read it by pointing a config of their own at its id", async () => {
    const alice = user();
    const mallory = user();
    const password = `alice-${randomUUID()}`;
    const saved = await alice.credentials.saveSmtpConfig(alice.id, { name: 'main', host: sink.host, port: sink.port, security: 'none', username: 'alice', password }, { test: false });
    const [aliceRow] = await alice.store.credentials!.list(alice.id);

    await expect(mallory.vault.encrypt('stolen', passwordAad(alice.id, saved.id))).rejects.toMatchObject({ code: '42501', status: 403 });
    // Mallory's own row, naming Alice's secret id as its "ciphertext".
    await mallory.store.credentials!.save({
      ownerId: mallory.id, id: saved.id, name: 'copy', host: sink.host, port: sink.port, security: 'none', username: 'm',
      passwordCiphertext: aliceRow!.passwordCiphertext, keyId: VAULT_KEY_ID, keepPassword: false, isDefault: true, active: true, fromAddress: undefined, fromName: undefined,
    });
    const w = worker();
    await expect(w.credentials.resolve({ ownerId: mallory.id })).rejects.toThrow(/is not in Supabase Vault/);
    // Alice's password is still hers and unchanged.
    expect((await w.credentials.resolve({ ownerId: alice.id }))[0]!.auth?.pass).toBe(password);
  });

  it('refuses additional data that does not name an SMTP config secret', async () => {
    const carol = user();
    for (const aad of ['not json', '[]', JSON.stringify(['other/kind', carol.id, 'c']), JSON.stringify(['agent-smtp/smtp-config-password/v1', carol.id, ''])]) {
      await expect(carol.vault.encrypt('x', aad), aad).rejects.toMatchObject({ code: '22023' });
    }
  });

  it('a new password is a new secret and the old one goes; a removed password, a deleted config and a DKIM key leave no secret behind', async () => {
    const dave = user();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const first = await dave.credentials.saveSmtpConfig(
      dave.id,
      { name: 'main', host: sink.host, port: sink.port, security: 'none', username: 'dave', password: 'one', dkim: { domainName: 'dave.example', keySelector: 's1', privateKey } },
      { test: false },
    );
    const [before] = await dave.store.credentials!.list(dave.id);
    expect(before).toMatchObject({ keyId: VAULT_KEY_ID, dkimKeyId: VAULT_KEY_ID });
    expect((await secretsNamed(dave.id)).length).toBe(2);
    const w = worker();
    const [server] = await w.credentials.resolve({ ownerId: dave.id });
    expect([server!.auth?.pass, server!.dkim?.privateKey]).toEqual(['one', privateKey]);

    await dave.credentials.saveSmtpConfig(dave.id, { id: first.id, password: 'two' }, { test: false });
    const [after] = await dave.store.credentials!.list(dave.id);
    expect(after!.passwordCiphertext).not.toBe(before!.passwordCiphertext);
    expect((await secretsNamed(dave.id)).map((s) => s.id).sort()).toEqual([after!.passwordCiphertext, before!.dkimKeyCiphertext].sort());
    expect((await w.credentials.resolve({ ownerId: dave.id }))[0]!.auth?.pass).toBe('two');

    await dave.credentials.saveSmtpConfig(dave.id, { id: first.id, password: null }, { test: false });
    expect((await secretsNamed(dave.id)).map((s) => s.id)).toEqual([before!.dkimKeyCiphertext]);
    expect(await dave.credentials.deleteSmtpConfig(dave.id, first.id)).toBe(true);
    expect(await secretsNamed(dave.id)).toEqual([]);
  });

  it('an edit the database refuses leaves the stored password as it was; its secret is swept by a later save', async () => {
    const erin = user();
    const main = await erin.credentials.saveSmtpConfig(erin.id, { name: 'main', host: sink.host, port: sink.port, security: 'none', username: 'erin', password: 'old-pass' }, { test: false });
    await erin.credentials.saveSmtpConfig(erin.id, { name: 'other', host: sink.host, port: sink.port, security: 'none', username: 'erin', password: 'other-pass' }, { test: false });
    // Renaming main to a taken name, with a new password: refused by the row's unique name.
    await expect(erin.credentials.saveSmtpConfig(erin.id, { id: main.id, name: 'other', password: 'new-pass' }, { test: false })).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    const w = worker();
    expect((await w.credentials.resolve({ ownerId: erin.id, configId: main.id }))[0]!.auth?.pass).toBe('old-pass');
    const rows = await erin.store.credentials!.list(erin.id);
    const referenced = new Set(rows.map((r) => r.passwordCiphertext));
    const orphans = (await secretsNamed(erin.id)).filter((s) => !referenced.has(s.id));
    expect(orphans.length).toBe(1);
    // Young orphans stay (a save may be between its secret and its row); once 15 minutes old, the next save removes them.
    await erin.vault.encrypt('x', passwordAad(erin.id, 'probe'));
    expect((await secretsNamed(erin.id)).map((s) => s.id)).toContain(orphans[0]!.id);
    await project.db.query(`update vault.secrets set created_at = now() - interval '16 minutes' where id = $1 or name like '%"probe"%'`, [orphans[0]!.id]);
    await erin.vault.encrypt('y', passwordAad(erin.id, 'probe-2'));
    const left = (await secretsNamed(erin.id)).map((s) => s.id);
    expect(left).not.toContain(orphans[0]!.id);
    for (const row of rows) expect(left).toContain(row.passwordCiphertext);
  });

  it('refuses a secret over 16384 characters', async () => {
    const frank = user();
    await expect(frank.vault.encrypt('x'.repeat(16_385), passwordAad(frank.id, 'c'))).rejects.toMatchObject({ code: '22023' });
  });

  it('says what to do with a password still under a key ring, and shows no secret when inspected', async () => {
    const { vault } = worker();
    await expect(vault.decrypt({ keyId: 'k1', ciphertext: 'abc' }, passwordAad('o', 'c'), 'the password of SMTP config "old"')).rejects.toThrow(
      /The password of SMTP config "old" was encrypted with key-ring key "k1", but this service reads secrets from Supabase Vault: save the config again/,
    );
    expect(inspect(vault)).toBe(`SupabaseVault { schema: ${project.schema} }`);
    expect(JSON.stringify({ vault })).toBe(`{"vault":"[SupabaseVault ${project.schema}]"}`);
  });
});
