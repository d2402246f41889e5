import { createPrivateKey } from 'node:crypto';
import { z } from 'zod/v4';

/** DKIM signing of every message a server sends (nodemailer's `dkim` transport option). */
export interface DkimConfig {
  /** The signing domain, `d=`: the domain whose DNS has the public key, usually the From address's. */
  domainName: string;
  /** The selector, `s=`: the public key is the TXT record at `<keySelector>._domainkey.<domainName>`. */
  keySelector: string;
  /** The RSA private key (1024 bits or more, 2048 recommended) in PEM, unencrypted. A secret: never logged or returned. */
  privateKey: string;
  /**
   * The header fields signed. Default: nodemailer's list plus `List-Unsubscribe-Post`. A list given here gets
   * `From`, `List-Unsubscribe` and `List-Unsubscribe-Post` added when it lacks them.
   */
  headerFieldNames?: readonly string[] | undefined;
}

/** A DKIM configuration with its header list complete; `privateKey` is non-enumerable, like `auth.pass`. */
export interface ResolvedDkimConfig {
  domainName: string;
  keySelector: string;
  privateKey: string;
  headerFieldNames: readonly string[];
}

/** nodemailer's default signed fields (lib/dkim/sign.js); its `headerFieldNames` replaces this list rather than adding to it. */
export const NODEMAILER_DKIM_HEADER_FIELDS = [
  'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc', 'MIME-Version', 'Content-Type',
  'Content-Transfer-Encoding', 'Content-ID', 'Content-Description', 'Resent-Date', 'Resent-From', 'Resent-Sender',
  'Resent-To', 'Resent-Cc', 'Resent-Message-ID', 'In-Reply-To', 'References', 'List-Id', 'List-Help',
  'List-Unsubscribe', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive', 'OTP-Token',
] as const;

/**
 * Always signed. RFC 8058 one-click unsubscribe counts only when both List-Unsubscribe headers are covered by a
 * valid DKIM signature (Gmail and Yahoo check), and RFC 6376 requires From.
 */
const REQUIRED_HEADER_FIELDS = ['From', 'List-Unsubscribe', 'List-Unsubscribe-Post'] as const;

export const DEFAULT_DKIM_HEADER_FIELDS: readonly string[] = withRequiredFields(NODEMAILER_DKIM_HEADER_FIELDS);

const HOSTNAME = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
const DNS_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
/** RFC 5322 field-name: printable ASCII but the colon (which nodemailer's list separates with). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]{1,76}$/;

// The key's own checks run after the schema (see dkimKeyProblem), so no zod issue ever carries key material.
export const dkimConfigSchema = z.strictObject({
  domainName: z.string().regex(HOSTNAME, 'must be a domain name such as "example.com" (the d= of the signature)'),
  keySelector: z.string().regex(DNS_LABEL, 'must be one DNS label such as "mail2024" (letters, digits, "-" and "_")'),
  privateKey: z.string().min(1, 'is required (the PEM private key whose public key is published in DNS)').max(16_384, 'is longer than any RSA key this SDK signs with'),
  headerFieldNames: z.array(z.string().regex(FIELD_NAME, 'must be a header field name such as "Subject"')).max(100).optional(),
});

/** Ed25519 is refused: nodemailer signs rsa-sha256 only, and on a key it cannot use it sends the message unsigned. */
const MIN_RSA_BITS = 1024;

/**
 * What is wrong with a DKIM private key, or undefined when it signs. Never quotes the key, and keeps Node's error
 * (which could) out of it.
 */
export function dkimKeyProblem(pem: string): string | undefined {
  let key;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return 'is not a private key Node can read: give the unencrypted PEM ("-----BEGIN PRIVATE KEY-----" or "-----BEGIN RSA PRIVATE KEY-----")';
  }
  if (key.asymmetricKeyType !== 'rsa') {
    return `is a${key.asymmetricKeyType === 'ed25519' ? 'n' : ''} ${key.asymmetricKeyType ?? 'unknown'} key, but nodemailer signs DKIM with rsa-sha256 only: generate an RSA key (openssl genrsa 2048)`;
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) return `is a ${bits}-bit RSA key; receivers ignore signatures by keys under ${MIN_RSA_BITS} bits (RFC 8301): use 2048`;
  return undefined;
}

/** The configuration with its header list completed and the key hidden. Expects one `dkimConfigSchema` accepted. */
export function resolveDkimConfig(dkim: z.infer<typeof dkimConfigSchema>): ResolvedDkimConfig {
  const out = {
    domainName: dkim.domainName,
    keySelector: dkim.keySelector,
    headerFieldNames: dkim.headerFieldNames ? withRequiredFields(dkim.headerFieldNames) : DEFAULT_DKIM_HEADER_FIELDS,
  } as ResolvedDkimConfig;
  Object.defineProperty(out, 'privateKey', { value: dkim.privateKey, enumerable: false });
  return out;
}

/** The `dkim` option of nodemailer's transport. */
export function toNodemailerDkim(dkim: ResolvedDkimConfig): { domainName: string; keySelector: string; privateKey: string; headerFieldNames: string } {
  return { domainName: dkim.domainName, keySelector: dkim.keySelector, privateKey: dkim.privateKey, headerFieldNames: dkim.headerFieldNames.join(':') };
}

/**
 * The texts a scrubber removes so no part of the key is repeated: the PEM as given, its base64 body on one line, and
 * each line of the body (an error may quote the key in part).
 */
export function dkimKeySecrets(pem: string): string[] {
  const body = pem
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('-----') && !line.includes(':'));
  return [pem, pem.trim(), body.join(''), ...body.filter((line) => line.length >= 16)];
}

function withRequiredFields(names: readonly string[]): readonly string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const name of [...names, ...REQUIRED_HEADER_FIELDS]) {
    if (seen.has(name.toLowerCase())) continue;
    seen.add(name.toLowerCase());
    out.push(name);
  }
  return Object.freeze(out);
}
