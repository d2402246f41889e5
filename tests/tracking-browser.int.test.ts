import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMailer, createTrackingHandler, MemoryStore, type TrackingHandler, type TrackingKeys, toNodeListener } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';

// Debian's `chromium` package, never a browser Playwright downloads: the test skips when it is absent.
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const SKIP_REASON = `${CHROMIUM} is not installed (apt-get install chromium); .ci/run installs it`;
if (!hasChromium) console.warn(`tracking-browser: skipped, ${SKIP_REASON}`);

// Two links to the landing page told apart only by their query strings (with an escaped `&` and a percent-encoded
// space, which must come back byte for byte), and a mailto link the rewrite must leave alone.
const FIRST_QUERY = '?utm_source=newsletter&utm_campaign=launch&ref=header';
const SECOND_QUERY = '?plan=team&seats=5&note=hello%20world&utm_campaign=launch';
const newsletter = (origin: string) => `<!doctype html><html><head><meta charset="utf-8"><title>Launch news</title></head>
<body style="margin:0;background:#f4f4f4">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td align="center">
  <table role="presentation" width="600" cellpadding="16" cellspacing="0" border="0" style="background:#ffffff">
    <tr><td><h1 style="font-family:sans-serif">We launched</h1></td></tr>
    <tr><td style="font-family:sans-serif"><a href="${origin}/landing${FIRST_QUERY.replace(/&/g, '&amp;')}">Read the launch notes</a></td></tr>
    <tr><td style="font-family:sans-serif">Questions? <a href="mailto:help@example.com">Write to us</a></td></tr>
    <tr><td style="font-family:sans-serif"><a href="${origin}/landing${SECOND_QUERY.replace(/&/g, '&amp;')}">See team pricing</a></td></tr>
  </table>
</td></tr></table>
</body></html>`;

// What the browser is opened and closed around; afterAll closes whatever a failed test left open.
let browser: Browser | undefined;
let server: Server | undefined;
let sink: SmtpSink | undefined;
let mailer: ReturnType<typeof createMailer> | undefined;
afterAll(async () => {
  await browser?.close();
  await mailer?.close();
  await sink?.close();
  if (server?.listening) await closeServer(server);
});

/** Resolves once the server has stopped and every connection to it has ended, so every request it got was handled. */
function closeServer(s: Server): Promise<void> {
  return new Promise((resolve, reject) => s.close((err) => (err ? reject(err) : resolve())));
}

describe(`tracking in a real browser: headless Chromium opens the webmail page and clicks a link (skipped when ${CHROMIUM} is not installed)`, () => {
  // A few seconds on an idle machine; a browser start on a loaded 2-core machine can take several times that.
  it.skipIf(!hasChromium)('the pixel records one open and the second link one click, both as a person, and nothing else', { timeout: 60_000 }, async () => {
    const keys: TrackingKeys = { current: 'k1', keys: { k1: randomBytes(32).toString('base64') } };
    const store = new MemoryStore();
    // Hits come "a minute later": a hit within seconds of delivery is a scanner's (too_soon_after_delivery).
    const handler = createTrackingHandler({ store, keys, basePath: '/t', now: () => new Date(Date.now() + 60_000) });
    const trackingHits: string[] = [];
    const counted: TrackingHandler = (request, context) => {
      trackingHits.push(`${request.method} ${new URL(request.url).pathname}`);
      return handler(request, context);
    };
    const tracking = toNodeListener(counted);
    const landingRequests: string[] = [];
    sink = await startSmtpSink();
    const received = sink.messages;

    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = req.url ?? '/';
      if (path.startsWith('/t/')) return tracking(req, res);
      if (path === '/landing' || path.startsWith('/landing?')) {
        landingRequests.push(path);
        return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Landing</title><h1>Welcome</h1>');
      }
      // A "webmail": the HTML body of the n-th message the sink received, as a mail client would show it.
      const inbox = /^\/inbox\/(\d+)$/.exec(path);
      const html = inbox ? received[Number(inbox[1])]?.html : undefined;
      if (html !== undefined) return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    mailer = createMailer({
      servers: [sink.serverConfig({ name: 'sink' })],
      defaults: { from: 'news@example.com' },
      store,
      env: {},
      tracking: { baseUrl: `${origin}/t`, keys },
    });
    const sent = await mailer.send({ to: 'ada@example.com', subject: 'We launched', html: newsletter(origin), text: 'We launched' });
    await sink.waitForMessages(1);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    // Headless Chromium says "HeadlessChrome" in its user agent, which isbot (rightly) calls a bot, so every hit would
    // be recorded with machine: true. A person's desktop Chrome of the same version is what this test plays.
    const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${browser.version()} Safari/537.36`;
    const page = await (await browser.newContext({ userAgent })).newPage();

    const pixelLoaded = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/t/o/') && r.request().resourceType() === 'image');
    await page.goto(`${origin}/inbox/0`);
    const pixel = await pixelLoaded;
    expect(pixel.status()).toBe(200);
    expect(pixel.headers()['content-type']).toBe('image/gif');
    const opened = await store.events.list('default', { messageId: sent.id, type: 'opened' });
    expect(opened.map((e) => e.detail)).toEqual([expect.objectContaining({ machine: false, userAgent })]);

    // Both landing links were rewritten to the tracker; the mailto link was left as written.
    const second = page.getByRole('link', { name: 'See team pricing' });
    expect(await second.getAttribute('href')).toMatch(new RegExp(`^${origin}/t/c/`));
    expect(await page.getByRole('link', { name: 'Read the launch notes' }).getAttribute('href')).toMatch(new RegExp(`^${origin}/t/c/`));
    expect(await page.getByRole('link', { name: 'Write to us' }).getAttribute('href')).toBe('mailto:help@example.com');

    await Promise.all([page.waitForURL((url) => url.pathname === '/landing'), second.click()]);
    expect(new URL(page.url()).search).toBe(SECOND_QUERY);
    expect(landingRequests).toEqual([`/landing${SECOND_QUERY}`]);
    const clicked = await store.events.list('default', { messageId: sent.id, type: 'clicked' });
    expect(clicked.map((e) => e.detail)).toEqual([expect.objectContaining({ machine: false, link: 1, url: `${origin}/landing${SECOND_QUERY}`, userAgent })]);

    // Nothing else reached the tracker: with the browser gone and the server closed (every connection ended), every
    // request it was sent has been counted.
    await browser.close();
    browser = undefined;
    await closeServer(server);
    expect(trackingHits).toEqual([expect.stringMatching(/^GET \/t\/o\//), expect.stringMatching(/^GET \/t\/c\//)]);
    const tracked = new Set(['opened', 'clicked', 'unsubscribed']);
    const events = await store.events.list('default', { messageId: sent.id });
    expect(events.filter((e) => tracked.has(e.type)).map((e) => e.type)).toEqual(['opened', 'clicked']);
  });
});
