import { randomUUID } from 'node:crypto';
import { ConfigError, createMailService, storedCredentials, type MailService, type MailStore } from '@agent-smtp/core';
import { startSmtpSink, type SmtpSink } from '@agent-smtp/testing';
import { newOutboxRecord, runStoreContract } from '@agent-smtp/testing/store-contract';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseStore } from '../supabase-store.js';
import { supabaseVault } from '../supabase-vault.js';
import { supabaseClient } from './test-project.js';

/** A Supabase project to test against: a real one (SUPABASE_URL, …) or the in-suite test project. */
export interface ProjectUnderTest {
  url: string;
  anonKey: string;
  serviceRoleKey: string;
  /** Exposed in the project's API settings, with the package's migration applied. */
  schema: string;
}

/**
 * The project the environment names: SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY (and
 * AGENT_SMTP_SCHEMA, default `agent_smtp`), or undefined when any is missing. Use a project for tests only: the
 * suite creates users (and deletes them) and leaves their rows behind under random owners.
 */
export function projectFromEnv(env: NodeJS.ProcessEnv = process.env): ProjectUnderTest | undefined {
  const { SUPABASE_URL: url, SUPABASE_ANON_KEY: anonKey, SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey } = env;
  if (!url || !anonKey || !serviceRoleKey) return undefined;
  return { url, anonKey, serviceRoleKey, schema: env.AGENT_SMTP_SCHEMA || 'agent_smtp' };
}

interface SignedInUser {
  id: string;
  client: SupabaseClient;
  store: MailStore;
}

/**
 * What must hold on a Supabase project: the store contract through the service role (when `contract`), and, with
 * two users made through Supabase Auth, row-level security through supabase-js, passwords in Vault that a user
 * cannot read back, and a service-role worker delivering a user's message through that user's SMTP account.
 */
