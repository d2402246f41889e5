import { describe, it, expect } from 'vitest';
import { AgentSmtpError } from '../errors/agent-smtp-error.js';
import { TemplateError } from '../errors/template-error.js';
import { TemplateEngine, compileTemplate, hasTemplateTags, renderTemplate } from './template-engine.js';

function render(source: string, variables: Record<string, unknown>, options?: Parameters<typeof renderTemplate>[2]): string {
  return compileTemplate(source).render(variables, options);
}

function catchError(fn: () => unknown): TemplateError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TemplateError);
    return error as TemplateError;
  }
  throw new Error('expected a TemplateError, but nothing was thrown');
}

describe('variables', () => {
  it('inserts top-level variables', () => {
    expect(render('Hi {first_name} {Last2}!', { first_name: 'Ada', Last2: 'Lovelace' })).toBe('Hi Ada Lovelace!');
  });

  it('inserts the same variable several times', () => {
    expect(render('{x}-{x}-{x}', { x: 'a' })).toBe('a-a-a');
  });

  it('walks dotted paths through objects', () => {
    expect(render('{user.name} <{user.contact.email}>', { user: { name: 'Ada', contact: { email: 'ada@example.com' } } })).toBe(
      'Ada <ada@example.com>',
    );
  });

  it('walks array indexes in paths', () => {
    const variables = { order: { items: ['pen', 'ink'], lines: [{ sku: 'A1' }, { sku: 'B2' }] } };
    expect(render('{order.items.0}/{order.items.1}/{order.lines.1.sku}', variables)).toBe('pen/ink/B2');
  });

  it('prints numbers, bigints, booleans, dates and arrays', () => {
    const variables = {
      n: 42.5,
      zero: 0,
      big: 12345678901234567890n,
      yes: true,
      no: false,
      when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)),
      tags: ['a', 1, true],
      empty: [],
    };
    expect(render('{n}|{zero}|{big}|{yes}|{no}|{when}|{tags}|{empty}|', variables)).toBe(
      '42.5|0|12345678901234567890|true|false|2024-01-02T03:04:05.006Z|a, 1, true||',
    );
  });

  it('leaves text without tags as it is, including emoji and CJK text', () => {
    const source = 'こんにちは 世界 👋🏽 — café ñ 漢字 {name} 😀';
    expect(render(source, { name: '李小龍 🐉' })).toBe('こんにちは 世界 👋🏽 — café ñ 漢字 李小龍 🐉 😀');
    expect(render(source, { name: '李小龍 🐉' }, { escape: 'html' })).toBe('こんにちは 世界 👋🏽 — café ñ 漢字 李小龍 🐉 😀');
  });

  it('renders an empty template as an empty string', () => {
    expect(render('', { a: 1 })).toBe('');
  });
});

describe('literal braces', () => {
  it('writes {{ as a literal brace', () => {
    expect(render('{{name} is {name}', { name: 'Ada' })).toBe('{name} is Ada');
    expect(render('{{{name}', { name: 'Ada' })).toBe('{Ada');
    expect(render('a {{ b {{{{ c', {})).toBe('a { b {{ c');
  });

  it('keeps lone closing braces', () => {
    expect(render('} {name}} }}', { name: 'x' })).toBe('} x} }}');
  });

  it('leaves CSS braces untouched', () => {
    const css = '<style>body { color: red } .a{color:blue} p {margin:0}</style><p>{name}</p>';
    expect(render(css, { name: 'Ada', color: 'green' }, { escape: 'html' })).toBe(
      '<style>body { color: red } .a{color:blue} p {margin:0}</style><p>Ada</p>',
    );
  });

  it('leaves JSON, spaced, numeric and malformed braces untouched', () => {
    const source = '{"a":1} { } {} {1} {1a} { name } {name } {a..b} {a.} {.a} {a-b} {?} {/} {^ x} {a.0b} {name';
    expect(render(source, { name: 'X', a: { b: 1 }, x: 1 }, { strict: true })).toBe(source);
  });

  it('hasTemplateTags tells templates from plain text', () => {
    expect(hasTemplateTags('Hello {name}')).toBe(true);
    expect(hasTemplateTags('{?flag}x{/flag}')).toBe(true);
    expect(hasTemplateTags('{^flag}x{/flag}')).toBe(true);
    expect(hasTemplateTags('a {{ b')).toBe(true);
    expect(hasTemplateTags('body { color: red } {"a":1} {1} { } }')).toBe(false);
    expect(hasTemplateTags('plain text')).toBe(false);
    expect(hasTemplateTags('')).toBe(false);
  });
});

