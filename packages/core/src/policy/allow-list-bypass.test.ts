import { describe, expect, it } from 'vitest';
import type { SmtpSink } from '@agent-smtp/testing';
import { useTestResources } from '../__fixtures__/test-resources.js';
import { PolicyError } from '../errors/policy-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { createMailer, type Mailer } from '../mailer/mailer.js';
import type { AddressInput, AddressListInput } from '../message/address.js';
import { waitFor } from '../outbox/__fixtures__/outbox-setup.js';
import { createMailTools } from '../tools/create-mail-tools.js';

/*
 * Hostile recipients against an allow-list, asserted on the wire: whatever the parser, the policy and nodemailer make
 * of an input, no RCPT TO outside the list may reach the server. Each input must be refused with a typed error or
 * sent only to addresses inside the list; some must go a definite way (`sent`, `refused`).
 */

const ALLOW = ['@example.com', 'boss@partner.example'];
const POLICY = { recipients: { allow: ALLOW } };

/**
 * Inside the list, judged here independently of the SDK's matcher: one `@`, and either any local part at exactly
 * `example.com` or exactly `boss@partner.example` (case-insensitively). `evil%attacker.test@example.com` is inside:
 * it is a mailbox at example.com, and whether example.com relays it onwards (the percent hack) is its server's
 * business, not the sender's policy.
 */
function insideList(rcpt: string): boolean {
  const lower = rcpt.toLowerCase();
  const parts = lower.split('@');
  if (parts.length !== 2 || parts[0] === '') return false;
  return parts[1] === 'example.com' || lower === 'boss@partner.example';
}

type Expect = 'sent' | 'refused' | 'either';
interface Case {
  what: string;
  input: AddressListInput;
  expect: Expect;
}

const c = (what: string, input: AddressListInput, expect: Expect): Case => ({ what, input, expect });

