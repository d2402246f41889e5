import { generateKeyPairSync } from 'node:crypto';
import { dkimVerify, type DKIMResult } from 'mailauth';

/** A DKIM key pair made for one test run, and the TXT record that publishes it. */
export interface DkimTestKey {
  privateKey: string;
  /** `v=DKIM1; k=rsa; p=…`, as at `<selector>._domainkey.<domain>`. */
  txtRecord: string;
}

export function rsaDkimKey(bits = 2048): DkimTestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), txtRecord: `v=DKIM1; k=rsa; p=${p}` };
}

/**
 * Verifies the message's DKIM signatures with mailauth, its DNS answered from `records` (name → TXT) only: no
 * network. A name not listed answers ENOTFOUND, as DNS would.
 */
export async function verifyDkim(raw: Buffer | string, records: Record<string, string>): Promise<DKIMResult[]> {
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    const record = type === 'TXT' ? records[name.toLowerCase()] : undefined;
    if (record === undefined) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return [[record]];
  };
  const result = await dkimVerify(raw, { resolver: resolver as never });
  return result.results;
}

/** The tags of the message's first DKIM-Signature header, by name (`h`, `d`, `s`, …), whitespace removed. */
export function dkimSignatureTags(raw: Buffer | string): Record<string, string> {
  const text = raw.toString();
  const match = /^DKIM-Signature:(.*(?:\r?\n[ \t].*)*)/im.exec(text);
  if (!match) return {};
  const tags: Record<string, string> = {};
  for (const part of match[1]!.replace(/\s+/g, '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) tags[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return tags;
}
