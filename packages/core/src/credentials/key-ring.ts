import type { webcrypto } from 'node:crypto';
import { ConfigError } from '../errors/config-error.js';

// Only WebCrypto (`globalThis.crypto`), `atob`/`btoa` and TextEncoder: this file runs unchanged in Node and in edge
// runtimes (Workers, Deno, Vercel Edge), where a platform's API may encrypt a password it then stores. (The
// node:crypto import is a type only, erased from the build.)
type CryptoKey = webcrypto.CryptoKey;

/** AES-256: a key is exactly this many bytes. */
export const KEY_BYTES = 32;
/** 96 bits, the IV length GCM is specified for (other lengths are hashed into one and weaken the bound). */
export const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** The keys that encrypt stored secrets, by id. */
export interface KeyRingOptions {
  /** Id of the key new secrets are encrypted with (and `rotateKeys()` moves every secret to). */
  current: string;
  /**
   * Every key that may have encrypted a stored secret, by id: 32 random bytes, base64 (standard or URL-safe), e.g.
   * from `openssl rand -base64 32`. Keep retired keys here until `rotateKeys()` has moved every secret off them.
   */
  keys: Readonly<Record<string, string | Uint8Array>>;
}

/** A secret as stored: which key encrypted it, and base64 of IV ‖ ciphertext ‖ GCM tag. */
export interface EncryptedSecret {
  keyId: string;
  ciphertext: string;
}

/**
 * What encrypts the secrets of stored SMTP configs (passwords, DKIM keys) before they reach the store, and decrypts
 * them when a config is used: a `KeyRing` (AES-256-GCM in this process), or a keeper of the secrets elsewhere, such as
 * `supabaseVault()` from `@agent-smtp/store-supabase` (the secret in Supabase Vault, the stored "ciphertext" its id).
 * `additionalData` names the secret's kind, owner and config (see `passwordAdditionalData`); a keeper must bind the
 * secret to it, so that a secret copied to another owner's or config's row does not come back.
 */
export interface SecretKeeper {
  /** The key id new secrets get; `rotateKeys()` moves secrets stored under other ids to it. */
  readonly currentKeyId: string;
  encrypt(plaintext: string, additionalData: string): Promise<EncryptedSecret>;
  /** Throws `ConfigError` saying what to do when the secret cannot be had; `what` names it, e.g. `the password of SMTP config "work"`. */
  decrypt(secret: EncryptedSecret, additionalData: string, what?: string): Promise<string>;
}

/** `keyRing` options as `storedCredentials` takes them: a key ring's options, a `KeyRing`, or another `SecretKeeper`. */
export function toSecretKeeper(input: KeyRingOptions | SecretKeeper): SecretKeeper {
  const candidate = input as Partial<SecretKeeper> | undefined;
  if (candidate && typeof candidate.encrypt === 'function' && typeof candidate.decrypt === 'function' && typeof candidate.currentKeyId === 'string') {
    return candidate as SecretKeeper;
  }
  return KeyRing.from(input as KeyRingOptions);
}

/**
 * AES-256-GCM with key ids. Every encryption draws a fresh random 96-bit IV, and binds `additionalData` (the
 * secret's owner and record), so a ciphertext copied to another record does not decrypt. Holds its keys in private
 * fields: `util.inspect`, JSON and logs of a key ring show the key ids only.
 */
export class KeyRing implements SecretKeeper {
  readonly currentKeyId: string;
  readonly #raw: ReadonlyMap<string, Uint8Array>;
  readonly #imported = new Map<string, Promise<CryptoKey>>();

  private constructor(current: string, raw: ReadonlyMap<string, Uint8Array>) {
    this.currentKeyId = current;
    this.#raw = raw;
  }

  /** Validates the options (key ids, 32-byte keys, `current` among them); throws `ConfigError` naming the field. */
  static from(options: KeyRingOptions | KeyRing): KeyRing {
    if (options instanceof KeyRing) return options;
    if (!options || typeof options !== 'object' || !options.keys || typeof options.keys !== 'object') {
      throw new ConfigError('keyRing must be { current: "k1", keys: { k1: "<32 bytes, base64>" } }.', { setting: 'keyRing' });
    }
    const raw = new Map<string, Uint8Array>();
    for (const [id, value] of Object.entries(options.keys)) {
      if (!KEY_ID.test(id)) {
        throw new ConfigError(
          `keyRing.keys has the key id ${JSON.stringify(id.slice(0, 80))}; a key id is 1 to 64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit.`,
          { setting: 'keyRing.keys' },
        );
      }
      raw.set(id, decodeKey(id, value));
    }
    if (typeof options.current !== 'string' || !raw.has(options.current)) {
      const known = [...raw.keys()];
      throw new ConfigError(
        `keyRing.current is ${JSON.stringify(options.current)} but must name one of keyRing.keys (${known.length ? known.join(', ') : 'none given'}).`,
        { setting: 'keyRing.current' },
      );
    }
    return new KeyRing(options.current, raw);
  }

