import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/validation-error.js';
import { composeEmail } from '../pipeline/compose.js';
import { TemplateEngine, compileTemplate, hasTemplateTags } from '../template/template-engine.js';
import { parseAddress, parseAddressList } from './address.js';
import { ADVERSARIAL_STRINGS } from './__fixtures__/adversarial-strings.js';
import { emailSchema } from './email-schema.js';
import { DEFAULT_LIMITS } from './limits.js';
import { normalizeEmail } from './normalize-email.js';
import { findUnstorableCharacter } from './storable-text.js';

const base = { to: 'ada@example.com', subject: 'Hi', text: 'Hello' };

/** Each field of an email that takes text, as a way to put `value` there. */
const EMAIL_FIELDS: readonly [field: string, place: (value: string) => Record<string, unknown>][] = [
  ['from', (v) => ({ from: v })],
  ['from.name', (v) => ({ from: { name: v, address: 'bot@example.com' } })],
  ['to', (v) => ({ to: v })],
  ['to[].address', (v) => ({ to: [{ address: v }] })],
  ['cc', (v) => ({ cc: [v] })],
  ['bcc', (v) => ({ bcc: v })],
  ['replyTo', (v) => ({ replyTo: v })],
  ['subject', (v) => ({ subject: v })],
  ['text', (v) => ({ text: v })],
  ['html', (v) => ({ html: v })],
  ['markdown', (v) => ({ text: undefined, markdown: v })],
  ['headers name', (v) => ({ headers: { [v]: 'x' } })],
  ['headers value', (v) => ({ headers: { 'X-Test': v } })],
  ['attachments filename', (v) => ({ attachments: [{ filename: v, content: 'x' }] })],
  ['attachments content (base64)', (v) => ({ attachments: [{ filename: 'a', content: v, encoding: 'base64' }] })],
  ['attachments content (utf8)', (v) => ({ attachments: [{ filename: 'a', content: v }] })],
  ['attachments contentType', (v) => ({ attachments: [{ filename: 'a', content: 'x', contentType: v }] })],
  ['attachments cid', (v) => ({ attachments: [{ filename: 'a', content: 'x', cid: v }] })],
  ['inReplyTo', (v) => ({ inReplyTo: v })],
  ['references', (v) => ({ references: v })],
  ['references[]', (v) => ({ references: [v] })],
  ['idempotencyKey', (v) => ({ idempotencyKey: v })],
  ['sendAt', (v) => ({ sendAt: v })],
  ['tags', (v) => ({ tags: [v] })],
  ['metadata key', (v) => ({ metadata: { [v]: 1 } })],
  ['metadata value', (v) => ({ metadata: { k: v } })],
  ['variables key', (v) => ({ variables: { [v]: 1 } })],
  ['variables value', (v) => ({ variables: { v }, subject: '{v}', text: '{v}', html: '{v}' })],
  ['template in text', (v) => ({ variables: { a: 'x' }, text: v })],
  ['template in markdown', (v) => ({ variables: { a: 'x' }, text: undefined, markdown: v })],
];

const engine = new TemplateEngine({ strict: true });
const composeContext = { limits: DEFAULT_LIMITS, templates: engine, defaultFrom: undefined, serverFrom: parseAddress('bot@example.com', 'from'), defaultReplyTo: [], defaultHeaders: {} };

