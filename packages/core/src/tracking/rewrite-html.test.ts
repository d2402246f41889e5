import { readdirSync, readFileSync } from 'node:fs';
import { Parser } from 'htmlparser2';
import { describe, expect, it } from 'vitest';
import { rewriteHtml } from './rewrite-html.js';

const fixturesDir = new URL('./__fixtures__/', import.meta.url);
const fixtures = Object.fromEntries(
  readdirSync(fixturesDir)
    .filter((f) => f.endsWith('.html'))
    .map((f) => [f, readFileSync(new URL(f, fixturesDir), 'utf8')]),
);
const fixtureNames = Object.keys(fixtures);
const marker = (index: number) => `https://t.test/c/${index}`;
const MARKER = /^(["']?)https:\/\/t\.test\/c\/(\d+)\1$/;

/** Each `href=value` in the text, found by a plain regex (independent of the code under test); value with its quotes. */
function hrefValues(html: string): { start: number; end: number; value: string }[] {
  return [...html.matchAll(/\bhref\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)/gi)].map((m) => {
    const start = m.index + m[0].length - m[1]!.length;
    return { start, end: start + m[1]!.length, value: m[1]! };
  });
}

/** Open and close tags with their attributes, hrefs of link tags blanked: what must not change. */
function tagStructure(html: string): string[] {
  const events: string[] = [];
  const parser = new Parser({
    onopentag: (name, attributes) => {
      const linkTag = name === 'a' || name === 'area' || name.startsWith('v:');
      const attrs = Object.entries(attributes).map(([k, v]) => (linkTag && k === 'href' ? `${k}=*` : `${k}=${v}`));
      events.push(`<${name} ${attrs.join(' ')}>`);
    },
    onclosetag: (name) => events.push(`</${name}>`),
    oncomment: (text) => events.push(`<!--${text.startsWith('[if') ? '[if …]' : text}-->`),
  });
  parser.end(html);
  return events;
}

const expectedLinks: Record<string, string[]> = {
  'litmus-like.html': [
    'HTTPS://News.Example.org/Stories/1?From=Digest&Week=42',
    'https://news.example.org/stories/1/summary?s=1',
    'https://news.example.org/stories/2?title="quoted"&n=2',
    'https://news.example.org/stories/3',
    'https://news.example.org/stories/4',
    'https://news.example.org/e?a=1&b=2&c=3&d=4&copy=5&notanentity;', // `&copy=` is not an entity inside an attribute
    'https://news.example.org/l?x=1©&lang=en', // legacy `&copy` before `&` is
    'https://news.example.org/ws?x=1', // surrounding whitespace stripped
    'https://news.example.org/tab', // `ht&#9;tps:` is https once the tab is removed, as a browser reads it
    'https://news.example.org/first',
    'https://news.example.org/self',
    'https://news.example.org/end/',
    'https://news.example.org/map/left',
    'https://news.example.org/map/right',
    'https://news.example.org/subscribe?plan=pro&via=outlook', // VML inside <!--[if mso]>
    'https://news.example.org/subscribe?plan=pro&via=web',
    'https://news.example.org/parent-notrack',
  ],
  'mailchimp-like.html': [
    'https://shop.example.com/view-in-browser?id=abc123&e=ada%40example.com',
    'https://shop.example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale',
    'https://shop.example.com/sale?ref=body#top-picks',
    'https://shop.example.com/sale?btn=1&src=outlook',
    'https://shop.example.com/sale?btn=1&src=web',
    'https://shop.example.com/p/1?c=%E2%9C%93&lang=fr',
    'https://shop.example.com/p/1?c=%E2%9C%93&lang=fr',
    'https://shop.example.com/p/2?q=a+b&x=<y>',
    'https://shop.example.com/p/3#reviews',
    'https://www.facebook.com/exampleshop',
    'https://twitter.com/exampleshop',
    'https://www.instagram.com/exampleshop/',
  ],
  'malformed.html': [
    'https://broken.example.com/1',
    'https://broken.example.com/2?a=1&b=2',
    'https://broken.example.com/3',
    'https://broken.example.com/4"quoted"inside',
    `https://broken.example.com/5>unterminated quote, eats the rest of the tag</a><div><span><b>never closed<a href='https://broken.example.com/6'>after the mess</a><a title=`,
    'https://broken.example.com/7',
    'https://after-body.example.com/8',
  ],
  'transactional-fragment.html': [
    'https://carrier.example.net/track?n=1Z999AA10123456784&lang=en-US',
    'https://shop.example.com/orders/10023/receipt.pdf?sig=a%2Fb%2Bc%3D',
    'https://help.example.com/contact?order=10023',
  ],
};

describe('rewriteHtml on the newsletter corpus', () => {
  it('has an expectation for every fixture', () => {
    expect(fixtureNames.sort()).toEqual(Object.keys(expectedLinks).sort());
  });

  it.each(fixtureNames)('%s: finds the expected links, decoded, in document order', (name) => {
    const seen: [string, number][] = [];
    const { links } = rewriteHtml(fixtures[name]!, { link: (url, index) => { seen.push([url, index]); return undefined; } });
    expect(links.map((l) => l.url)).toEqual(expectedLinks[name]);
    expect(links.map((l) => l.index)).toEqual(links.map((_, i) => i));
    expect(seen).toEqual(links.map((l) => [l.url, l.index]));
  });

  it.each(fixtureNames)('%s: unchanged without options, and when link keeps every URL', (name) => {
    const html = fixtures[name]!;
    expect(rewriteHtml(html).html).toBe(html);
    expect(rewriteHtml(html, { link: () => undefined }).html).toBe(html);
  });

  it.each(fixtureNames)('%s: only href values change; putting the originals back gives the input byte for byte', (name) => {
    const html = fixtures[name]!;
    const out = rewriteHtml(html, { link: (_, index) => marker(index) }).html;
    const before = hrefValues(html);
    const after = hrefValues(out);
    expect(after).toHaveLength(before.length);
    let restored = '';
    let at = 0;
    const rewritten: number[] = [];
    after.forEach((href, i) => {
      const m = MARKER.exec(href.value);
      restored += out.slice(at, href.start) + (m ? before[i]!.value : href.value);
      at = href.end;
      if (m) {
        rewritten.push(Number(m[2]));
        // quoted as the original was, or double-quoted when it was not
        const q = before[i]!.value[0];
        expect(m[1]).toBe(q === '"' || q === "'" ? q : '"');
      } else {
        expect(href.value).toBe(before[i]!.value); // excluded links untouched
      }
    });
    restored += out.slice(at);
    expect(restored).toBe(html);
    expect(rewritten).toEqual(expectedLinks[name]!.map((_, i) => i));
  });

  it.each(fixtureNames)('%s: same tag structure after rewriting, pixel and footer aside', (name) => {
    const html = fixtures[name]!;
    expect(tagStructure(rewriteHtml(html, { link: (_, index) => marker(index) }).html)).toEqual(tagStructure(html));
  });

  it.each(fixtureNames)('%s: indexes are stable when some links are kept', (name) => {
    const html = fixtures[name]!;
    const all = rewriteHtml(html, { link: (_, index) => marker(index) });
    const some = rewriteHtml(html, { link: (_, index) => (index % 2 ? undefined : marker(index)) });
    expect(some.links).toEqual(all.links);
    for (const { index } of all.links) expect(some.html.includes(`${marker(index)}"`) || some.html.includes(`${marker(index)}'`)).toBe(index % 2 === 0);
  });

  it('leaves excluded links as they were', () => {
    const out = rewriteHtml(fixtures['litmus-like.html']! + fixtures['mailchimp-like.html']!, { link: (_, i) => marker(i) }).html;
    const untouched = [
      'href="/stories/5"', 'href="stories/6"', 'href="//cdn.example.org/x"', 'href="#comments"', 'href="?page=2"', 'href="javascript:void(0)"',
      'href="sms:+15555550100?body=hi"', 'href="tel:15555550100"', 'href="MAILTO:editor@example.org"', 'href="ftp://files.example.org/a.zip"', 'href=""',
      'HREF="https://news.example.org/opted-out"', 'href="https://news.example.org/style.css"', 'href="https://news.example.org/in-textarea"',
      'href="mailto:editor@example.org"', 'href="mailto:help@example.com?subject=Spring%20sale"', 'href="tel:+15555550100"',
      'href="https://shop.example.com/preferences?u=1&amp;id=2" data-agent-smtp-notrack', 'href="https://shop.example.com/unsubscribe?u=1&amp;id=2" data-agent-smtp-unsubscribe',
      '<a href="https://in-comment.example.com">not seen</a>', 'HREF="https://news.example.org/"', 'href=\\"https://in-script.example.com\\"',
      'href="https://news.example.org/second"',
    ];
    const missing = untouched.filter((text) => !out.includes(text));
    expect(missing).toEqual([]);
  });

  it('escapes a replacement for its quotes, and for a comment', () => {
    const html = `<a href=https://a>1</a><a href='https://b'>2</a><!--[if mso]><v:rect href="https://c"></v:rect><![endif]-->`;
    const out = rewriteHtml(html, { link: () => `https://t.test/?a=1&b="2"&c='3'&d=<4>-->` }).html;
    const escaped = 'https://t.test/?a=1&amp;b=&quot;2&quot;&amp;c=&#39;3&#39;&amp;d=&lt;4&gt;--&gt;';
    expect(out).toBe(`<a href="${escaped}">1</a><a href='${escaped}'>2</a><!--[if mso]><v:rect href="${escaped}"></v:rect><![endif]-->`);
    // and it decodes back to what link returned
    const hrefs: string[] = [];
    new Parser({ onopentag: (_, a) => { if (a.href) hrefs.push(a.href); } }).end(out);
    expect(hrefs).toEqual([`https://t.test/?a=1&b="2"&c='3'&d=<4>-->`, `https://t.test/?a=1&b="2"&c='3'&d=<4>-->`]);
  });
});

describe('rewriteHtml: pixel and footer', () => {
  const pixel = (url: string) => `<img src="${url}" width="1" height="1" alt="" border="0" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />`;

  it('goes before the last real </body>, footer first', () => {
    const cases: [string, string, string][] = [
      // [input, where the insertion must go (marked by |), why]
      ['<html><body><p>x</p></body></html>', '<html><body><p>x</p>|</body></html>', 'plain'],
      ['<BODY>a</BODY >b</Body>', '<BODY>a</BODY >b|</Body>', 'the last one, any case'],
      ['<body>a<!-- </body> --></body>', '<body>a<!-- </body> -->|</body>', 'not inside a comment'],
      ['<body><script>"</body>"</script></body>', '<body><script>"</body>"</script>|</body>', 'not inside a script'],
      ['<body>a<!--[if mso]></body><![endif]--></body>', '<body>a<!--[if mso]></body><![endif]-->|</body>', 'not inside a conditional comment'],
      ['<html><p>no body</p></html>\n', '<html><p>no body</p>|</html>\n', 'no </body>: before </html>'],
      ['<p>fragment</p>', '<p>fragment</p>|', 'neither: at the end'],
      ['', '|', 'empty'],
      ['<body>x</body', '<body>x</body|', 'a </body cut off at the end is no close tag'],
    ];
    for (const [input, expected, why] of cases) {
      const out = rewriteHtml(input, { pixelUrl: 'https://t.test/o/abc?x=1&y=2', footerHtml: '<p class="f">Unsubscribe</p>' }).html;
      expect(out, why).toBe(expected.replace('|', `<p class="f">Unsubscribe</p>${pixel('https://t.test/o/abc?x=1&amp;y=2')}`));
    }
  });

  it('adds only what is asked for, and keeps links after </body> in order', () => {
    expect(rewriteHtml('<body>a</body>', { pixelUrl: 'https://p' }).html).toBe(`<body>a${pixel('https://p')}</body>`);
    expect(rewriteHtml('<body>a</body>', { footerHtml: '<hr>' }).html).toBe('<body>a<hr></body>');
    const html = '<body><a href="https://a">a</a></body><a href="https://b">b</a>';
    expect(rewriteHtml(html, { link: (_, i) => `https://t/${i}`, footerHtml: '<hr>' }).html).toBe(
      '<body><a href="https://t/0">a</a><hr></body><a href="https://t/1">b</a>',
    );
  });
});

describe('rewriteHtml on hostile input', () => {
  const hostile: string[] = [
    '<a href=', '<a href', '<a href="', "<a href='https://x", '<a href="https://x"', '<a href=https://x', '<a', '<', '</', '<!--', '<!--[if mso]>',
    '<!--[if mso]><a href="https://x">', '<!--[if mso]><a href="https://x"', '<![CDATA[<a href="https://x">]]>', '<?xml <a href="https://x">?>',
    '\0', '<a\0href="https://x">', '<a href="https://x\0">', '<a href="https://x"\0>', '&', '&#', '&#x', '&#xFFFFFFFF;', '<a href="&#xFFFFFFFF;">',
    '<a href="&#0;https://x">', '<a href="https://x&">', '<a href="https://x&#">', '<a href="https://x&#x">', '<a href="https://x&amp">',
    '<a href=""">', `<a href="'">`, '<a href=\'"\'>', '<a """ href="https://x">', '<a href="https://x" href=>', '<a =href="https://x">',
    '<a/href="https://x">', '<a href="https://x"/>', '<svg><a href="https://x"/></svg>', '<math><a href="https://x"></math>',
    '<plaintext><a href="https://x">', '<xmp><a href="https://x"></xmp>', '<noscript><a href="https://x"></noscript>',
    '<iframe><a href="https://x"></iframe>', '<title><a href="https://x"></title>', '<style></style</a href="https://x">',
    '\uFEFF<a href="https://x">', '<a href="https://\uD800">', '<a href="https://x\uDFFF">', '\uD83D<a href="https://🚀">',
    `<a href="https://x">${'<b>'.repeat(1000)}`, '</a href="https://x">', '</ a href="https://x">', '<!a href="https://x">', '<!DOCTYPE <a href="https://x">',
    '<!-- <!-- --> <a href="https://x"> -->', '<!--[if mso]><!--[if mso]><a href="https://x"><![endif]--><![endif]-->',
  ];

  it('never throws, leaves unchanged input unchanged, and changes only what it reports', () => {
    for (const html of hostile) {
      expect(rewriteHtml(html).html, JSON.stringify(html)).toBe(html);
      const { html: out, links } = rewriteHtml(html, { link: (_, index) => `https://t/${index}`, pixelUrl: 'https://p' });
      expect(out.length, JSON.stringify(html)).toBeGreaterThanOrEqual(0);
      const replaced = links.length ? out.split('https://t/').length - 1 : 0;
      expect(replaced, JSON.stringify(html)).toBe(links.length);
    }
  });

  it('runs in linear time on 5 MB adversarial inputs', () => {
    const MB = 1 << 20;
    const inputs: [string, string][] = [
      ['one huge href', `<a href="https://x/${'a'.repeat(5 * MB)}">x</a>`],
      ['unterminated huge href', `<a href="https://x/${'a'.repeat(5 * MB)}`],
      ['whitespace around an href', `<a href="${' '.repeat(2.5 * MB)}x${' '.repeat(2.5 * MB)}">`],
      ['ampersands in an href', `<a href="https://x/?${'&'.repeat(5 * MB)}">`],
      ['entity prefixes in an href', `<a href="https://x/?${'&am'.repeat(1.6 * MB)}">`],
      ['many links', '<a href="https://x/?a=1&amp;b=2">x</a>'.repeat(Math.floor((5 * MB) / 39))],
      ['many open a tags', '<a '.repeat(1.6 * MB)],
      ['many href attributes', `<a ${'href=x '.repeat(0.7 * MB)}>`],
      ['many attributes', `<a ${'data-agent-smtp-notrack '.repeat(0.2 * MB)}href="https://x">`],
      ['nested conditional comment starts', '<!--[if mso]>'.repeat(0.4 * MB)],
      ['a conditional comment full of links', `<!--[if mso]>${'<v:rect href="https://x"></v:rect>'.repeat(0.15 * MB)}<![endif]-->`],
      ['many body closes', '</body>'.repeat(0.7 * MB)],
      ['a huge tag name', `<a${'a'.repeat(5 * MB)} href="https://x">`],
      ['unclosed quotes', `<a href="${'"'.repeat(5 * MB)}`],
      ['NULs', '\0'.repeat(5 * MB)],
      ['less-thans', '<'.repeat(5 * MB)],
    ];
    for (const [why, html] of inputs) {
      const started = performance.now();
      rewriteHtml(html, { link: (_, i) => `https://t/${i}`, pixelUrl: 'https://p', footerHtml: '<hr>' });
      const ms = performance.now() - started;
      // a few hundred ms on a busy 2-core machine; quadratic behaviour would take minutes
      expect(ms, why).toBeLessThan(3_000);
    }
  });
});
