/** Passwords a scrubber must remove in every form: punctuation, base64's own alphabet, non-ASCII, the minimum length. */
export const PASSWORD_CORPUS: readonly string[] = [
  'hunter2-S3cret!',
  'abcd',
  'p@ss:w/rd?&=%#',
  'quote"back\\slash\'tick`',
  'with spaces in it',
  '+/+/+/==',
  'AAAAAAAAAAAA',
  'pässwörd-üñíçødé',
  '日本語のパスワード',
  'emoji-🔑-key-🚀',
  '<script>alert(1)</script>',
  'x'.repeat(200),
  '0123456789',
];

export const USER_CORPUS: readonly string[] = ['robot@example.com', 'agent', 'ünïcode-user', 'u'];

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const b64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

/** Every form of a login a server might echo back, labelled for failure messages. */
export function echoedForms(user: string, pass: string): Record<string, string> {
  return {
    plain: pass,
    'base64(pass) (AUTH LOGIN)': b64(pass),
    'base64url(pass)': b64url(pass),
    'base64(pass) unpadded': b64(pass).replace(/=+$/, ''),
    'base64(\\0user\\0pass) (AUTH PLAIN)': b64(`\0${user}\0${pass}`),
    'base64(user\\0user\\0pass)': b64(`${user}\0${user}\0${pass}`),
    'base64url(\\0user\\0pass)': b64url(`\0${user}\0${pass}`),
    'percent-encoded': encodeURIComponent(pass),
    'json-escaped': JSON.stringify(pass).slice(1, -1),
    'utf-8 bytes read as latin-1': Buffer.from(pass, 'utf8').toString('latin1'),
  };
}

/** The forms a test asserts are gone: the password's own, and the SASL tokens (which hold the user name too). */
export function secretForms(user: string, pass: string): Record<string, string> {
  const forms = echoedForms(user, pass);
  return {
    ...forms,
    'base64(user) (AUTH LOGIN)': b64(user),
  };
}

/** A reply line echoing the whole AUTH exchange, as the hostile server of issue 7 did. */
export function echoReply(user: string, pass: string): string {
  const forms = echoedForms(user, pass);
  return `5.7.8 Authentication failed: you said AUTH PLAIN ${forms['base64(\\0user\\0pass) (AUTH PLAIN)']} / LOGIN ${b64(user)} ${forms['base64(pass) (AUTH LOGIN)']} (user=${user} pass=${pass}, url=${forms['percent-encoded']})`;
}
