import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { echoedForms, PASSWORD_CORPUS, USER_CORPUS } from './__fixtures__/secret-corpus.js';
import { MIN_SCRUBBED_SECRET_LENGTH, REDACTED_SECRET, SecretScrubber } from './secret-scrubber.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('SecretScrubber', () => {
  const cases = PASSWORD_CORPUS.flatMap((pass) => USER_CORPUS.map((user) => ({ user, pass })));

  it('removes every echoed form of every password in the corpus, alone and inside text', () => {
    const leaks: string[] = [];
    for (const { user, pass } of cases) {
      const scrubber = SecretScrubber.for([{ user, pass }]);
      for (const [label, form] of Object.entries(echoedForms(user, pass))) {
        for (const text of [form, `535 ${form}`, `535 5.7.8 <${form}> rejected`, `x${form}y`, `${form}\r\n${form}`]) {
          const scrubbed = scrubber.scrub(text);
          if (scrubbed.includes(form) || scrubbed.includes(pass)) leaks.push(`${JSON.stringify(user)}/${JSON.stringify(pass)}: ${label} in ${JSON.stringify(text)}`);
        }
      }
    }
    expect(leaks).toEqual([]);
  });

  it('removes a password base64-encoded inside any longer token, whatever precedes it', () => {
    const leaks: string[] = [];
    for (const pass of PASSWORD_CORPUS) {
      const scrubber = SecretScrubber.for([{ user: 'someone', pass }]);
      for (const prefix of ['', 'a', 'ab', 'abc', 'authzid\0', '\0\0\0\0\0']) {
        const token = b64(`${prefix}${pass}trailing`);
        if (scrubber.scrub(`AUTH ${token} end`).includes(token.slice(4, -4))) leaks.push(`${JSON.stringify(pass)} after ${JSON.stringify(prefix)}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  it('removes the SASL PLAIN token even for a password too short to scrub alone, and documents the rule', () => {
    expect(MIN_SCRUBBED_SECRET_LENGTH).toBe(4);
    const scrubber = SecretScrubber.for([{ user: 'robot@example.com', pass: 'abc' }]);
    const token = b64('\0robot@example.com\0abc');
    expect(scrubber.scrub(`535 ${token}`)).toBe(`535 ${REDACTED_SECRET}`);
    // Three characters alone are left: they occur in ordinary replies ("abc" in a queue id, a word).
    expect(scrubber.scrub('250 ok abc')).toBe('250 ok abc');
  });

  it('leaves ordinary replies alone and keeps the plain user name (it is usually the sender address)', () => {
    const scrubber = SecretScrubber.for([{ user: 'robot@example.com', pass: 'hunter2-S3cret!' }]);
    for (const reply of [
      '250 2.0.0 Ok: queued as 4F3A2B1C9D',
      '550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown in virtual mailbox table',
      '451 4.3.0 robot@example.com is over quota, try again later',
      '221 2.0.0 Bye',
    ]) {
      expect(scrubber.scrub(reply)).toBe(reply);
    }
  });

  it('scrubs an error copy: message, stack, string fields and the cause chain, dropping objects that may hold options', () => {
    const pass = 'pässwörd-üñíçødé';
    const scrubber = SecretScrubber.for([{ user: 'robot', pass }]);
    const inner = Object.assign(new Error(`socket said ${b64(pass)}`), { code: 'ESOCKET' });
    const outer = Object.assign(new Error(`Invalid login: 535 ${pass}`, { cause: inner }), {
      code: 'EAUTH',
      response: `535 ${b64(`\0robot\0${pass}`)}`,
      responseCode: 535,
      command: 'AUTH PLAIN',
      connection: { options: { auth: { user: 'robot', pass } } },
    });
    const copy = scrubber.scrubError(outer);
    const shown = inspect(copy, { depth: 10, showHidden: true }) + JSON.stringify(copy) + String(copy.stack);
    for (const form of Object.values(echoedForms('robot', pass))) expect(shown).not.toContain(form);
    expect(copy).toMatchObject({ code: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN', name: 'Error' });
    expect((copy.cause as Error & { code: string }).code).toBe('ESOCKET');
    expect('connection' in copy).toBe(false);
  });

  it('runs in linear time on megabyte-sized base64-like text', () => {
    const scrubber = SecretScrubber.for(USER_CORPUS.map((user, i) => ({ user, pass: PASSWORD_CORPUS[i]! })));
    const started = performance.now();
    const out = scrubber.scrub(`${'A'.repeat(1 << 20)} ${'+/'.repeat(1 << 19)}`);
    expect(out.length).toBeGreaterThan(0);
    // Generous for a loaded 2-core machine; a quadratic scan of 1 MiB would take minutes.
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('shows nothing of its secrets when inspected or serialised', () => {
    const scrubber = SecretScrubber.for([{ user: 'robot', pass: 'hunter2-S3cret!' }]);
    const shown = inspect(scrubber, { depth: 10, showHidden: true }) + JSON.stringify({ scrubber });
    expect(shown).not.toContain('hunter2');
    expect(shown).not.toContain(b64('hunter2-S3cret!').slice(0, 8));
  });
});
