import type { AddressInput } from '../address.js';

/** Addresses that are accepted, with the wire form (the exact RCPT TO) and the A-label domain they must map to. */
export const ACCEPTED_ADDRESSES: readonly { input: AddressInput; wire: string; domain: string }[] = [
  { input: 'ada@example.com', wire: 'ada@example.com', domain: 'example.com' },
  { input: 'ada@EXAMPLE.COM', wire: 'ada@example.com', domain: 'example.com' },
  { input: 'Ada.Lovelace@Example.Org', wire: 'Ada.Lovelace@example.org', domain: 'example.org' },
  { input: "o'brien+tag@example.com", wire: "o'brien+tag@example.com", domain: 'example.com' },
  // fullwidth letters and full stops map to ASCII (UTS #46)
  { input: 'ada@\uFF45\uFF58\uFF41\uFF4D\uFF50\uFF4C\uFF45.com', wire: 'ada@example.com', domain: 'example.com' },
  { input: 'ada@\uFF45\uFF58\uFF41\uFF4D\uFF50\uFF4C\uFF45\uFF0E\uFF43\uFF4F\uFF4D', wire: 'ada@example.com', domain: 'example.com' },
  { input: 'ada@example\u3002com', wire: 'ada@example.com', domain: 'example.com' },
  { input: 'ada@example\uFF61com', wire: 'ada@example.com', domain: 'example.com' },
  // compatibility forms
  { input: 'ada@\uFB01le.example', wire: 'ada@file.example', domain: 'file.example' },
  { input: 'ada@\u2460.example', wire: 'ada@1.example', domain: '1.example' },
  { input: 'ada@stra\u1E9Ee.de', wire: 'ada@strasse.de', domain: 'strasse.de' },
  { input: 'ada@\u212Aelvin.example', wire: 'ada@kelvin.example', domain: 'kelvin.example' },
  // IDN, upper case and already-encoded
  { input: 'ada@b\u00FCcher.example', wire: 'ada@xn--bcher-kva.example', domain: 'xn--bcher-kva.example' },
  { input: 'ada@B\u00DCCHER.Example', wire: 'ada@xn--bcher-kva.example', domain: 'xn--bcher-kva.example' },
  { input: 'ada@xn--bcher-kva.example', wire: 'ada@xn--bcher-kva.example', domain: 'xn--bcher-kva.example' },
  { input: 'ada@\u043F\u0440\u0438\u043C\u0435\u0440.\u0440\u0444', wire: 'ada@xn--e1afmkfd.xn--p1ai', domain: 'xn--e1afmkfd.xn--p1ai' },
  { input: 'Ada <ADA@B\u00FCcher.example>', wire: 'ADA@xn--bcher-kva.example', domain: 'xn--bcher-kva.example' },
  { input: { name: 'Ada', address: ' ada@M\u00FCnchen.example ' }, wire: 'ada@xn--mnchen-3ya.example', domain: 'xn--mnchen-3ya.example' },
  // a non-ASCII local part needs SMTPUTF8, and nodemailer then keeps the domain in UTF-8
  { input: '\u00FCser@B\u00FCcher.example', wire: '\u00FCser@b\u00FCcher.example', domain: 'xn--bcher-kva.example' },
  { input: '\u7528\u6237@\u4F8B\u5B50.\u5E7F\u544A', wire: '\u7528\u6237@\u4F8B\u5B50.\u5E7F\u544A', domain: 'xn--fsqu00a.xn--4rr70v' },
  // mixed: fullwidth local part (kept), fullwidth domain (mapped)
  { input: '\uFF41\uFF44\uFF41@\uFF25\uFF38\uFF21\uFF2D\uFF30\uFF2C\uFF25.com', wire: '\uFF41\uFF44\uFF41@example.com', domain: 'example.com' },
  { input: 'ada@[127.0.0.1]', wire: 'ada@[127.0.0.1]', domain: '[127.0.0.1]' },
  { input: 'ada@localhost', wire: 'ada@localhost', domain: 'localhost' },
];

/** Addresses refused outright, each with the reason it must not be sent. */
export const REFUSED_ADDRESSES: readonly { input: AddressInput; why: string }[] = [
  { input: 'ada@exa\u200Bmple.com', why: 'zero-width space (UTS #46 drops it)' },
  { input: 'ada@exa\u00ADmple.com', why: 'soft hyphen (dropped)' },
  { input: 'a\u200Dda@example.com', why: 'zero-width joiner in the local part' },
  { input: 'ada@exa\u200Cmple.com', why: 'zero-width non-joiner' },
  { input: 'ada@exa\u2060mple.com', why: 'word joiner' },
  { input: 'ada@\u202Eexample.com', why: 'right-to-left override' },
  { input: 'ada\u200E@example.com', why: 'left-to-right mark' },
  { input: 'ada@exam\u2066ple.com', why: 'bidi isolate' },
  { input: 'ada@exa\uFE0Fmple.com', why: 'variation selector' },
  { input: 'ada@exa\u180Emple.com', why: 'Mongolian vowel separator' },
  { input: 'ada@\u3164.example.com', why: 'Hangul filler' },
  { input: 'ada@exa\u{E0041}mple.com', why: 'tag character' },
  { input: 'ada@exa\u034Fmple.com', why: 'combining grapheme joiner' },
  { input: { address: 'ada@example.com\uFEFF' }, why: 'byte order mark that trim() would hide' },
  { input: { address: 'ada@example\u00A0.com' }, why: 'no-break space' },
  { input: { address: 'ada@example\u3000com' }, why: 'ideographic space' },
  { input: { address: 'ada\u0000@example.com' }, why: 'NUL' },
  { input: { address: 'ada\uD800@example.com' }, why: 'lone surrogate' },
  { input: { address: 'ada@exam\u0007ple.com' }, why: 'control character' },
  { input: { address: 'ada@example.com\u2028' }, why: 'line separator' },
  { input: { address: 'ada@\uE000example.com' }, why: 'private use' },
  { input: 'ada@1.2.3', why: 'ends in a number: read as the IPv4 address 1.2.0.3' },
  { input: 'ada@0x7f.1', why: 'hex IPv4 form' },
  { input: 'ada@xn--zz.example', why: 'invalid punycode' },
  { input: 'ada@example.com.', why: 'trailing dot' },
  { input: 'ada@example..com', why: 'empty label' },
  { input: 'ada@-example.com', why: 'label starts with a hyphen' },
  { input: 'ada@example-.com', why: 'label ends with a hyphen' },
  { input: { address: 'ada@evil.example/mail.corp.example' }, why: 'URL delimiter the host parser would cut at' },
  { input: { address: 'ada@ex%41mple.com' }, why: 'percent escape' },
  { input: `ada@${'a'.repeat(64)}.com`, why: 'label over 63 characters' },
  { input: `${'a'.repeat(65)}@example.com`, why: 'local part over 64 characters' },
  { input: 'ada@nodot', why: 'no dot' },
  { input: '.ada@example.com', why: 'leading dot' },
  { input: { name: 'Bob\u202Etxt.exe', address: 'bob@example.com' }, why: 'bidi override in the display name' },
  { input: { name: 'Bob\u0000', address: 'bob@example.com' }, why: 'NUL in the display name' },
  { input: { name: 'Bob\uDC00', address: 'bob@example.com' }, why: 'lone surrogate in the display name' },
];