describe('sections', () => {
  it('shows a section for truthy values and hides it for falsy ones', () => {
    const source = '[{?v}shown{/v}]';
    expect(render(source, { v: true })).toBe('[shown]');
    expect(render(source, { v: 'x' })).toBe('[shown]');
    expect(render(source, { v: 1 })).toBe('[shown]');
    expect(render(source, { v: ['a'] })).toBe('[shown]');
    expect(render(source, { v: {} })).toBe('[shown]');
    expect(render(source, { v: false })).toBe('[]');
    expect(render(source, { v: 0 })).toBe('[]');
    expect(render(source, { v: '' })).toBe('[]');
    expect(render(source, { v: null })).toBe('[]');
    expect(render(source, { v: [] })).toBe('[]');
    expect(render(source, {})).toBe('[]');
  });

  it('shows an inverted section for falsy values only', () => {
    const source = '[{^items}none{/items}]';
    expect(render(source, { items: [] })).toBe('[none]');
    expect(render(source, { items: 0 })).toBe('[none]');
    expect(render(source, {})).toBe('[none]');
    expect(render(source, { items: ['a'] })).toBe('[]');
    expect(render(source, { items: 'x' })).toBe('[]');
  });

  it('renders variables inside a shown section and uses dotted section paths', () => {
    expect(render('{?user.vip}Dear VIP {user.name}.{/user.vip} Bye', { user: { vip: true, name: 'Ada' } })).toBe(
      'Dear VIP Ada. Bye',
    );
  });

  it('nests sections, including if/else pairs', () => {
    const source = '{?a}A{?b}B{^c}notC{/c}{/b}{^b}notB{/b}{/a}.';
    expect(render(source, { a: 1, b: 1, c: 0 })).toBe('ABnotC.');
    expect(render(source, { a: 1, b: 1, c: 1 })).toBe('AB.');
    expect(render(source, { a: 1, b: 0 })).toBe('AnotB.');
    expect(render(source, { a: 0, b: 1 })).toBe('.');
  });

  it('reuses the same flag in sibling sections', () => {
    expect(render('{?x}1{/x}{?x}2{/x}{^x}3{/x}', { x: true })).toBe('12');
  });

  it('handles empty sections', () => {
    expect(render('a{?x}{/x}b', { x: true })).toBe('ab');
  });
});

describe('escaping', () => {
  it("escapes every special character in 'html' mode", () => {
    expect(render('<p>{v}</p>', { v: `& < > " ' plain` }, { escape: 'html' })).toBe('<p>&amp; &lt; &gt; &quot; &#39; plain</p>');
    expect(render('{v}', { v: '<<&&>>' }, { escape: 'html' })).toBe('&lt;&lt;&amp;&amp;&gt;&gt;');
    expect(render('{v}', { v: ['<a>', 'b&c'] }, { escape: 'html' })).toBe('&lt;a&gt;, b&amp;c');
  });

  it("escapes a special character at either end of a value, and leaves a value with none as it is, in 'html' mode", () => {
    expect(render('[{v}]', { v: `"a'` }, { escape: 'html' })).toBe('[&quot;a&#39;]');
    expect(render('[{v}]', { v: '&' }, { escape: 'html' })).toBe('[&amp;]');
    expect(render('[{v}]', { v: 'plain text, 123 — é' }, { escape: 'html' })).toBe('[plain text, 123 — é]');
  });

  it("inserts values raw in 'none' mode and by default", () => {
    const variables = { v: `<b>"Tom" & 'Jerry'</b>` };
    expect(render('{v}', variables, { escape: 'none' })).toBe(`<b>"Tom" & 'Jerry'</b>`);
    expect(render('{v}', variables)).toBe(`<b>"Tom" & 'Jerry'</b>`);
  });

  it('never escapes literal template text', () => {
    expect(render(`<a href="x?a=1&b='2'">{v}</a> {{`, { v: '&' }, { escape: 'html' })).toBe(`<a href="x?a=1&b='2'">&amp;</a> {`);
  });
});

