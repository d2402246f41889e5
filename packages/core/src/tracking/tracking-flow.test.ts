import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { inspect } from 'node:util';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { createMailer } from '../mailer/mailer.js';
import { createMailTools } from '../tools/create-mail-tools.js';
import { MemoryStore } from '../store/memory-store.js';
import { toNodeListener } from './node-listener.js';
import { createTrackingHandler, type TrackingHandlerOptions } from './tracking-handler.js';
import type { TrackingKeys } from './tracking-types.js';

const resources = useTestResources();
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const BROWSER = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';
const NEWSLETTER = `<!doctype html><html><body>
<p>Hello <a href="https://example.com/a?x=1&amp;y=2#top">first</a>, <a HREF='https://example.com/b'>second</a>,
<a href="mailto:help@example.com">mail us</a>, <a href="https://example.com/private" data-agent-smtp-notrack>private</a>.</p>
</body></html>`;

async function setup(handlerOptions: Partial<TrackingHandlerOptions> = {}) {
  const keys: TrackingKeys = { current: 'k1', keys: { k1: randomBytes(32).toString('base64') } };
  const store = new MemoryStore();
  // Hits come "a minute later" unless a test says otherwise: the too-soon rule has a test of its own.
  const handler = createTrackingHandler({ store, keys, basePath: '/t', now: () => new Date(Date.now() + 60_000), ...handlerOptions });
  const server = createServer(toNodeListener(handler));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/t`;
  const sink = await resources.sink();
  const mailer = resources.track(
    createMailer({ servers: [sink.serverConfig({ name: 'sink' })], defaults: { from: 'news@example.com' }, store, env: {}, tracking: { baseUrl: base, keys } }),
  );
  return { keys, store, handler, base, sink, mailer };
}

/** A header exactly as sent (unfolded), from the raw message: mailparser restructures List-Unsubscribe. */
function header(message: { raw: Buffer }, name: string): string | undefined {
  const head = message.raw.toString('utf8').split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  const line = head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

const linksOf = (html: string) => [...html.matchAll(/href=(?:"([^"]*)"|'([^']*)')/gi)].map((m) => (m[1] ?? m[2]!).replace(/&amp;/g, '&'));
const hit = (url: string, init: RequestInit & { ua?: string } = {}) =>
  fetch(url, { redirect: 'manual', ...init, headers: { 'user-agent': init.ua ?? BROWSER, ...(init.headers as Record<string, string>) } });

describe('tracking end to end: a real SMTP sink, the handler on a real HTTP server', () => {
  it('rewrites only trackable links, adds the pixel and one-click headers, and records a person’s open and click', async () => {
    const { store, base, sink, mailer } = await setup();
    const sent = await mailer.send({ to: 'ada@example.com', subject: 'News', html: NEWSLETTER, text: 'News' });
    const [message] = await sink.waitForMessages(1);
    expect(header(message!, 'list-unsubscribe')).toMatch(new RegExp(`^<${base}/u/[^>]+>$`));
    expect(header(message!, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    const html = String(message!.html);
    const links = linksOf(html);
    expect(links.filter((l) => l.startsWith(`${base}/c/`))).toHaveLength(2);
    expect(links).toContain('mailto:help@example.com');
    expect(links).toContain('https://example.com/private');
    const pixel = /<img[^>]+src="([^"]+\/o\/[^"]+)"/.exec(html)![1]!;

    const open = await hit(pixel);
    expect(open.status).toBe(200);
    expect(open.headers.get('content-type')).toBe('image/gif');
    expect(open.headers.get('cache-control')).toContain('no-store');
    const click = await hit(links.find((l) => l.startsWith(`${base}/c/`))!);
    expect(click.status).toBe(302);
    expect(click.headers.get('location')).toBe('https://example.com/a?x=1&y=2#top');

    const events = await store.events.list('default', { messageId: sent.id });
    const opened = events.filter((e) => e.type === 'opened');
    const clicked = events.filter((e) => e.type === 'clicked');
    expect(opened).toHaveLength(1);
    expect(opened[0]!.detail).toMatchObject({ machine: false, userAgent: BROWSER, ip: '127.0.0.0' });
    expect(clicked.map((e) => e.detail)).toEqual([expect.objectContaining({ machine: false, link: 0, url: 'https://example.com/a?x=1&y=2#top' })]);
    // The message's status shows what happened to it.
    expect((await mailer.getStatus(sent.id))?.history.map((h) => h.type)).toEqual(expect.arrayContaining(['sent', 'opened', 'clicked']));
  });

  it('counts machines apart: HEAD, prefetch, scanners, privacy proxies, hits right after sending, all-links bursts', async () => {
    const { store, sink, mailer, keys } = await setup();
    const sent = await mailer.send({ to: 'ada@example.com', subject: 'News', html: NEWSLETTER });
    const html = String((await sink.waitForMessages(1))[0]!.html);
    const [first, second] = linksOf(html).filter((l) => l.includes('/c/'));
    const pixel = /src="([^"]+\/o\/[^"]+)"/.exec(html)![1]!;
    expect((await hit(pixel, { method: 'HEAD' })).status).toBe(200);
    await hit(pixel, { headers: { 'sec-purpose': 'prefetch' } });
    await hit(pixel, { ua: 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)' });
    await hit(pixel, { ua: 'Mozilla/5.0' });
    await hit(pixel, { ua: 'Barracuda Sentinel (EE)' });
    await hit(first!, { ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' });
    await hit(first!);
    await hit(second!); // another link of the same message within the burst window
    const reasons = (await store.events.list('default', { messageId: sent.id }))
      .filter((e) => e.type === 'opened' || e.type === 'clicked')
      .map((e) => [e.type, e.detail.machine, e.detail.reason]);
    expect(reasons).toEqual([
      ['opened', true, 'head_request'],
      ['opened', true, 'prefetch'],
      ['opened', true, 'google_image_proxy'],
      ['opened', true, 'apple_privacy_proxy'],
      ['opened', true, 'bot_user_agent'],
      ['clicked', true, 'bot_user_agent'],
      ['clicked', false, undefined],
      ['clicked', true, 'all_links_at_once'],
    ]);
    // Labelled on arrival, the burst's first click reads as a person's; stats count every click of the burst.
    expect((await store.stats.summary('default', { messageId: sent.id })).clicked).toEqual({
      human: { unique: 0, total: 0 },
      machine: { unique: 1, total: 3 },
      links: [
        { link: 0, url: 'https://example.com/a?x=1&y=2#top', human: 0, machine: 2 },
        { link: 1, url: 'https://example.com/b', human: 0, machine: 1 },
      ],
    });

    // Right after the send (the handler's real clock): a scanner at the receiving server.
    const early = createTrackingHandler({ store, keys, basePath: '/t' });
    const response = await early(new Request(pixel, { headers: { 'user-agent': BROWSER } }));
    expect(response.status).toBe(200);
    const last = (await store.events.list('default', { messageId: sent.id, type: 'opened' })).at(-1)!;
    expect(last.detail).toMatchObject({ machine: true, reason: 'too_soon_after_delivery' });
  });

  it('one-click unsubscribe: GET and HEAD change nothing, a cookieless POST suppresses, and the next send is refused', async () => {
    const { store, sink, mailer } = await setup();
    await mailer.send({ to: 'Ada@example.com', subject: 'News', html: NEWSLETTER });
    const [message] = await sink.waitForMessages(1);
    const unsubscribe = /^<([^>]+)>$/.exec(header(message!, 'list-unsubscribe')!)![1]!;
    const page = await hit(unsubscribe);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form method="post"');
    expect((await hit(unsubscribe, { method: 'HEAD' })).status).toBe(200);
    expect(await store.suppressions.list('default')).toEqual([]);

    const post = await fetch(unsubscribe, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(post.status).toBe(200);
    expect((await store.suppressions.list('default')).map((s) => [s.address, s.reason])).toEqual([['ada@example.com', 'unsubscribe']]);
    await expect(mailer.send({ to: 'ada@example.com', subject: 'Again', text: 'x' })).rejects.toMatchObject({ code: 'SUPPRESSED' });
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('leaves a message to several recipients without an unsubscribe link it could not attribute, and honours per-message switches', async () => {
    const { sink, mailer } = await setup();
    await mailer.send({ to: ['ada@example.com', 'bob@example.com'], subject: 'Two', html: NEWSLETTER });
    await mailer.send({ to: 'ada@example.com', subject: 'Quiet', html: NEWSLETTER, tracking: { opens: false, clicks: false, unsubscribe: false } });
    const [two, quiet] = await sink.waitForMessages(2);
    expect(header(two!, 'list-unsubscribe')).toBeUndefined();
    expect(String(two!.html)).toContain('/c/');
    expect(header(quiet!, 'list-unsubscribe')).toBeUndefined();
    expect(String(quiet!.html).trim()).toBe(NEWSLETTER);
  });

  it('a retry under the same idempotency key is a replay, although each call signs tokens for its own record', async () => {
    const { sink, mailer } = await setup();
    const email = { to: 'ada@example.com', subject: 'Once', html: NEWSLETTER, idempotencyKey: 'news-1' };
    const first = await mailer.send(email);
    const again = await mailer.send(email);
    expect(again).toMatchObject({ id: first.id, replayed: true });
    await mailer.close();
    expect(sink.messages).toHaveLength(1);
  });

  it('redirects to a non-ASCII link as a browser would resolve it', async () => {
    const { sink, mailer } = await setup();
    await mailer.send({ to: 'ada@example.com', subject: 'IRI', html: '<a href="https://ru.wikipedia.org/wiki/Москва?q=café">Москва</a>' });
    const html = String((await sink.waitForMessages(1))[0]!.html);
    const response = await hit(linksOf(html).find((l) => l.includes('/c/'))!);
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe('https://ru.wikipedia.org/wiki/%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0?q=caf%C3%A9');
  });

  it('counts one unsubscribe however often it is posted, audits it, and keeps a suppression made by hand', async () => {
    const { store, sink, mailer } = await setup();
    await mailer.send({ to: 'ada@example.com', subject: 'A', html: NEWSLETTER });
    await mailer.send({ to: 'bob@example.com', subject: 'B', html: NEWSLETTER });
    const [a, b] = await sink.waitForMessages(2);
    const urlOf = (m: typeof a) => /^<([^>]+)>$/.exec(header(m!, 'list-unsubscribe')!)![1]!;
    for (let i = 0; i < 3; i++) expect((await fetch(urlOf(a), { method: 'POST', body: 'List-Unsubscribe=One-Click' })).status).toBe(200);
    await mailer.suppress('bob@example.com', { by: 'support desk' });
    expect((await fetch(urlOf(b), { method: 'POST', body: 'List-Unsubscribe=One-Click' })).status).toBe(200);
    expect((await store.events.list('default', { type: 'unsubscribed' })).length).toBe(1);
    expect((await store.suppressions.list('default')).map((x) => [x.address, x.reason])).toEqual([
      ['ada@example.com', 'unsubscribe'],
      ['bob@example.com', 'manual'],
    ]);
    const audit = await mailer.listAudit({ action: 'suppression_add' });
    expect(audit.entries.map((e) => e.actor)).toEqual(['support desk', 'recipient (one-click unsubscribe)']);
  });

  it('serves the pixel and the redirect even when the store does not answer', async () => {
    const { store, keys, sink, mailer } = await setup();
    await mailer.send({ to: 'ada@example.com', subject: 'News', html: NEWSLETTER });
    const html = String((await sink.waitForMessages(1))[0]!.html);
    const stuck = Object.assign(Object.create(store) as typeof store, {
      outbox: { ...store.outbox, get: () => new Promise<never>(() => undefined) },
    });
    const handler = createTrackingHandler({ store: stuck, keys, basePath: '/t', recordTimeoutMs: 100 });
    const click = linksOf(html).find((l) => l.includes('/c/'))!;
    const pixel = /src="([^"]+\/o\/[^"]+)"/.exec(html)![1]!;
    expect((await handler(new Request(click))).status).toBe(302);
    expect((await handler(new Request(pixel))).status).toBe(200);
  });

  it('shows the person approving a held email where its links really go, not the tracking URLs', async () => {
    const keys: TrackingKeys = { current: 'k1', keys: { k1: randomBytes(32).toString('base64') } };
    const sink = await resources.sink();
    const mailer = resources.track(
      createMailer({
        servers: [sink.serverConfig({ name: 'sink' })],
        defaults: { from: 'news@example.com' },
        env: {},
        policy: { approval: { always: true } },
        tracking: { baseUrl: 'https://t.example.com', keys, unsubscribe: { footer: true } },
      }),
    );
    const held = await mailer.send({ to: 'ada@example.com', subject: 'Held', html: '<p><a href="https://evil-phish.example/login">Log in</a></p>' });
    expect((await mailer.getPending(held.id))?.links).toEqual(['https://evil-phish.example/login']);
  });

  it('get_email_status marks machine opens and counts people and machines apart', async () => {
    const { sink, mailer } = await setup();
    const sent = await mailer.send({ to: 'ada@example.com', subject: 'News', html: NEWSLETTER });
    const pixel = /src="([^"]+\/o\/[^"]+)"/.exec(String((await sink.waitForMessages(1))[0]!.html))![1]!;
    await hit(pixel);
    await hit(pixel, { ua: 'Mozilla/5.0' });
    const [status] = createMailTools(mailer, { include: ['get_email_status'] });
    const outcome = await status!.execute({ id: sent.id });
    expect(outcome).toMatchObject({ ok: true, value: { engagement: { opened: { human: 1, machine: 1 }, clicked: { human: 0, machine: 0 } } } });
    const history = (outcome as unknown as { value: { history: { event: string; machine?: boolean }[] } }).value.history;
    expect(history.filter((h) => h.event === 'opened').map((h) => h.machine)).toEqual([false, true]);
  });

  it('keeps the HMAC keys out of util.inspect and JSON of the mailer', async () => {
    const { mailer, keys } = await setup();
    const secret = keys.keys.k1!;
    expect(inspect(mailer, { depth: 20, showHidden: false })).not.toContain(secret);
    expect(JSON.stringify(mailer)).not.toContain(secret);
  });

  it('answers 10,000 tampered or random tokens with 400 or 404 and never a redirect', async () => {
    const { handler, sink, mailer } = await setup();
    await mailer.send({ to: 'ada@example.com', subject: 'News', html: NEWSLETTER });
    const html = String((await sink.waitForMessages(1))[0]!.html);
    const click = new URL(linksOf(html).find((l) => l.includes('/c/'))!);
    const token = click.pathname.split('/').pop()!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    const statuses = new Map<number, number>();
    for (let i = 0; i < 10_000; i++) {
      let forged: string;
      if (i % 4 === 0) forged = randomBytes(1 + (i % 200)).toString('base64url');
      else if (i % 4 === 1) {
        const at = i % token.length;
        const swap = alphabet[(alphabet.indexOf(token[at]!) + 1 + (i % 60)) % alphabet.length]!;
        forged = token.slice(0, at) + swap + token.slice(at + 1);
      } else if (i % 4 === 2) forged = token.slice(0, i % token.length);
      else forged = `${token}${alphabet[i % alphabet.length]}`;
      if (forged === token) continue;
      const route = ['c', 'o', 'u'][i % 3];
      const response = await handler(new Request(`${click.origin}/t/${route}/${encodeURIComponent(forged)}`));
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      expect(response.headers.get('location')).toBeNull();
    }
    expect([...statuses.keys()].every((s) => s === 400 || s === 404)).toBe(true);
  });
});