const CORPUS: readonly Case[] = [
  // baseline, so the corpus is known to reach the sink at all
  c('plain allowed', 'ok@example.com', 'sent'),
  c('the one partner address', 'boss@partner.example', 'sent'),
  // comments
  c('comment holding a disallowed address', 'ok@example.com (evil@attacker.test)', 'refused'),
  c('comment holding an allowed address', 'evil@attacker.test (ok@example.com)', 'refused'),
  c('comment inside the local part', 'ok(evil@attacker.test)@example.com', 'refused'),
  c('comment inside the domain', 'ok@(x)attacker.test', 'refused'),
  // groups
  c('group of a disallowed address', 'g: evil@attacker.test;', 'refused'),
  c('empty group', 'undisclosed-recipients:;', 'refused'),
  c('group mixing allowed and disallowed', 'g: ok@example.com, evil@attacker.test;', 'refused'),
  c('group then a disallowed address', 'g: ok@example.com;, evil@attacker.test', 'refused'),
  // quoted local parts
  c('quoted local part holding a disallowed address', '"evil@attacker.test"@example.com', 'refused'),
  c('quoted local part at a disallowed domain', '"x"@attacker.test', 'refused'),
  c('quoted allowed address at a disallowed domain', '"ok@example.com"@attacker.test', 'refused'),
  c('quoted allowed address as a display name', '"ok@example.com" <evil@attacker.test>', 'refused'),
  // case
  c('upper-case disallowed', 'EVIL@ATTACKER.TEST', 'refused'),
  c('mixed-case partner address', 'Boss@Partner.Example', 'sent'),
  c('upper-case allowed domain', 'OK@EXAMPLE.COM', 'sent'),
  // IDN and confusables
  c('Cyrillic а in the domain', 'ok@exаmple.com', 'refused'),
  c('that domain as an A-label', 'ok@xn--exmple-cua.com', 'refused'),
  c('fullwidth domain (UTS #46 maps it to example.com)', 'ok@ｅｘａｍｐｌｅ.com', 'sent'),
  c('fullwidth dot', 'ok@example．com', 'sent'),
  c('ideographic full stop before a disallowed domain', 'ok@example.com。attacker.test', 'refused'),
  c('allowed domain as a prefix of a disallowed one', 'ok@example.com.attacker.test', 'refused'),
  c('fragment trick', 'ok@attacker.test#@example.com', 'refused'),
  c('partner domain, other mailbox', 'x@partner.example', 'refused'),
  c('subdomain of the allowed domain', 'ok@sub.example.com', 'refused'),
  c('subdomain of the partner domain', 'boss@sub.partner.example', 'refused'),
  c('Unicode look-alike partner (Cyrillic о)', 'boss@partner.exаmple', 'refused'),
  // invisible and formatting characters
  c('zero-width space in the domain', 'ok@exam\u200bple.com', 'refused'),
  c('zero-width space after a disallowed address', 'evil@attacker.test\u200b', 'refused'),
  c('soft hyphen in the domain', 'ok@exam\u00adple.com', 'refused'),
  c('soft hyphen in the local part', 'ok\u00ad@example.com', 'refused'),
  c('BOM before a disallowed address', '\ufeffevil@attacker.test', 'refused'),
  c('BOM inside the allowed domain', 'ok@example\ufeff.com', 'refused'),
  c('RTL override', '\u202etset.rekcatta@live', 'refused'),
  c('RTL override after an allowed address', 'ok@example.com\u202e', 'refused'),
  c('word joiner', 'ok@example\u2060.com', 'refused'),
  // encoded words
  c('encoded-word name over a disallowed address', '=?utf-8?q?ok=40example.com?= <evil@attacker.test>', 'refused'),
  c('base64 encoded word as the whole address', '=?utf-8?b?ZXZpbEBhdHRhY2tlci50ZXN0?=', 'refused'),
  // Sent as written: nodemailer does not decode an encoded word in an address, so RCPT TO stays at example.com.
  c('base64 encoded word as the local part', '=?utf-8?b?ZXZpbEBhdHRhY2tlci50ZXN0?=@example.com', 'sent'),
  c('q encoded word as the domain', 'ok@=?utf-8?q?attacker.test?=', 'refused'),
  c('encoded word in angle brackets', '<=?utf-8?b?ZXZpbEBhdHRhY2tlci50ZXN0?=>', 'refused'),
  // trailing dots
  c('trailing dot on the allowed domain', 'ok@example.com.', 'refused'),
  c('trailing dot on a disallowed domain', 'evil@attacker.test.', 'refused'),
  // several @
  c('disallowed then allowed domain', 'evil@attacker.test@example.com', 'refused'),
  c('allowed then disallowed domain', 'ok@example.com@attacker.test', 'refused'),
  // angle tricks
  c('allowed text before a disallowed angle address', 'ok@example.com <evil@attacker.test>', 'refused'),
  c('disallowed angle address before allowed text', '<evil@attacker.test>ok@example.com', 'refused'),
  // addressparser folds the text after the first angle address into the display name, so these reach ok@example.com
  // alone: on the wire that is inside the list, though a recipient the input named is dropped without a word.
  c('allowed angle address before disallowed text', '<ok@example.com> evil@attacker.test', 'either'),
  c('two angle addresses', 'Ok <ok@example.com> <evil@attacker.test>', 'either'),
  c('nested angle brackets', '<<evil@attacker.test>>', 'refused'),
  // percent hack, bang path and source routes
  c('percent hack (a mailbox at example.com)', 'evil%attacker.test@example.com', 'sent'),
  c('bang path (a mailbox at example.com)', 'attacker.test!evil@example.com', 'sent'),
  c('source route', '@example.com:evil@attacker.test', 'refused'),
  c('source route in angle brackets', '<@example.com:evil@attacker.test>', 'refused'),
  c('source route through two hosts', '<@example.com,@partner.example:evil@attacker.test>', 'refused'),
  // line breaks and SMTP injection
  c('CRLF and a Bcc header in a quoted name', '"Ok\r\nBcc: evil@attacker.test" <ok@example.com>', 'refused'),
  c('LF and a Bcc header in a name', 'Ok\nBcc: evil@attacker.test <ok@example.com>', 'refused'),
  c('CRLF and an SMTP command after the address', 'ok@example.com\r\nRCPT TO:<evil@attacker.test>', 'refused'),
  c('CR alone', 'ok@example.com\rRCPT TO:<evil@attacker.test>', 'refused'),
  c('tab between two addresses', 'ok@example.com\tevil@attacker.test', 'refused'),
  // lists mixing allowed and disallowed: the whole message is refused
  c('comma-separated mixed list', 'ok@example.com, evil@attacker.test', 'refused'),
  c('semicolon-separated mixed list', 'ok@example.com; evil@attacker.test', 'refused'),
  c('array with one disallowed address', ['ok@example.com', 'evil@attacker.test'], 'refused'),
  c('array with a disallowed object', ['ok@example.com', { name: 'Ok', address: 'evil@attacker.test' }], 'refused'),
  c('array of allowed addresses', ['ok@example.com', 'boss@partner.example', 'Other <other@example.com>'], 'sent'),
  // other hosts
  c('address literal', 'ok@[127.0.0.1]', 'refused'),
  c('localhost', 'ok@localhost', 'refused'),
  // object form with a hostile name
  c('object: disallowed address as the name', { name: 'evil@attacker.test', address: 'ok@example.com' }, 'sent'),
  c('object: CRLF Bcc in the name', { name: 'Ok\r\nBcc: evil@attacker.test', address: 'ok@example.com' }, 'refused'),
  c('object: a whole header in the address', { name: 'Ok', address: 'ok@example.com>\r\nBcc: <evil@attacker.test' }, 'refused'),
  c('object: a list in the address', { name: 'Ok', address: 'ok@example.com, evil@attacker.test' }, 'refused'),
  c('object: a named address in the address', { name: 'Ok', address: 'Ok <evil@attacker.test>' }, 'refused'),
];

