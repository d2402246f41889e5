import { z } from 'zod/v4';
import { dkimConfigSchema, dkimKeyProblem } from '../config/dkim-config.js';
import { markConfigSource } from '../config/smtp-config-source.js';
import type { SmtpServerConfig } from '../config/smtp-server-config.js';
import { ValidationError } from '../errors/validation-error.js';
import { parseAddress } from '../message/address.js';
import { toValidationError } from '../message/zod-issues.js';
import type { SmtpSecurity, StoredSmtpConfig } from '../store/mail-store.js';

/**
 * A named SMTP account as a user enters it on a platform's settings page. Without `id` it creates a config; with the
 * `id` of one of the owner's configs it edits that one: omitted fields keep their stored values (a blank password
 * field keeps the password), and `null` clears `username`, `password`, `fromAddress` or `fromName`.
 */
export interface SmtpConfigInput {
  id?: string | undefined;
  /** Unique per owner, e.g. `Work` or `Newsletter (Mailgun)`. Required to create. */
  name?: string | undefined;
  /** Required to create. */
  host?: string | undefined;
  /** Default: 465 for `tls`, 587 for `starttls`, 25 for `none`. */
  port?: number | undefined;
  /** Default: `tls` on port 465, else `starttls`. */
  security?: SmtpSecurity | undefined;
  username?: string | null | undefined;
  /** Needs `username`. Stored encrypted; never returned. */
  password?: string | null | undefined;
  /** Sender of messages that name none. */
  fromAddress?: string | null | undefined;
  fromName?: string | null | undefined;
  /** Make it the owner's default (the config sends go through unless they name another). An owner's first active config becomes the default anyway. */
  isDefault?: boolean | undefined;
  /** Default true. An inactive config is kept but never sent through. */
  active?: boolean | undefined;
  /**
   * Sign this account's messages with DKIM. `privateKey` (RSA, PEM) is stored encrypted and never returned; when
   * editing, leaving it out keeps the stored key. `null` stops signing and deletes the key.
   */
  dkim?: { domainName: string; keySelector: string; privateKey?: string | undefined } | null | undefined;
}

/** A stored config as the SDK shows it: everything but the password, which it never returns in any form. */
export interface SmtpConfigSummary {
  id: string;
  ownerId: string;
  name: string;
  host: string;
  port: number;
  security: SmtpSecurity;
  username: string | undefined;
  hasPassword: boolean;
  /** The key ring key the password is encrypted with (shows how far a key rotation got). */
  keyId: string | undefined;
  fromAddress: string | undefined;
  fromName: string | undefined;
  isDefault: boolean;
  active: boolean;
  /** The DKIM domain and selector, without the key, which is never returned in any form. */
  dkim: { domainName: string; keySelector: string } | undefined;
  hasDkimKey: boolean;
  /** The key ring key the DKIM key is encrypted with. */
  dkimKeyId: string | undefined;
  createdAt: Date;
  updatedAt: Date;
}

/** Options every server built from a stored config gets: a private CA, timeouts, pool size (a platform's choice, not the user's). */
export type SmtpServerDefaults = Pick<SmtpServerConfig, 'tls' | 'timeouts' | 'poolSize' | 'rateLimit' | 'maxRetries'>;

// Whitespace, "/" and "@" mean a URL or user:password@host pasted into the host field.
const HOST = /^[^\s/@]+$/;
const NO_CONTROLS = /^[^\p{Cc}]*$/u;

const clearable = (schema: z.ZodString) => schema.nullable().optional();

export const smtpConfigInputSchema = z.strictObject({
  id: z.string().min(1).max(200).optional(),
  name: z.string().trim().min(1, 'is required (a name for this account, unique among yours)').max(100).regex(NO_CONTROLS, 'must not contain control characters').optional(),
  host: z.string().trim().min(1, 'is required (the SMTP server host name or IP address)').max(253).regex(HOST, 'must be a host name or IP address only, such as "smtp.example.com" (no scheme, port, user or spaces)').optional(),
  port: z.number().int().min(1).max(65_535).optional(),
  security: z.enum(['tls', 'starttls', 'none']).optional(),
  username: clearable(z.string().trim().min(1).max(320).regex(NO_CONTROLS, 'must not contain control characters')),
  // Messages about the password never repeat it: zod's length messages name the limit only.
  password: clearable(z.string().min(1).max(1024)),
  fromAddress: clearable(z.string().trim().min(3).max(320)),
  fromName: clearable(z.string().trim().min(1).max(200).regex(NO_CONTROLS, 'must not contain control characters or line breaks')),
  isDefault: z.boolean().optional(),
  active: z.boolean().optional(),
  // The key is checked after the schema (dkimKeyProblem), so no zod issue carries it.
  dkim: dkimConfigSchema.omit({ headerFieldNames: true }).partial({ privateKey: true }).nullable().optional(),
});