describe('missing values', () => {
  it('renders missing variables as an empty string when not strict', () => {
    expect(render('Hi {name}{user.name}{list.5}!', { name: null, user: {}, list: [] })).toBe('Hi !');
  });

  it('names every missing variable in one error in strict mode, once each, in order', () => {
    const error = catchError(() =>
      render('Hi {first_name} #{order.id} {first_name} {city}', { order: { total: 1 }, city: 'Oslo' }, { strict: true }),
    );
    expect(error.message).toBe('Missing template variables: first_name, order.id');
    expect(error.missing).toEqual(['first_name', 'order.id']);
    expect(error.code).toBe('TEMPLATE_ERROR');
    expect(AgentSmtpError.isInstance(error)).toBe(true);
    expect(error.position).toBeUndefined();
  });

  it('counts variables inside shown sections but not inside hidden ones', () => {
    const source = '{?show}{a}{/show}{^show}{b}{/show}{?hidden}{c}{/hidden}{^flag}{d}{/flag}{e}';
    const error = catchError(() => render(source, { show: true }, { strict: true }));
    expect(error.missing).toEqual(['a', 'd', 'e']);
    expect(error.message).toBe('Missing template variables: a, d, e');
  });

  it('treats a missing section flag as falsy without reporting it', () => {
    expect(render('{?vip}VIP{/vip}{^vip}regular{/vip}', {}, { strict: true })).toBe('regular');
  });

  it('renders in strict mode when nothing is missing, including null-free falsy values', () => {
    expect(render('{a}/{b}/{c}', { a: 0, b: '', c: false }, { strict: true })).toBe('0//false');
  });
});

describe('objects', () => {
  it('refuses a plain object in strict mode and suggests a field', () => {
    const error = catchError(() => render('Hi {user}', { user: { name: 'Ada' } }, { strict: true }));
    expect(error.message).toBe('{user} is an object; use a field such as {user.name}');
    expect(error.missing).toEqual([]);
  });

  it('reports missing variables and objects together', () => {
    const error = catchError(() => render('{a}{user}{b}', { user: { id: 1 } }, { strict: true }));
    expect(error.message).toBe('Missing template variables: a, b. {user} is an object; use a field such as {user.id}');
    expect(error.missing).toEqual(['a', 'b']);
  });

  it('explains objects without fields, lists of objects and functions', () => {
    expect(catchError(() => render('{x}', { x: {} }, { strict: true })).message).toBe(
      '{x} is an object with no printable fields; pass a string, number, date or list',
    );
    expect(catchError(() => render('{x}', { x: [{ sku: 'A' }] }, { strict: true })).message).toBe(
      '{x} is a list that cannot be printed: {x.0} is an object; use a field such as {x.0.sku}',
    );
    expect(catchError(() => render('{x}', { x: () => 1 }, { strict: true })).message).toBe(
      '{x} is a function; pass a string, number, date or list',
    );
  });

  it('renders objects and other unprintable values as an empty string when not strict', () => {
    expect(render('[{user}][{list}][{fn}][{when}]', { user: { name: 'Ada' }, list: [{}], fn: () => 1, when: new Date(NaN) })).toBe(
      '[][][][]',
    );
  });
});

describe('prototype safety', () => {
  it('never reads inherited properties', () => {
    const variables = { user: { name: 'Ada' } };
    expect(render('[{constructor}][{__proto__}][{toString}][{user.constructor.name}][{user.hasOwnProperty}]', variables)).toBe(
      '[][][][][]',
    );
    const error = catchError(() => render('{constructor}{user.constructor.name}{__proto__}', variables, { strict: true }));
    expect(error.missing).toEqual(['constructor', 'user.constructor.name', '__proto__']);
  });

  it('does not show sections for inherited properties', () => {
    expect(render('{?constructor}leak{/constructor}{?user.toString}leak{/user.toString}ok', { user: {} })).toBe('ok');
  });

  it('does not walk into inherited properties of class instances', () => {
    class Account {
      get secret(): string {
        return 'hidden';
      }
    }
    expect(render('[{acct.secret}]', { acct: new Account() })).toBe('[]');
  });

  it('reads own properties of null-prototype objects', () => {
    const variables = Object.assign(Object.create(null) as Record<string, unknown>, { name: 'Ada' });
    expect(render('{name}', variables)).toBe('Ada');
  });
});