/** Every public validator, as a call on one string; the outcome does not matter here, only how long it takes. */
const VALIDATORS: readonly [name: string, run: (value: string) => unknown][] = [
  ['parseAddress', (v) => parseAddress(v, 'to')],
  ['parseAddress { address }', (v) => parseAddress({ address: v }, 'to')],
  ['parseAddress { name }', (v) => parseAddress({ name: v, address: 'ada@example.com' }, 'to')],
  ['parseAddressList', (v) => parseAddressList(v, 'to')],
  ['parseAddressList []', (v) => parseAddressList([v, v], 'to')],
  ['compileTemplate', (v) => compileTemplate(v)],
  ['hasTemplateTags', (v) => hasTemplateTags(v)],
  ['TemplateEngine.render', (v) => engine.render(v, { a: v }, { escape: 'html' })],
  ['TemplateEngine.render strict', (v) => engine.render(v, {})],
  ['TemplateEngine.render markdown', (v) => engine.render(`{a}${v}`, { a: v }, { escape: 'markdown', maxLength: 2 * 1024 * 1024 })],
  ...EMAIL_FIELDS.flatMap(([field, place]): [string, (value: string) => unknown][] => [
    [`emailSchema ${field}`, (v) => emailSchema.safeParse({ ...base, ...place(v) })],
    [`normalizeEmail ${field}`, (v) => normalizeEmail({ ...base, ...place(v) }, DEFAULT_LIMITS)],
    [`composeEmail ${field}`, (v) => composeEmail({ ...base, ...place(v) }, composeContext)],
  ]),
];

function elapsed(run: () => unknown): number {
  const start = performance.now();
  try {
    run();
  } catch {
    // Refusing is a fine outcome; only the time it took matters.
  }
  return performance.now() - start;
}

describe('bounded work', () => {
  it('finishes every public validator promptly on megabyte adversarial strings', { timeout: 300_000 }, () => {
    const slow: string[] = [];
    const times: [string, number][] = [];
    for (const [validator, run] of VALIDATORS) {
      for (const { name, value } of ADVERSARIAL_STRINGS) {
        const ms = elapsed(() => run(value));
        times.push([`${validator} <- ${name}`, ms]);
        // Linear work on a megabyte takes milliseconds (all under 0.2 s here); quadratic takes minutes (98 KiB of
        // spaces took 15 s). 5 s leaves room for a loaded 2-core machine (one run under a type-check took 1.8 s).
        if (ms > 5000) slow.push(`${validator} <- ${name}: ${ms.toFixed(0)} ms`);
      }
    }
    expect(slow).toEqual([]);
    expect(times).toHaveLength(VALIDATORS.length * ADVERSARIAL_STRINGS.length);
  });

  it('converts Markdown up to its limits promptly, and refuses what is past them', { timeout: 120_000 }, () => {
    const maxBytes = DEFAULT_LIMITS.maxMarkdownBytes!;
    // Words just under the cap, of the shapes on which the converter's work grows with the square of a word.
    const word = (unit: string, end: string): string => `${unit.repeat(1000).slice(0, 999 - end.length)}${end} `;
    const shapes = [word('a', '@'), word('a.-', '@'), word('a_', ''), word('_a', ''), word('*a', ''), word('[a](', ''), word('<a', '')];
    const slow = shapes.flatMap((unit) => {
      const markdown = unit.repeat(Math.floor(maxBytes / unit.length));
      const ms = elapsed(() => composeEmail({ ...base, text: undefined, markdown }, composeContext));
      // At the caps the worst shapes take under a second here; one unbounded word of this size would take minutes.
      return ms > 5000 ? [`${unit.slice(0, 6)}…: ${ms.toFixed(0)} ms`] : [];
    });
    expect(slow).toEqual([]);

    const refused = [
      ['x '.repeat(maxBytes / 2 + 1), {}],
      [`${'a'.repeat(1001)}@`, {}],
      [`${'> '.repeat(20_000)}deep`, {}],
      [`${'- '.repeat(20_000)}deep`, {}],
      ['{v}', { variables: { v: 'a'.repeat(2000) } }],
    ].map(([markdown, patch]) => {
      try {
        composeEmail({ ...base, text: undefined, markdown, ...(patch as object) }, composeContext);
        return 'converted';
      } catch (err) {
        return err instanceof ValidationError ? err.field : String(err);
      }
    });
    expect(refused).toEqual(['markdown', 'markdown', 'markdown', 'markdown', 'markdown']);
  });
});

const UNSTORABLE = [
  ['NUL', '\u0000'],
  ['lone high surrogate', '\uD800'],
  ['lone low surrogate', '\uDC00'],
  ['reversed pair', '\uDC00\uD83D'],
] as const;