/** The input validated, merged over the stored config when editing one: every field of the row but the secret. */
export interface MergedSmtpConfig {
  name: string;
  host: string;
  port: number;
  security: SmtpSecurity;
  username: string | undefined;
  /** `undefined`: keep the stored password; `null`: none. */
  password: string | null | undefined;
  fromAddress: string | undefined;
  fromName: string | undefined;
  isDefault: boolean;
  active: boolean;
  /** `privateKey` undefined: keep the stored key. */
  dkim: { domainName: string; keySelector: string; privateKey: string | undefined } | undefined;
}

/** Validates `input` (throws `ValidationError` naming the field, never repeating the password) and merges it over `existing`. */
export function mergeSmtpConfigInput(input: SmtpConfigInput, existing: StoredSmtpConfig | undefined): MergedSmtpConfig {
  const parsed = smtpConfigInputSchema.safeParse(input);
  if (!parsed.success) throw toValidationError(parsed.error);
  const c = parsed.data;
  const name = c.name ?? existing?.name;
  const host = c.host ?? existing?.host;
  if (name === undefined) throw ValidationError.of('name', 'is required (a name for this account, unique among yours)');
  if (host === undefined) throw ValidationError.of('host', 'is required (the SMTP server host name or IP address)');
  const security = c.security ?? existing?.security ?? (c.port === 465 ? 'tls' : 'starttls');
  // A new security mode without a port takes that mode's usual port: 465 kept for STARTTLS would never connect.
  const securityChanged = existing !== undefined && security !== existing.security;
  const port = c.port ?? (securityChanged ? undefined : existing?.port);
  const username = c.username === null ? undefined : (c.username ?? existing?.username);
  if (c.password !== undefined && c.password !== null && username === undefined) {
    throw ValidationError.of('password', 'needs a username: set username to the login name, or leave the password out');
  }
  // A stored password goes only where it was given for: moving the account to another host, port or security mode
  // (or login) needs the password again, so an edit cannot send the old one to a server of the editor's choosing.
  const moved = existing !== undefined && (host !== existing.host || (port ?? DEFAULT_PORTS[security]) !== existing.port || securityChanged || username !== existing.username);
  if (moved && existing.passwordCiphertext !== undefined && username !== undefined && (c.password === undefined || c.password === null || c.password === '')) {
    throw ValidationError.of('password', 'is required again when host, port, security or username changes: the stored one stays with the old server');
  }
  const fromAddress = c.fromAddress === null ? undefined : (c.fromAddress ?? existing?.fromAddress);
  if (fromAddress !== undefined) parseAddress(fromAddress, 'fromAddress');
  const fromName = c.fromName === null ? undefined : (c.fromName ?? existing?.fromName);
  if (fromName !== undefined && fromAddress === undefined) throw ValidationError.of('fromName', 'needs a fromAddress to go with it');
  const dkim = mergeDkim(c.dkim, existing);
  return {
    name,
    host,
    port: port ?? DEFAULT_PORTS[security],
    security,
    username,
    // A cleared username takes the password with it.
    password: username === undefined ? null : c.password,
    fromAddress,
    fromName,
    isDefault: c.isDefault ?? existing?.isDefault ?? false,
    active: c.active ?? existing?.active ?? true,
    dkim,
  };
}

function mergeDkim(input: { domainName: string; keySelector: string; privateKey?: string | undefined } | null | undefined, existing: StoredSmtpConfig | undefined): MergedSmtpConfig['dkim'] {
  if (input === null) return undefined;
  if (input === undefined) {
    if (existing?.dkimDomain === undefined || existing.dkimSelector === undefined) return undefined;
    return { domainName: existing.dkimDomain, keySelector: existing.dkimSelector, privateKey: undefined };
  }
  if (input.privateKey === undefined) {
    if (existing?.dkimKeyCiphertext === undefined) throw ValidationError.of('dkim.privateKey', 'is required (the PEM private key whose public key is published in DNS)');
  } else {
    const problem = dkimKeyProblem(input.privateKey);
    // The problem only, never the key.
    if (problem) throw ValidationError.of('dkim.privateKey', problem);
  }
  return { domainName: input.domainName, keySelector: input.keySelector, privateKey: input.privateKey };
}