/** Where an input goes: each list, and (for a single string) inside the object form `{ name, address }`. */
const POSITIONS: readonly { where: string; place: (input: AddressListInput) => Record<string, unknown> | undefined }[] = [
  { where: 'to', place: (input) => ({ to: input }) },
  { where: 'cc', place: (input) => ({ to: 'ok@example.com', cc: input }) },
  { where: 'bcc', place: (input) => ({ to: 'ok@example.com', bcc: input }) },
  { where: 'to as { name, address }', place: (input) => (typeof input === 'string' ? { to: [{ name: 'Ok', address: input } satisfies AddressInput] } : undefined) },
];

interface Outcome {
  label: string;
  expect: Expect;
  result: 'sent' | 'refused';
  detail: string;
}

const resources = useTestResources();

async function setup(): Promise<{ sink: SmtpSink; mailer: Mailer }> {
  const sink = await resources.sink();
  const mailer = resources.track(
    createMailer({ servers: [sink.serverConfig({ name: 'sink', poolSize: 2 })], defaults: { from: 'agent@example.com' }, env: {}, policy: POLICY }),
  );
  return { sink, mailer };
}

/** Typed refusal, or rethrows (an untyped error is a defect in itself). */
function refusal(err: unknown, label: string): string {
  if (PolicyError.isInstance(err) || ValidationError.isInstance(err)) return `${err.code}: ${err.message}`;
  throw new Error(`${label}: expected a PolicyError or ValidationError, got ${String(err)}`, { cause: err });
}

/**
 * The assertions over a whole run: each definite expectation held, the sink got exactly the messages that were
 * reported sent (after the mailer closed and every connection ended, so nothing more can arrive), and not one
 * RCPT TO outside the list.
 */
async function assertOnTheWire(sink: SmtpSink, mailer: Mailer, outcomes: Outcome[], sentCount: number): Promise<void> {
  await mailer.close();
  await sink.waitForIdle();
  const wrong = outcomes.filter((o) => o.expect !== 'either' && o.expect !== o.result).map((o) => `${o.label}: expected ${o.expect}, got ${o.result} (${o.detail})`);
  expect(wrong).toEqual([]);
  const outside = sink.messages.flatMap((m) => m.envelope.to.filter((rcpt) => !insideList(rcpt)).map((rcpt) => `${rcpt} (subject ${m.subject})`));
  expect(outside).toEqual([]);
  expect(sink.stats.messages).toBe(sentCount);
  expect(sink.messages).toHaveLength(sentCount);
  // The corpus did reach the server (so the check above is not vacuous), and no name smuggled a header in.
  expect(sentCount).toBeGreaterThan(10);
  expect(sink.messages.filter((m) => /^bcc:/im.test(m.raw.toString('latin1').split('\r\n\r\n')[0]!))).toEqual([]);
}

