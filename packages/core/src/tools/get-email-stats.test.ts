import { describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { createMailer } from '../mailer/mailer.js';
import { createMailService } from '../service/mail-service.js';
import { MemoryStore } from '../store/memory-store.js';
import { createMailTools } from './create-mail-tools.js';
import type { MailTool, ToolContext, ToolOutcome } from './define-tool.js';

// get_email_stats and Mailer.getStats: the owner's counts only (the mailer's owner, or the call's with a service),
// machines apart from people, in the tools' snake_case. What each count means is the store contract's to test.

const resources = useTestResources();

function statsTool(tools: MailTool[]) {
  const tool = tools.find((t) => t.name === 'get_email_stats')!;
  return (input: unknown, context?: ToolContext): Promise<ToolOutcome<unknown>> => tool.execute(tool.inputSchema.parse(input), context);
}

const zero = { unique: 0, total: 0 };
const nothing = {
  sent: 0,
  delivered: 0,
  opened: { human: zero, machine: zero },
  clicked: { human: zero, machine: zero, links: [] },
  bounced: 0,
  unsubscribed: 0,
  complained: 0,
  rates: { open: 0, click: 0, bounce: 0, unsubscribe: 0 },
};

async function twoOwners() {
  const sink = await resources.sink();
  const store = new MemoryStore();
  const service = resources.track(createMailService({ store, credentials: { resolve: async () => [sink.serverConfig({ name: 'sink', from: 'agent@example.com' })] } }));
  const alice = service.forAgent({ ownerId: 'alice' });
  const newsletter = await alice.send({ to: ['ada@example.com', 'grace@example.com'], subject: 'News', text: 'x', tags: ['news'] });
  const note = await alice.send({ to: 'ada@example.com', subject: 'Note', text: 'x' });
  await service.forAgent({ ownerId: 'bob' }).send({ to: 'ada@example.com', subject: 'Bob', text: 'x', tags: ['news'] });
  const track = (ownerId: string, messageId: string, type: 'opened' | 'clicked', machine: boolean, extra: object = {}) =>
    store.events.append({ ownerId, messageId, type, attempt: 1, detail: { machine, ...extra } });
  await track('alice', newsletter.id, 'opened', false);
  await track('alice', newsletter.id, 'opened', true, { reason: 'apple_privacy_proxy' });
  await track('alice', newsletter.id, 'clicked', false, { link: 0, url: 'https://example.com/' });
  await track('alice', note.id, 'opened', true, { reason: 'google_image_proxy' });
  await track('bob', newsletter.id, 'opened', false);
  return { sink, store, service, ids: { newsletter: newsletter.id, note: note.id } };
}

describe('get_email_stats', () => {
  it('is read-only and in the default tool set', async () => {
    const sink = await resources.sink();
    const mailer = resources.track(createMailer({ servers: [sink.serverConfig()], env: {} }));
    expect(createMailTools(mailer).map((t) => t.name)).toContain('get_email_stats');
    const tool = createMailTools(mailer, { readOnly: true }).find((t) => t.name === 'get_email_stats');
    expect(tool?.annotations).toEqual({ readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false });
    expect(tool?.description).toMatch(/machines \(mail privacy proxies, link scanners, prefetchers\) are counted apart under machine and never as people/);
  });

  it('counts the call’s owner only, people and machines apart, narrowed by id, tag and time', async () => {
    const { service, ids } = await twoOwners();
    const stats = statsTool(createMailTools(service));
    const alice = { ownerId: 'alice', toolCallId: 'c1' };
    expect(await stats({}, alice)).toEqual({
      ok: true,
      value: {
        sent: 2,
        delivered: 3,
        opened: { human: { unique: 1, total: 1 }, machine: { unique: 2, total: 2 } },
        clicked: { human: { unique: 1, total: 1 }, machine: zero, links: [{ link: 0, url: 'https://example.com/', human: 1, machine: 0 }] },
        bounced: 0,
        unsubscribed: 0,
        complained: 0,
        rates: { open: 0.5, click: 0.5, bounce: 0, unsubscribe: 0 },
      },
    });
    expect(await stats({ tag: 'news' }, alice)).toMatchObject({ ok: true, value: { sent: 1, delivered: 2, rates: { open: 1, click: 1 } } });
    expect(await stats({ id: ids.note }, alice)).toMatchObject({ ok: true, value: { sent: 1, delivered: 1, opened: { human: zero, machine: { unique: 1, total: 1 } }, rates: { open: 0 } } });
    expect(await stats({ from: new Date(Date.now() + 3_600_000).toISOString() }, alice)).toEqual({ ok: true, value: nothing });
    // Bob's own send and his event on Alice's message id; none of Alice's.
    expect(await stats({}, { ownerId: 'bob' })).toMatchObject({ ok: true, value: { sent: 1, delivered: 1, opened: { human: { unique: 1, total: 1 }, machine: zero } } });
    expect(await stats({ id: ids.note }, { ownerId: 'bob' })).toEqual({ ok: true, value: nothing });
    expect(await stats({}, { ownerId: 'carol' })).toEqual({ ok: true, value: nothing });
    expect(await stats({}, {})).toMatchObject({ ok: false });
  });

  it('goes through Mailer.getStats, for the mailer’s owner, and refuses a date that is not one', async () => {
    const { sink, store } = await twoOwners();
    const mailer = resources.track(createMailer({ store, ownerId: 'alice', servers: [sink.serverConfig()], env: {} }));
    expect(await mailer.getStats({ tag: 'news' })).toMatchObject({ sent: 1, delivered: 2 });
    expect(await statsTool(createMailTools(mailer))({ tag: 'news' })).toMatchObject({ ok: true, value: { sent: 1, delivered: 2 } });
    expect(await statsTool(createMailTools(mailer))({}, { ownerId: 'bob' })).toMatchObject({ ok: false });
    await expect(mailer.getStats({ from: new Date('nope') })).rejects.toMatchObject({ code: 'VALIDATION_ERROR', field: 'from' });
    expect(() => statsTool(createMailTools(mailer))({ to: 'yesterday' })).toThrow();
  });
});