const DEFAULT_PORTS: Record<SmtpSecurity, number> = { tls: 465, starttls: 587, none: 25 };

/**
 * The server a stored config sends through. `password` is the decrypted one, or undefined for an account without;
 * `dkimKey` the decrypted DKIM key, signing with the config's `dkimDomain` and `dkimSelector`.
 */
export function toSmtpServerConfig(
  config: Pick<StoredSmtpConfig, 'name' | 'host' | 'port' | 'security' | 'username' | 'fromAddress' | 'fromName' | 'dkimDomain' | 'dkimSelector'>,
  password: string | undefined,
  defaults: SmtpServerDefaults = {},
  priority?: number,
  dkimKey?: string,
): SmtpServerConfig {
  const server: SmtpServerConfig = {
    ...defaults,
    name: config.name,
    host: config.host,
    port: config.port,
    secure: config.security === 'tls',
    // STARTTLS is required, never opportunistic: a stored password must not go over a connection an attacker downgraded.
    ...(config.security === 'tls' ? {} : { starttls: config.security === 'starttls' ? ('required' as const) : ('disabled' as const) }),
    ...(priority === undefined ? {} : { priority }),
  };
  // Messages about a TLS mistake then name `security` and `port`, the fields this account was saved with.
  markConfigSource(server, { kind: 'stored' });
  const from = formatFrom(config.fromAddress, config.fromName);
  if (from !== undefined) server.from = from;
  if (config.username !== undefined) {
    const auth = { user: config.username } as NonNullable<SmtpServerConfig['auth']>;
    Object.defineProperty(auth, 'pass', { value: password ?? '', enumerable: false });
    server.auth = auth;
  }
  if (dkimKey !== undefined && config.dkimDomain !== undefined && config.dkimSelector !== undefined) {
    const dkim = { domainName: config.dkimDomain, keySelector: config.dkimSelector } as NonNullable<SmtpServerConfig['dkim']>;
    Object.defineProperty(dkim, 'privateKey', { value: dkimKey, enumerable: false });
    server.dkim = dkim;
  }
  return server;
}

/** `"Name" <address>`, the display name quoted (RFC 5322 quoted-string) so commas and quotes in it stay in it. */
export function formatFrom(address: string | undefined, name: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  if (name === undefined) return address;
  return `"${name.replace(/[\\"]/g, '\\$&')}" <${address}>`;
}

export function toSmtpConfigSummary(config: StoredSmtpConfig): SmtpConfigSummary {
  return {
    id: config.id,
    ownerId: config.ownerId,
    name: config.name,
    host: config.host,
    port: config.port,
    security: config.security,
    username: config.username,
    hasPassword: config.passwordCiphertext !== undefined,
    keyId: config.keyId,
    fromAddress: config.fromAddress,
    fromName: config.fromName,
    isDefault: config.isDefault,
    active: config.active,
    dkim: config.dkimDomain !== undefined && config.dkimSelector !== undefined ? { domainName: config.dkimDomain, keySelector: config.dkimSelector } : undefined,
    hasDkimKey: config.dkimKeyCiphertext !== undefined,
    dkimKeyId: config.dkimKeyId,
    createdAt: config.createdAt,
    updatedAt: config.updatedAt,
  };
}

/**
 * The additional data a config's password is encrypted with: its owner and id, so a ciphertext copied to another
 * owner's or config's row does not decrypt. JSON, so no choice of ids can make two pairs encode alike.
 */
export function passwordAdditionalData(ownerId: string, configId: string): string {
  return JSON.stringify(['agent-smtp/smtp-config-password/v1', ownerId, configId]);
}

/**
 * The additional data a config's DKIM key is encrypted with: owner, id and a purpose of its own, so neither the
 * password's ciphertext nor another config's key decrypts in its place.
 */
export function dkimKeyAdditionalData(ownerId: string, configId: string): string {
  return JSON.stringify(['agent-smtp/smtp-config-dkim-key/v1', ownerId, configId]);
}

/** How errors name a config's DKIM key (never the key). */
export const describeDkimKey = (config: Pick<StoredSmtpConfig, 'name' | 'id' | 'ownerId'>): string =>
  `the DKIM key of SMTP config "${config.name}" (id ${config.id}, owner ${config.ownerId})`;

/** How errors name a config's password (never the password). */
export const describePassword = (config: Pick<StoredSmtpConfig, 'name' | 'id' | 'ownerId'>): string =>
  `the password of SMTP config "${config.name}" (id ${config.id}, owner ${config.ownerId})`;
