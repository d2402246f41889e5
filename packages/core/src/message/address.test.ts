import MimeNode from 'nodemailer/lib/mime-node';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/validation-error.js';
import { type AddressInput, parseAddress, parseAddressList, toDisplayAddress } from './address.js';
import { ACCEPTED_ADDRESSES, REFUSED_ADDRESSES } from './__fixtures__/address-corpus.js';

function refusal(run: () => unknown): ValidationError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

/** What nodemailer itself puts in MAIL FROM / RCPT TO for an address given in an explicit envelope. */
function nodemailerEnvelope(address: string): { from: string; to: string[] } {
  const envelope = new MimeNode().setEnvelope({ from: address, to: [address] }).getEnvelope();
  return { from: envelope.from as string, to: envelope.to };
}

describe('parseAddress: the wire form', () => {
  it('maps every accepted address to the form nodemailer sends, unchanged by nodemailer', () => {
    const rows = ACCEPTED_ADDRESSES.map(({ input, wire, domain }) => {
      const parsed = parseAddress(input, 'to');
      return { input, address: parsed.address, domain: parsed.domain, nodemailer: nodemailerEnvelope(parsed.address), expected: { wire, domain } };
    });
    for (const row of rows) {
      expect({ input: row.input, address: row.address, domain: row.domain }).toEqual({ input: row.input, address: row.expected.wire, domain: row.expected.domain });
      expect(row.nodemailer).toEqual({ from: row.address, to: [row.address] });
    }
  });

  it('refuses every address in the hostile corpus with a ValidationError naming the field', () => {
    const outcomes = REFUSED_ADDRESSES.map(({ input, why }) => {
      try {
        return { why, accepted: parseAddressList([input as AddressInput], 'cc') };
      } catch (err) {
        return { why, refused: err instanceof ValidationError, field: (err as ValidationError).field };
      }
    });
    for (const outcome of outcomes) expect(outcome).toEqual({ why: outcome.why, refused: true, field: expect.stringMatching(/^cc\[0\](\.address|\.name)?$/) });
  });

  it('says which invisible character it found, as a code point', () => {
    expect(refusal(() => parseAddress('ada@exa\u200Bmple.com', 'to')).message).toContain('U+200B');
    expect(refusal(() => parseAddress({ address: 'ada@example.com\uFEFF' }, 'to')).message).toContain('U+FEFF');
  });

  it('keeps the local part as given and lower-cases the domain', () => {
    expect(parseAddress('Ada.Lovelace@Example.ORG', 'to')).toEqual({ name: undefined, address: 'Ada.Lovelace@example.org', domain: 'example.org' });
  });

  it('shows a display form with the domain in Unicode', () => {
    expect(toDisplayAddress(parseAddress('ada@xn--bcher-kva.example', 'to'))).toBe('ada@bücher.example');
    expect(toDisplayAddress(parseAddress('ada@[127.0.0.1]', 'to'))).toBe('ada@[127.0.0.1]');
  });

  it('refuses bidi controls in display names but keeps joiners', () => {
    expect(refusal(() => parseAddressList([{ name: 'Bob\u202Egpj.exe', address: 'bob@example.com' }], 'to')).field).toBe('to[0].name');
    expect(refusal(() => parseAddress('"Bob\u202E" <bob@example.com>', 'to')).field).toBe('to');
    expect(parseAddress({ name: 'Dev \u{1F468}\u200D\u{1F4BB}', address: 'dev@example.com' }, 'to').name).toBe('Dev \u{1F468}\u200D\u{1F4BB}');
  });
});