  get keyIds(): string[] {
    return [...this.#raw.keys()];
  }

  has(keyId: string): boolean {
    return this.#raw.has(keyId);
  }

  /** Encrypts under the current key with a fresh IV. `additionalData` must be given again, unchanged, to decrypt. */
  async encrypt(plaintext: string, additionalData: string): Promise<EncryptedSecret> {
    const iv = randomIv();
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: utf8.encode(additionalData) },
        await this.#key(this.currentKeyId, 'the current key'),
        utf8.encode(plaintext),
      ),
    );
    const out = new Uint8Array(IV_BYTES + sealed.length);
    out.set(iv);
    out.set(sealed, IV_BYTES);
    return { keyId: this.currentKeyId, ciphertext: toBase64(out) };
  }

  /**
   * Decrypts with the key the secret names. Throws `ConfigError` when that key id is not in the ring, and when the
   * ciphertext does not open (altered, under other additional data, or the ring holds another key under that id);
   * `what` names the record in that message, e.g. `the password of SMTP config "work"`. Never a raw WebCrypto error.
   */
  async decrypt(secret: EncryptedSecret, additionalData: string, what = 'a stored secret'): Promise<string> {
    const key = await this.#key(secret.keyId, what);
    const bytes = fromBase64(secret.ciphertext);
    if (!bytes || bytes.length < IV_BYTES + TAG_BYTES) throw undecryptable(what, secret.keyId, 'it is not a ciphertext this SDK wrote (malformed or truncated)');
    let plain: ArrayBuffer;
    try {
      plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: bytes.subarray(0, IV_BYTES), additionalData: utf8.encode(additionalData) },
        key,
        bytes.subarray(IV_BYTES),
      );
    } catch {
      // WebCrypto says only "OperationError": the tag did not verify. Which of the three causes it was cannot be told.
      throw undecryptable(
        what,
        secret.keyId,
        `it was encrypted for another owner or record (copied here), was altered, or keyRing.keys.${secret.keyId} is not the key it was encrypted with`,
      );
    }
    return utf8Decoder.decode(plain);
  }

  #key(keyId: string, what: string): Promise<CryptoKey> {
    let key = this.#imported.get(keyId);
    if (!key) {
      const raw = this.#raw.get(keyId);
      if (!raw) {
        throw new ConfigError(
          `${capitalize(what)} was encrypted with key "${keyId}", which keyRing.keys does not have (it has ${this.keyIds.join(', ')}): ` +
            `add key "${keyId}" back to keyRing.keys, or save the secret again.`,
          { setting: `keyRing.keys.${keyId}` },
        );
      }
      // Not extractable: once imported, the key cannot be read back out of the CryptoKey.
      key = crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
      this.#imported.set(keyId, key);
    }
    return key;
  }

  toJSON(): { current: string; keys: string[] } {
    return { current: this.currentKeyId, keys: this.keyIds };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyRing { current: ${this.currentKeyId}, keys: [${this.keyIds.join(', ')}] }`;
  }
}

/**
 * A fresh random 96-bit IV from the platform's CSPRNG. Random IVs keep GCM safe for up to 2^32 encryptions per key
 * (NIST SP 800-38D); rotating keys resets the count.
 */
export function randomIv(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(IV_BYTES));
}

/** A new random key for a key ring, base64 (what `openssl rand -base64 32` prints). */
export function generateKeyRingKey(): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function decodeKey(id: string, value: string | Uint8Array | undefined | null): Uint8Array {
  const setting = `keyRing.keys.${id}`;
  const make = 'e.g. the output of `openssl rand -base64 32` or of generateKeyRingKey()';
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '') || (value instanceof Uint8Array && value.length === 0)) {
    const what = value === undefined || value === null ? 'not set (undefined)' : 'empty';
    throw new ConfigError(
      `${setting} is ${what}: if it comes from an environment variable, that variable is unset or empty here. Give 32 random bytes as base64, ${make}.`,
      { setting },
    );
  }
  const bytes = value instanceof Uint8Array ? new Uint8Array(value) : typeof value === 'string' ? fromBase64(value.trim()) : undefined;
  // The key itself is never repeated, only its length.
  if (!bytes) {
    throw new ConfigError(`${setting} is not base64: give 32 random bytes as base64, ${make}.`, { setting });
  }
  if (bytes.length !== KEY_BYTES) {
    throw new ConfigError(
      `${setting} is ${bytes.length} bytes but must be ${KEY_BYTES} bytes (AES-256): give 32 random bytes as base64, e.g. the output of \`openssl rand -base64 32\`.`,
      { setting },
    );
  }
  return bytes;
}

function undecryptable(what: string, keyId: string, reason: string): ConfigError {
  return new ConfigError(`${capitalize(what)} could not be decrypted with key "${keyId}": ${reason}. Save the secret again to replace it.`, {
    setting: `keyRing.keys.${keyId}`,
  });
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary);
}

/** Standard or URL-safe base64, padded or not; undefined when it is not base64. */
function fromBase64(text: string): Uint8Array | undefined {
  if (!BASE64.test(text) || text.length % 4 === 1) return undefined;
  const standard = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  let binary: string;
  try {
    binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