describe('allow-list bypass corpus: no RCPT TO outside the list reaches the server', () => {
  it('through send (to, cc, bcc and the object form)', async () => {
    const { sink, mailer } = await setup();
    const outcomes: Outcome[] = [];
    let sent = 0;
    for (const entry of CORPUS) {
      for (const { where, place } of POSITIONS) {
        const fields = place(entry.input);
        if (!fields) continue;
        const label = `${entry.what} [${where}] ${JSON.stringify(entry.input)}`;
        try {
          const result = await mailer.send({ ...fields, subject: label, text: 'x' });
          expect(result.status, label).toBe('sent');
          expect(result.accepted.filter((a) => !insideList(a)), label).toEqual([]);
          sent++;
          outcomes.push({ label, expect: entry.expect, result: 'sent', detail: result.accepted.join(', ') });
        } catch (err) {
          outcomes.push({ label, expect: entry.expect, result: 'refused', detail: refusal(err, label) });
        }
      }
    }
    await assertOnTheWire(sink, mailer, outcomes, sent);
  });

  it('through the send_email tool', async () => {
    const { sink, mailer } = await setup();
    const tool = createMailTools(mailer).find((t) => t.name === 'send_email')!;
    const outcomes: Outcome[] = [];
    let sent = 0;
    let callId = 0;
    for (const entry of CORPUS) {
      // The tool takes strings and lists of strings only: an object form has no tool spelling.
      if (typeof entry.input !== 'string' && !(Array.isArray(entry.input) && entry.input.every((i) => typeof i === 'string'))) continue;
      for (const where of ['to', 'cc', 'bcc'] as const) {
        const label = `${entry.what} [tool ${where}] ${JSON.stringify(entry.input)}`;
        const raw = { to: where === 'to' ? entry.input : 'ok@example.com', ...(where === 'to' ? {} : { [where]: entry.input }), subject: 'corpus', body: 'x' };
        const parsed = tool.inputSchema.safeParse(raw);
        if (!parsed.success) {
          // The adapter refuses input its schema does not take, before execute.
          outcomes.push({ label, expect: entry.expect, result: 'refused', detail: `schema: ${parsed.error.message}` });
          continue;
        }
        const outcome = await tool.execute(parsed.data, { toolCallId: `call-${callId++}` });
        if (outcome.ok) {
          const value = outcome.value as { status: string; accepted: string[] };
          expect(value.status, label).toBe('sent');
          expect(value.accepted.filter((a) => !insideList(a)), label).toEqual([]);
          sent++;
          outcomes.push({ label, expect: entry.expect, result: 'sent', detail: value.accepted.join(', ') });
        } else {
          expect(['POLICY_RECIPIENT_NOT_ALLOWED', 'VALIDATION_ERROR'], `${label}: ${outcome.error.message}`).toContain(outcome.error.code);
          outcomes.push({ label, expect: entry.expect, result: 'refused', detail: `${outcome.error.code}: ${outcome.error.message}` });
        }
      }
    }
    await assertOnTheWire(sink, mailer, outcomes, sent);
  });

  it('through enqueue and a worker', async () => {
    const { sink, mailer } = await setup();
    const outcomes: Outcome[] = [];
    const queued: string[] = [];
    for (const entry of CORPUS) {
      for (const { where, place } of POSITIONS) {
        const fields = place(entry.input);
        if (!fields) continue;
        const label = `${entry.what} [enqueue ${where}] ${JSON.stringify(entry.input)}`;
        try {
          const result = await mailer.enqueue({ ...fields, subject: label, text: 'x' });
          expect(result.status, label).toBe('queued');
          queued.push(result.id);
          outcomes.push({ label, expect: entry.expect, result: 'sent', detail: 'queued' });
        } catch (err) {
          outcomes.push({ label, expect: entry.expect, result: 'refused', detail: refusal(err, label) });
        }
      }
    }
    const worker = mailer.startWorker({ concurrency: 4, pollMs: 20 });
    const statuses = await waitFor(
      'the queue to drain',
      async () => {
        const all = await Promise.all(queued.map(async (id) => (await mailer.getStatus(id))?.status));
        return all.every((s) => s === 'sent' || s === 'failed') ? all : undefined;
      },
      20_000,
    );
    await worker.stop();
    expect(statuses.filter((s) => s !== 'sent')).toEqual([]);
    await assertOnTheWire(sink, mailer, outcomes, queued.length);
  });
});

describe('ambiguous recipient text is refused, not guessed', () => {
  // addressparser reads the text after the first angle address as more display name: `<ok@example.com>
  // evil@attacker.test` becomes name "evil@attacker.test" at ok@example.com, so a recipient the caller named is dropped
  // and the send reports success. address.ts refuses this guess when there is no `<` at all; with one it slips through.
  it.each(['<ok@example.com> evil@attacker.test', 'Ok <ok@example.com> <evil@attacker.test>', 'Ok <ok@example.com> ok2@example.com'])(
    '%j is a ValidationError',
    async (to) => {
      const { sink, mailer } = await setup();
      const error = await mailer.send({ to, subject: 'ambiguous', text: 'x' }).then(
        (result) => new Error(`sent to ${result.accepted.join(', ')}`),
        (err: unknown) => err,
      );
      expect(ValidationError.isInstance(error) ? 'ValidationError' : String(error)).toBe('ValidationError');
      await mailer.close();
      expect(sink.messages).toHaveLength(0);
    },
  );
});