describe('compile errors', () => {
  it('reports an unclosed section with its position, line and column', () => {
    const source = 'Hello\n  {?vip}Dear VIP';
    const error = catchError(() => compileTemplate(source));
    expect(error.position).toBe(8);
    expect(error.message).toBe('Section {?vip} opened at line 2, column 3 is never closed; add {/vip} where it should end');
  });

  it('reports the innermost unclosed section', () => {
    const error = catchError(() => compileTemplate('{?a}{^b}x'));
    expect(error.position).toBe(4);
    expect(error.message).toBe('Section {^b} opened at line 1, column 5 is never closed; add {/b} where it should end');
  });

  it('reports a mismatched closing tag', () => {
    const source = '{?a}\n{?b}x{/a}{/b}';
    const error = catchError(() => compileTemplate(source));
    expect(error.position).toBe(10);
    expect(error.message).toBe(
      'Closing tag {/a} at line 2, column 6 does not match {?b} opened at line 2, column 1; close {?b} with {/b} first',
    );
  });

  it('reports a stray closing tag', () => {
    const error = catchError(() => compileTemplate('abc {/x} def'));
    expect(error.position).toBe(4);
    expect(error.message).toBe('Closing tag {/x} at line 1, column 5 has no open section; open one with {?x} or {^x}, or write {{/x} for literal text');
    expect(error.code).toBe('TEMPLATE_ERROR');
  });

  it('accepts an escaped closing tag as text', () => {
    expect(render('{{/x}', {})).toBe('{/x}');
  });

  it('throws compile errors from the engine and renderTemplate too', () => {
    expect(catchError(() => new TemplateEngine().compile('{?a}')).position).toBe(0);
    expect(catchError(() => renderTemplate('x{/a}', {})).position).toBe(1);
  });
});

describe('variables listing', () => {
  it('lists every path, sections included, unique, in order of first appearance', () => {
    const compiled = compileTemplate('{?vip}{user.name}{/vip}{^vip}{{skip} {order.items.0} {user.name}{/vip}{vip} body { color: red }');
    expect(compiled.variables).toEqual(['vip', 'user.name', 'order.items.0']);
    expect(compiled.source).toBe('{?vip}{user.name}{/vip}{^vip}{{skip} {order.items.0} {user.name}{/vip}{vip} body { color: red }');
  });

  it('lists nothing for plain text', () => {
    expect(compileTemplate('no tags { here }').variables).toEqual([]);
  });
});

