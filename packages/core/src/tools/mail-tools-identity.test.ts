import { createServer, type Server, type Socket } from 'node:net';
import { sampleToolInputs } from './__fixtures__/tool-inputs.js';
import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { createMailer } from '../mailer/mailer.js';
import { waitFor } from '../outbox/__fixtures__/outbox-setup.js';
import { createMailService } from '../service/mail-service.js';
import { MemoryStore } from '../store/memory-store.js';
import type { SmtpSink } from '@agent-smtp/testing';
import { createMailTools, type MailToolName } from './create-mail-tools.js';
import type { MailTool, ToolContext, ToolOutcome } from './define-tool.js';

const resources = useTestResources();

function toolbox(tools: MailTool[]) {
  const byName = new Map(tools.map((t) => [t.name, t]));
  return (name: MailToolName, input: unknown, context?: ToolContext): Promise<ToolOutcome<Record<string, unknown>>> => {
    const tool = byName.get(name)!;
    return tool.execute(tool.inputSchema.parse(input), context);
  };
}

function valueOf<T>(outcome: ToolOutcome<Record<string, unknown>>): T {
  if (!outcome.ok) throw new Error(`${outcome.error.code}: ${outcome.error.message}`);
  return outcome.value as T;
}

/** Resolves once every connection the sink saw has closed: nothing more can arrive. */
const sinkDone = (sink: SmtpSink) => sink.waitForIdle();

/** A TCP server that accepts connections and never says a word: a send to it hangs before the SMTP greeting. */
async function silentServer(): Promise<{ port: number; sockets: Socket[]; bytes: () => number; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  let received = 0;
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    sockets,
    bytes: () => received,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function twoOwners() {
  const alice = await resources.sink();
  const bob = await resources.sink();
  const servers: Record<string, SmtpServerConfig[]> = {
    alice: [alice.serverConfig({ name: 'alice-smtp', from: 'alice@alice.example' })],
    bob: [bob.serverConfig({ name: 'bob-smtp', from: 'bob@bob.example' })],
  };
  const store = new MemoryStore();
  const service = resources.track(
    createMailService({
      store,
      credentials: {
        resolve: async ({ ownerId }) => {
          const list = servers[ownerId];
          if (!list) throw new Error(`no servers for ${ownerId}`);
          return list;
        },
      },
    }),
  );
  return { sinks: { alice, bob }, store, service, call: toolbox(createMailTools(service, { operator: true })) };
}

describe('createMailTools from a MailService', () => {
  it('acts for the owner and agent each call names: their servers, their records', async () => {
    const { sinks, store, service, call } = await twoOwners();
    const fromAlice = valueOf<{ id: string; server: string }>(
      await call('send_email', { to: 'ada@example.com', subject: 'From Alice', body: 'x' }, { ownerId: 'alice', agentId: 'assistant', toolCallId: 'c1' }),
    );
    const fromBob = valueOf<{ id: string }>(await call('send_email', { to: 'ada@example.com', subject: 'From Bob', body: 'x' }, { ownerId: 'bob', toolCallId: 'c1' }));
    await service.close();
    await Promise.all([sinkDone(sinks.alice), sinkDone(sinks.bob)]);
    // Which server received which message (the same tool-call id is a different call for another owner).
    expect(sinks.alice.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['From Alice', 'alice@alice.example']]);
    expect(sinks.bob.messages.map((m) => [m.subject, m.envelope.from])).toEqual([['From Bob', 'bob@bob.example']]);
    expect(await store.outbox.get('alice', fromAlice.id)).toMatchObject({ ownerId: 'alice', agentId: 'assistant', status: 'sent' });
    expect(await store.outbox.get('alice', fromBob.id)).toBeUndefined();
  });

  it('answers NOT_FOUND for another owner’s message id, with nothing of it in the answer', async () => {
    const { call } = await twoOwners();
    const sent = valueOf<{ id: string }>(await call('send_email', { to: 'ada@example.com', subject: 'Private subject', body: 'x' }, { ownerId: 'alice' }));
    const asBob = await call('get_email_status', { id: sent.id }, { ownerId: 'bob' });
    expect(asBob).toMatchObject({ ok: false, error: { code: 'NOT_FOUND', retryable: false } });
    expect(JSON.stringify(asBob)).not.toContain('Private subject');
    expect(await call('get_email_status', { id: sent.id }, { ownerId: 'alice' })).toMatchObject({ ok: true, value: { id: sent.id, subject: 'Private subject' } });
  });

  it('refuses, as an error result, every call that names no owner; nothing is sent', async () => {
    const { sinks, call } = await twoOwners();
    const inputs = sampleToolInputs({ switch_smtp_server: { name: '' } });
    for (const context of [undefined, {}, { agentId: 'assistant' }, { ownerId: '' }] as (ToolContext | undefined)[]) {
      for (const [name, input] of Object.entries(inputs) as [MailToolName, unknown][]) {
        const outcome = await call(name, input, context);
        expect(outcome, `${name} with ${JSON.stringify(context)}`).toMatchObject({ ok: false, error: { code: 'FORBIDDEN', retryable: false } });
      }
    }
    expect(sinks.alice.stats.connections + sinks.bob.stats.connections).toBe(0);
  });
});