/** Where a value can sit in an email, and the field a refusal must name. */
const TEXT_FIELDS: readonly [field: string, place: (bad: string) => Record<string, unknown>][] = [
  ['text', (bad) => ({ text: `a${bad}b` })],
  ['html', (bad) => ({ html: `<p>${bad}</p>` })],
  ['markdown', (bad) => ({ text: undefined, markdown: `*${bad}*` })],
  ['subject', (bad) => ({ subject: `Hi ${bad}` })],
  ['from.name', (bad) => ({ from: { name: `Bot${bad}`, address: 'bot@example.com' } })],
  ['to[0].name', (bad) => ({ to: [{ name: `Ada${bad}`, address: 'ada@example.com' }] })],
  ['cc[0].address', (bad) => ({ cc: [{ address: `ada${bad}@example.com` }] })],
  ['bcc', (bad) => ({ bcc: `Ada${bad} <ada@example.com>` })],
  ['headers.X-Test', (bad) => ({ headers: { 'X-Test': `v${bad}` } })],
  ['headers.X-\uFFFD', (bad) => ({ headers: { [`X-${bad[0]}`]: 'v' } })],
  ['attachments[0].filename', (bad) => ({ attachments: [{ filename: `a${bad}.txt`, content: 'x' }] })],
  ['attachments[0].contentType', (bad) => ({ attachments: [{ filename: 'a.txt', content: 'x', contentType: `text/plain${bad}` }] })],
  ['attachments[0].cid', (bad) => ({ attachments: [{ filename: 'a.png', content: 'x', cid: `logo${bad}` }] })],
  ['inReplyTo', (bad) => ({ inReplyTo: `<a${bad}@example.com>` })],
  ['references[0]', (bad) => ({ references: [`<a${bad}@example.com>`] })],
  ['idempotencyKey', (bad) => ({ idempotencyKey: `k${bad}` })],
  ['tags[0]', (bad) => ({ tags: [`t${bad}`] })],
  ['metadata.note', (bad) => ({ metadata: { note: `n${bad}` } })],
  ['metadata.k\uFFFD', (bad) => ({ metadata: { [`k${bad[0]}`]: 1 } })],
  ['variables.name', (bad) => ({ subject: 'Hi {name}', variables: { name: `Ada${bad}` } })],
  ['variables.order.items.1', (bad) => ({ text: '{order.items}', variables: { order: { items: ['ok', `x${bad}`] } } })],
  ['variables.k\uFFFD', (bad) => ({ variables: { [`k${bad[0]}`]: 'v' } })],
];

describe('text no store can keep', () => {
  it('refuses NUL and lone surrogates in every field, naming the field in a message that is itself storable', () => {
    const cases = UNSTORABLE.flatMap(([what, bad]) => TEXT_FIELDS.map(([field, place]) => ({ what, field, input: { ...base, ...place(bad) } })));
    const outcomes = cases.map(({ what, field, input }) => {
      try {
        composeEmail(input, composeContext);
        return { what, expected: field, accepted: true };
      } catch (err) {
        const e = err as ValidationError;
        return { what, expected: field, code: e.code, field: e.field, storableMessage: findUnstorableCharacter(e.message) === undefined };
      }
    });
    for (const outcome of outcomes) {
      expect(outcome).toEqual({ what: outcome.what, expected: outcome.expected, code: 'VALIDATION_ERROR', field: outcome.expected, storableMessage: true });
    }
    expect(outcomes).toHaveLength(UNSTORABLE.length * TEXT_FIELDS.length);
  });

  it('keeps well-formed astral characters and other controls-free text as it is', () => {
    const email = composeEmail({ ...base, subject: 'Hi 🤖', text: 'tab\there 𝄞', tags: ['🏷'], metadata: { note: '✓' } }, composeContext);
    expect([email.subject, email.text, email.tags, email.metadata]).toEqual(['Hi 🤖', 'tab\there 𝄞', ['🏷'], { note: '✓' }]);
  });
});