export function runProjectSuite(title: string, project: () => Promise<ProjectUnderTest>, options: { contract: boolean }): void {
  if (options.contract) {
    runStoreContract({
      name: `${title}, service role`,
      create: async () => {
        const p = await project();
        return createSupabaseStore({ client: supabaseClient(p.url, p.serviceRoleKey), schema: p.schema });
      },
    });
  }

  describe(`${title}: users, row-level security and Vault`, () => {
    let p: ProjectUnderTest;
    let admin: SupabaseClient;
    let a: SignedInUser;
    let b: SignedInUser;
    let sink: SmtpSink | undefined;
    let worker: MailService | undefined;
    const created: string[] = [];

    async function signUp(): Promise<SignedInUser> {
      const email = `agent-smtp-test-${randomUUID()}@example.com`;
      const password = `Pw-${randomUUID()}`;
      const made = await admin.auth.admin.createUser({ email, password, email_confirm: true });
      if (made.error) throw made.error;
      created.push(made.data.user.id);
      const signedIn = await supabaseClient(p.url, p.anonKey).auth.signInWithPassword({ email, password });
      if (signedIn.error) throw signedIn.error;
      const client = supabaseClient(p.url, p.anonKey, signedIn.data.session.access_token);
      return { id: made.data.user.id, client, store: createSupabaseStore({ client, schema: p.schema }) };
    }

    beforeAll(async () => {
      p = await project();
      admin = supabaseClient(p.url, p.serviceRoleKey);
      a = await signUp();
      b = await signUp();
    }, 60_000);
    afterAll(async () => {
      await worker?.close();
      await sink?.close();
      for (const id of created) await admin.auth.admin.deleteUser(id);
    });

    it("B cannot read, cancel, claim or list A's mail; anon can call nothing", async () => {
      const { record } = await a.store.outbox.enqueue(newOutboxRecord(a.id));
      expect(await b.store.outbox.get(a.id, record.id)).toBeUndefined();
      expect(await b.store.outbox.cancel(a.id, record.id)).toBeUndefined();
      expect(await b.store.outbox.claim({ workerId: 'w-b', leaseMs: 60_000, limit: 10, ids: [record.id] })).toEqual([]);
      expect(await b.store.events.list(a.id, { messageId: record.id })).toEqual([]);
      await expect(b.store.outbox.enqueue(newOutboxRecord(a.id))).rejects.toMatchObject({ code: '42501', status: 403 });
      const anon = createSupabaseStore({ client: supabaseClient(p.url, p.anonKey), schema: p.schema });
      await expect(anon.outbox.get(a.id, record.id)).rejects.toMatchObject({ status: 401 });
      expect((await a.store.outbox.cancel(a.id, record.id))?.cancelled).toBe(true);
    });

    it("a user's SMTP password goes to Vault, unreadable to users; a service-role worker sends the user's mail through it", { timeout: 60_000 }, async () => {
      const smtpPassword = `smtp-${randomUUID()}`;
      sink = await startSmtpSink({ auth: { user: 'a-user', pass: smtpPassword } });
      const hosts = { allowHosts: ['127.0.0.1'] };
      const asA = createMailService({ store: a.store, credentials: storedCredentials({ store: a.store, keyRing: supabaseVault({ client: a.client, schema: p.schema }), hosts }) });
      try {
        await asA.saveSmtpConfig(a.id, { name: 'main', host: sink.host, port: sink.port, security: 'none', username: 'a-user', password: smtpPassword, fromAddress: 'a@a.example' });
        const [row] = await a.store.credentials!.list(a.id);
        expect(row).toMatchObject({ keyId: 'vault', passwordCiphertext: expect.stringMatching(/^[0-9a-f-]{36}$/) });
        // Connecting needs the password, which a user's client may not read: not through the SDK, not through the API.
        await expect(asA.forAgent({ ownerId: a.id }).testConnection()).rejects.toBeInstanceOf(ConfigError);
        const aad = JSON.stringify(['agent-smtp/smtp-config-password/v1', a.id, row!.id]);
        const read = await a.client.schema(p.schema).rpc('vault_read_secret', { p_id: row!.passwordCiphertext, p_additional_data: aad });
        expect({ data: read.data, code: read.error?.code }).toEqual({ data: null, code: '42501' });
        // B can neither list A's configs nor store a secret in A's name.
        expect(await b.store.credentials!.list(a.id)).toEqual([]);
        const forged = await b.client.schema(p.schema).rpc('vault_save_secret', { p_additional_data: aad, p_secret: 'forged' });
        expect(forged.error?.code).toBe('42501');
        // The service role reads A's password, for A's config only.
        const asService = await admin.schema(p.schema).rpc('vault_read_secret', { p_id: row!.passwordCiphertext, p_additional_data: aad });
        expect(asService.data).toBe(smtpPassword);
        const elsewhere = await admin.schema(p.schema).rpc('vault_read_secret', { p_id: row!.passwordCiphertext, p_additional_data: JSON.stringify(['agent-smtp/smtp-config-password/v1', b.id, row!.id]) });
        expect(elsewhere.data).toBeNull();
        const queued = await asA.forAgent({ ownerId: a.id, agentId: 'bot' }).enqueue({ to: 'ada@example.com', subject: 'via Vault', text: 'hello' });

        const service = createSupabaseStore({ client: admin, schema: p.schema });
        worker = createMailService({ store: service, credentials: storedCredentials({ store: service, keyRing: supabaseVault({ client: admin, schema: p.schema }), hosts }) });
        // A's mail only: a shared test project may hold other owners' queued rows.
        worker.forAgent({ ownerId: a.id }).startWorker({ pollMs: 100 });
        await expect.poll(async () => (await asA.forAgent({ ownerId: a.id }).getStatus(queued.id))?.status, { timeout: 30_000 }).toBe('sent');
        expect(sink.messages.map((m) => [m.user, m.envelope.from, m.subject])).toEqual([['a-user', 'a@a.example', 'via Vault']]);
      } finally {
        await asA.close();
      }
    });
  });
}