describe('TemplateEngine', () => {
  it('returns the same compiled template for the same source', () => {
    const engine = new TemplateEngine();
    const first = engine.compile('Hi {name}');
    expect(engine.compile('Hi {name}')).toBe(first);
    expect(engine.compile('Hi {name}!')).not.toBe(first);
  });

  it('evicts the least recently used template beyond cacheSize', () => {
    const engine = new TemplateEngine({ cacheSize: 2 });
    const a = engine.compile('a');
    const b = engine.compile('b');
    expect(engine.compile('a')).toBe(a);
    engine.compile('c');
    expect(engine.compile('a')).toBe(a);
    expect(engine.compile('b')).not.toBe(b);
  });

  it('keeps the recency order when the newest template is used again', () => {
    const engine = new TemplateEngine({ cacheSize: 2 });
    const a = engine.compile('a');
    expect(engine.compile('a')).toBe(a);
    const b = engine.compile('b');
    expect(engine.compile('b')).toBe(b);
    expect(engine.compile('a')).toBe(a);
    engine.compile('c');
    expect(engine.compile('a')).toBe(a);
    expect(engine.compile('b')).not.toBe(b);
  });

  it('keeps nothing with cacheSize 0', () => {
    const engine = new TemplateEngine({ cacheSize: 0 });
    expect(engine.compile('a')).not.toBe(engine.compile('a'));
  });

  it('refuses a cacheSize that is not a whole number', () => {
    expect(() => new TemplateEngine({ cacheSize: -1 })).toThrow('TemplateEngine cacheSize must be a whole number of templates, 0 or more (got -1)');
    expect(() => new TemplateEngine({ cacheSize: 1.5 })).toThrow('(got 1.5)');
  });

  it('bounds the cache by bytes, dropping the least recently used', () => {
    const engine = new TemplateEngine({ cacheBytes: 80_000 });
    const sources = Array.from({ length: 20 }, (_, i) => `${i} {name} ${'x'.repeat(2000)}`);
    const compiled = sources.map((source) => engine.compile(source));
    expect(engine.cachedBytes).toBeLessThanOrEqual(80_000);
    expect(engine.cachedBytes).toBeGreaterThan(60_000);
    expect(engine.compile(sources[19]!)).toBe(compiled[19]);
    expect(engine.compile(sources[0]!)).not.toBe(compiled[0]);
  });

  it('never caches a source that would take more than an eighth of the budget', () => {
    const engine = new TemplateEngine({ cacheBytes: 80_000 });
    const big = `{name} ${'x'.repeat(3000)}`;
    expect(engine.compile(big)).not.toBe(engine.compile(big));
    expect(engine.cachedBytes).toBe(0);
  });

  it('holds at most 8 MiB by default, however many large templates it renders', () => {
    const engine = new TemplateEngine();
    for (let i = 0; i < 200; i++) engine.render(`${i} {name} ${'x'.repeat(100_000)}`, { name: 'Ada' });
    expect(engine.cachedBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(engine.cachedBytes).toBeGreaterThan(4 * 1024 * 1024);
  });

  it('refuses a cacheBytes that is not a whole number', () => {
    expect(() => new TemplateEngine({ cacheBytes: -1 })).toThrow('TemplateEngine cacheBytes must be a whole number of bytes, 0 or more (got -1)');
  });

  it('stops rendering soon after the output passes maxLength', () => {
    const out = new TemplateEngine().render('{v}'.repeat(10_000), { v: 'x'.repeat(1000) }, { maxLength: 50_000 });
    expect(out.length).toBeGreaterThan(50_000);
    expect(out.length).toBeLessThanOrEqual(51_000);
  });

  it('uses the engine strict option unless the call overrides it', () => {
    const engine = new TemplateEngine({ strict: true });
    expect(catchError(() => engine.render('Hi {name}', {})).missing).toEqual(['name']);
    expect(engine.render('Hi {name}', {}, { strict: false })).toBe('Hi ');
    expect(new TemplateEngine().render('Hi {name}', {})).toBe('Hi ');
    expect(catchError(() => new TemplateEngine().render('Hi {name}', {}, { strict: true })).missing).toEqual(['name']);
  });

  it('passes the escape option through', () => {
    const engine = new TemplateEngine();
    expect(engine.render('<b>{v}</b>', { v: '<i>' }, { escape: 'html' })).toBe('<b>&lt;i&gt;</b>');
    expect(engine.render('<b>{v}</b>', { v: '<i>' })).toBe('<b><i></b>');
  });

  it('renderTemplate renders with the shared engine', () => {
    expect(renderTemplate('{?n}{n} items{/n}{^n}none{/n}', { n: 3 })).toBe('3 items');
    expect(renderTemplate('{?n}{n} items{/n}{^n}none{/n}', { n: 0 })).toBe('none');
    expect(renderTemplate('{v}', { v: '"q"' }, { escape: 'html' })).toBe('&quot;q&quot;');
  });

  it('renders one compiled template many times with different values', () => {
    const compiled = new TemplateEngine().compile('{?vip}VIP {/vip}{name}');
    expect(compiled.render({ vip: true, name: 'a' })).toBe('VIP a');
    expect(compiled.render({ vip: false, name: 'b' })).toBe('b');
    expect(Object.isFrozen(compiled)).toBe(true);
  });
});

describe('markdown escaping', () => {
  it('backslash-escapes every ASCII punctuation character in values, never in the template', () => {
    expect(renderTemplate('**{v}**', { v: '[a](b) *c* <d> #e' }, { escape: 'markdown' })).toBe('**\\[a\\]\\(b\\) \\*c\\* \\<d\\> \\#e**');
    expect(renderTemplate('{v}', { v: 'plain words 123' }, { escape: 'markdown' })).toBe('plain words 123');
  });
});
