import { randomUUID } from 'node:crypto';
import { createMailer, createMailTools, type MailStore, MemoryStore, type OutgoingEmail, ValidationError } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { createPostgresStore } from '@agent-smtp/store-postgres';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A value PostgreSQL cannot hold (NUL: 22P05; a lone surrogate, not valid UTF-8: 22021) used to fail only on the
// Postgres store, with a raw database error and no SDK code. Every store must now refuse it the same way, before
// anything is written or sent.

interface StoreUnderTest {
  name: string;
  store: MailStore;
  close(): Promise<void>;
}

const stores: { name: string; open(): Promise<StoreUnderTest> }[] = [
  { name: 'MemoryStore', open: async () => ({ name: 'MemoryStore', store: new MemoryStore(), close: async () => undefined }) },
  {
    name: 'Postgres on PGlite',
    open: async () => {
      const db = await PGlite.create();
      const store = createPostgresStore({ client: db, schema: schemaName() });
      await store.migrate();
      return { name: 'Postgres on PGlite', store, close: () => db.close() };
    },
  },
];
if (process.env.DATABASE_URL) {
  stores.push({
    name: 'Postgres server',
    open: async () => {
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
      const schema = schemaName();
      const store = createPostgresStore({ client: pool, schema });
      await store.migrate();
      return {
        name: 'Postgres server',
        store,
        close: async () => {
          await pool.query(`drop schema if exists "${schema}" cascade`);
          await pool.end();
        },
      };
    },
  });
}

function schemaName(): string {
  return `hostile_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
}

const BAD = [
  ['NUL', '\u0000'],
  ['lone high surrogate', '\uD83D'],
  ['lone low surrogate', '\uDE00'],
] as const;

const base = { to: 'ada@example.com', subject: 'Hi', text: 'Hello' };

/** Each place a caller's text is stored or sent, with the field a refusal must name. */
const PLACES: readonly [field: string, place: (bad: string) => Partial<OutgoingEmail>][] = [
  ['text', (bad) => ({ text: `a${bad}b` })],
  ['html', (bad) => ({ html: `<p>${bad}</p>` })],
  ['markdown', (bad) => ({ text: undefined, markdown: `*${bad}*` })],
  ['subject', (bad) => ({ subject: `Hi ${bad}` })],
  ['to[0].name', (bad) => ({ to: [{ name: `Ada${bad}`, address: 'ada@example.com' }] })],
  ['headers.X-Note', (bad) => ({ headers: { 'X-Note': `v${bad}` } })],
  ['attachments[0].filename', (bad) => ({ attachments: [{ filename: `a${bad}.txt`, content: 'x' }] })],
  ['metadata.note', (bad) => ({ metadata: { note: `n${bad}` } })],
  ['metadata.k\uFFFD', (bad) => ({ metadata: { [`k${bad}`]: 1 } })],
  ['tags[0]', (bad) => ({ tags: [`t${bad}`] })],
  ['idempotencyKey', (bad) => ({ idempotencyKey: `key${bad}` })],
  ['variables.name', (bad) => ({ subject: 'Hi {name}', variables: { name: `Ada${bad}` } })],
  ['inReplyTo', (bad) => ({ inReplyTo: `<a${bad}@example.com>` })],
];

type Outcome = { code: string; field: string | undefined; sdkError: boolean } | { sent: string };

describe.each(stores)('hostile values on $name', ({ open }) => {
  let target: StoreUnderTest;
  let sink: SmtpSink;

  beforeAll(async () => {
    target = await open();
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await target?.close();
  });

  it('refuses NUL and lone surrogates everywhere with a ValidationError naming the field, before writing or sending', async () => {
    const mailer = createMailer({ servers: [sink.serverConfig()], defaults: { from: 'agent@example.com' }, store: target.store, env: {} });
    try {
      const cases = BAD.flatMap(([what, bad]) => PLACES.map(([field, place]) => ({ what, field, input: { ...base, ...place(bad) } as OutgoingEmail })));
      const outcomes = await Promise.all(
        cases.map(({ input }) =>
          mailer.send(input).then(
            (result): Outcome => ({ sent: result.status }),
            (err: unknown): Outcome => ({ code: (err as { code?: string }).code ?? String(err), field: (err as ValidationError).field, sdkError: err instanceof ValidationError }),
          ),
        ),
      );
      expect(outcomes).toEqual(cases.map(({ field }) => ({ code: 'VALIDATION_ERROR', field, sdkError: true })));
      expect(sink.messages).toHaveLength(0);
      expect(sink.stats.connections).toBe(0);

      // The same email without the bad character goes through on this store, so the refusals above are not the store failing.
      const sent = await mailer.send({ ...base, metadata: { note: 'n' }, tags: ['t'], idempotencyKey: `ok-${randomUUID()}` });
      expect(sent.status).toBe('sent');
      expect((await sink.waitForMessages(1)).map((m) => m.envelope.to)).toEqual([['ada@example.com']]);
    } finally {
      await mailer.close();
      sink.clear();
    }
  });

  it('send_email returns an error result naming the field instead of throwing', async () => {
    const mailer = createMailer({ servers: [sink.serverConfig()], defaults: { from: 'agent@example.com' }, store: target.store, env: {} });
    try {
      const sendEmail = createMailTools(mailer).find((tool) => tool.name === 'send_email')!;
      const connectionsBefore = sink.stats.connections;
      const inputs = BAD.flatMap(([, bad]) => [
        { to: 'ada@example.com', subject: `Hi ${bad}`, body: 'x' },
        { to: 'ada@example.com', subject: 'Hi', body: `a${bad}b` },
        { to: 'ada@example.com', subject: 'Hi {name}', body: 'x', variables: { name: `Ada${bad}` } },
      ]);
      const results = await Promise.all(inputs.map((input) => sendEmail.execute(sendEmail.inputSchema.parse(input))));
      expect(results.map((r) => (r.ok ? 'ok' : [r.error.code, (r.error as { field?: string }).field]))).toEqual(
        BAD.flatMap(() => [
          ['VALIDATION_ERROR', 'subject'],
          ['VALIDATION_ERROR', 'body'],
          ['VALIDATION_ERROR', 'variables.name'],
        ]),
      );
      expect(sink.stats.connections).toBe(connectionsBefore);
      expect(sink.messages).toHaveLength(0);
    } finally {
      await mailer.close();
    }
  });
});