describe('createMailTools from a Mailer', () => {
  it('serves calls for its own owner (and agent), and refuses calls for another', async () => {
    const sink = await resources.sink();
    const mailer = resources.track(
      createMailer({ servers: [sink.serverConfig({ name: 'sink' })], ownerId: 'alice', agentId: 'assistant', defaults: { from: 'agent@example.com' }, env: {} }),
    );
    const call = toolbox(createMailTools(mailer));
    const email = { to: 'ada@example.com', subject: 's', body: 'x' };
    expect(await call('send_email', email)).toMatchObject({ ok: true, value: { status: 'sent' } });
    expect(await call('send_email', email, { ownerId: 'alice', agentId: 'assistant' })).toMatchObject({ ok: true, value: { status: 'sent' } });
    const otherOwner = await call('send_email', email, { ownerId: 'mallory' });
    expect(otherOwner).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    // The refusal names the caller's user, never the mailer's.
    expect(JSON.stringify(otherOwner)).not.toContain('alice');
    expect(await call('get_smtp_status', {}, { ownerId: 'alice', agentId: 'other-agent' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    await mailer.close();
    await sinkDone(sink);
    expect(sink.messages).toHaveLength(2);
  });
});

describe('a cancelled tool call', () => {
  it('aborts a send hung before the server greeted: ABORTED, the record not sent, no byte written', async () => {
    const hung = await silentServer();
    try {
      const store = new MemoryStore();
      const service = resources.track(
        createMailService({
          store,
          credentials: { resolve: async () => [{ host: '127.0.0.1', port: hung.port, name: 'hung', from: 'alice@alice.example', maxRetries: 0, timeouts: { greetingMs: 60_000 } }] },
        }),
      );
      const call = toolbox(createMailTools(service));
      const controller = new AbortController();
      const outcome = call('send_email', { to: 'ada@example.com', subject: 'Hung', body: 'x' }, { ownerId: 'alice', toolCallId: 'call-9', signal: controller.signal });
      await waitFor('the connection', async () => (hung.sockets.length > 0 ? true : undefined));
      const started = Date.now();
      controller.abort();
      expect(await outcome).toMatchObject({ ok: false, error: { code: 'ABORTED', retryable: true } });
      expect(Date.now() - started).toBeLessThan(5_000);
      const record = await store.outbox.findByIdempotencyKey('alice', 'tool-call:call-9');
      expect(record).toBeDefined();
      expect(record!.status).not.toBe('sent');
      expect(hung.bytes()).toBe(0);
    } finally {
      await hung.close();
    }
  });
});
