import type { ConnectionOptions } from 'node:tls';
import { z } from 'zod/v4';
import { ConfigError } from '../errors/config-error.js';
import type { ScrubbedCredential } from '../secrets/secret-scrubber.js';
import { type DkimConfig, dkimConfigSchema, dkimKeyProblem, dkimKeySecrets, type ResolvedDkimConfig, resolveDkimConfig } from './dkim-config.js';
import { copyConfigSource } from './smtp-config-source.js';

/**
 * One SMTP server the pool may send through. Only `host` is required; everything else has a default
 * that suits a submission server (port 587, opportunistic STARTTLS, a pool of 5 connections).
 */
export interface SmtpServerConfig {
  /**
   * Unique name used by `status()`, `useServer()`, the send result, the tools and the MCP server's `/health`.
   * Default: `smtp-<n>`, n its position in the list from 1 (the host stays out of it, since `/health` needs no token).
   */
  name?: string;
  host: string;
  /** Default: 465 when `secure`, else 587. */
  port?: number;
  /** Implicit TLS from the first byte (usually port 465). */
  secure?: boolean;
  /**
   * STARTTLS on a plain connection: `required` fails unless the server upgrades, `opportunistic` upgrades
   * when offered, `disabled` never upgrades. Ignored when `secure` is set. Default: `opportunistic`.
   */
  starttls?: 'required' | 'opportunistic' | 'disabled';
  /** `method` forces one SASL mechanism; by default the best the server offers is used. */
  auth?: { user: string; pass: string; method?: 'PLAIN' | 'LOGIN' | 'CRAM-MD5' };
  /** Sender used when a message has no `from` and the mailer has no default. */
  from?: string;
  /** Higher is tried first. Servers of equal priority keep their configured order. Default: 0. */
  priority?: number;
  /** Open connections kept to this server. Default: 5. */
  poolSize?: number;
  /** At most `messages` per `perMs` milliseconds through this server (nodemailer's rateLimit/rateDelta). */
  rateLimit?: { messages: number; perMs?: number };
  /** Milliseconds. Defaults: connect 10 s, greeting 10 s, socket inactivity 60 s. */
  timeouts?: { connectionMs?: number; greetingMs?: number; socketMs?: number };
  /** Passed to Node's TLS (e.g. `ca` for a private CA, `servername`, `minVersion`). */
  tls?: ConnectionOptions;
  /** How many more times one send may try this server after a transient failure. Default: 1. */
  maxRetries?: number;
  /**
   * Sign every message sent through this server with DKIM (RSA key, PEM). `List-Unsubscribe` and
   * `List-Unsubscribe-Post` are always among the signed headers, so one-click unsubscribe counts with receivers.
   */
  dkim?: DkimConfig;
}

/** A server configuration with every default filled in. */
export interface ResolvedSmtpServerConfig {
  name: string;
  host: string;
  port: number;
  secure: boolean;
  starttls: 'required' | 'opportunistic' | 'disabled';
  auth: { user: string; pass: string; method?: 'PLAIN' | 'LOGIN' | 'CRAM-MD5' } | undefined;
  from: string | undefined;
  priority: number;
  poolSize: number;
  rateLimit: { messages: number; perMs: number } | undefined;
  timeouts: { connectionMs: number; greetingMs: number; socketMs: number };
  tls: ConnectionOptions | undefined;
  maxRetries: number;
  /** `privateKey` is non-enumerable. */
  dkim: ResolvedDkimConfig | undefined;
}

const positiveInt = z.number().int().positive();

/** The keys of Node's `tls.ConnectionOptions` (what TypeScript accepts for `tls`), so a misspelt one is refused too. */
const TLS_OPTION_KEYS = [
  'ALPNCallback', 'ALPNProtocols', 'SNICallback', 'allowPartialTrustChain', 'ca', 'cert', 'checkServerIdentity', 'ciphers',
  'clientCertEngine', 'crl', 'dhparam', 'ecdhCurve', 'enableTrace', 'honorCipherOrder', 'host', 'isServer', 'key', 'lookup',
  'maxVersion', 'minDHSize', 'minVersion', 'passphrase', 'path', 'pfx', 'port', 'privateKeyEngine', 'privateKeyIdentifier',
  'pskCallback', 'rejectUnauthorized', 'requestCert', 'requestOCSP', 'secureContext', 'secureOptions', 'secureProtocol',
  'server', 'servername', 'session', 'sessionIdContext', 'sessionTimeout', 'sigalgs', 'socket', 'ticketKeys', 'timeout',
] as const;

const authSchema = z.strictObject({ user: z.string().min(1), pass: z.string(), method: z.enum(['PLAIN', 'LOGIN', 'CRAM-MD5']).optional() });
const rateLimitSchema = z.strictObject({ messages: positiveInt, perMs: positiveInt.optional() });
const timeoutsSchema = z.strictObject({ connectionMs: positiveInt.optional(), greetingMs: positiveInt.optional(), socketMs: positiveInt.optional() });
const tlsSchema = z.strictObject(Object.fromEntries(TLS_OPTION_KEYS.map((key) => [key, z.unknown().optional()])));

// Unknown keys are refused, nested ones too: a misspelt `startTls` silently meant opportunistic TLS.
export const smtpServerConfigSchema = z.strictObject({
  name: z.string().min(1).max(200).optional(),
  host: z.string().min(1, 'is required (the SMTP server host name or IP address)'),
  port: z.number().int().min(1).max(65_535).optional(),
  secure: z.boolean().optional(),
  starttls: z.enum(['required', 'opportunistic', 'disabled']).optional(),
  auth: authSchema.optional(),
  from: z.string().min(3).optional(),
  priority: z.number().finite().optional(),
  poolSize: positiveInt.max(100).optional(),
  rateLimit: rateLimitSchema.optional(),
  timeouts: timeoutsSchema.optional(),
  tls: tlsSchema.optional(),
  maxRetries: z.number().int().min(0).max(20).optional(),
  dkim: dkimConfigSchema.optional(),
});

/** The keys each object of a server configuration accepts, by its path below the server. */
const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(smtpServerConfigSchema.shape),
  auth: Object.keys(authSchema.shape),
  rateLimit: Object.keys(rateLimitSchema.shape),
  timeouts: Object.keys(timeoutsSchema.shape),
  tls: TLS_OPTION_KEYS,
  dkim: Object.keys(dkimConfigSchema.shape),
};

/** Names people reach for that edit distance alone would not connect to ours. */
const ALIASES: Readonly<Record<string, string>> = {
  password: 'pass',
  username: 'user',
  login: 'user',
  ssl: 'secure',
  usetls: 'starttls',
  tls: 'starttls',
  timeout: 'timeouts',
  retries: 'maxRetries',
  pool: 'poolSize',
  maxconnections: 'poolSize',
  domain: 'domainName',
  selector: 'keySelector',
  key: 'privateKey',
  headers: 'headerFieldNames',
};

export const DEFAULT_TIMEOUTS = { connectionMs: 10_000, greetingMs: 10_000, socketMs: 60_000 } as const;

/**
 * Validates server configurations and fills in defaults. Throws `ConfigError` naming the server and field (an
 * unknown key is named with the nearest known one); the error never repeats a password or key. In the result `auth.pass`,
 * `dkim.privateKey` and the TLS `key`, `pfx` and `passphrase` are non-enumerable, so logging or serialising a configuration shows none.
 */
export function resolveSmtpServerConfigs(configs: readonly SmtpServerConfig[]): ResolvedSmtpServerConfig[] {
  if (!Array.isArray(configs) || configs.length === 0) {
    throw new ConfigError(
      'No SMTP server is configured: pass `servers: [{ host, port, auth }]`, or set SMTP_HOST (see loadSmtpServersFromEnv).',
      { setting: 'servers' },
    );
  }
  const seen = new Set<string>();
  return configs.map((config, index) => {
    const parsed = smtpServerConfigSchema.safeParse(config);
    if (!parsed.success) throw configIssue(parsed.error.issues, config, index);
    const c = parsed.data;
    const secure = c.secure ?? false;
    const port = c.port ?? (secure ? 465 : 587);
    const name = c.name ?? defaultServerName(index);
    if (seen.has(name)) {
      throw new ConfigError(`servers[${index}].name: "${name}" is used by two servers; give each server a unique name.`, {
        setting: `servers[${index}].name`,
      });
    }
    seen.add(name);
    if (c.dkim) {
      const problem = dkimKeyProblem(c.dkim.privateKey);
      const setting = `servers[${index}].dkim.privateKey`;
      // The problem only: Node's parse error stays out, and the key is never quoted.
      if (problem) throw new ConfigError(`${setting} (server "${name}") ${problem}.`, { setting });
    }
    return copyConfigSource(config, {
      name,
      host: c.host,
      port,
      secure,
      starttls: c.starttls ?? 'opportunistic',
      auth: c.auth ? hidePassword(c.auth) : undefined,
      from: c.from,
      priority: c.priority ?? 0,
      poolSize: c.poolSize ?? 5,
      rateLimit: c.rateLimit ? { messages: c.rateLimit.messages, perMs: c.rateLimit.perMs ?? 1000 } : undefined,
      timeouts: { ...DEFAULT_TIMEOUTS, ...stripUndefined(c.timeouts ?? {}) },
      tls: config.tls ? hideTlsSecrets(config.tls) : undefined,
      maxRetries: c.maxRetries ?? 1,
      dkim: c.dkim ? resolveDkimConfig(c.dkim) : undefined,
    });
  });
}

/** The name of the server at `index` that was given none: the same in status, results, tools and `/health`. */
export function defaultServerName(index: number): string {
  return `smtp-${index + 1}`;
}

/** The first problem of a server configuration as a ConfigError; an unknown key comes first, as it often causes the rest. */
function configIssue(issues: readonly z.core.$ZodIssue[], config: SmtpServerConfig, index: number): ConfigError {
  const label = typeof config?.name === 'string' ? `"${config.name}"` : `#${index}`;
  const unknown = issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown && unknown.code === 'unrecognized_keys') {
    const parent = unknown.path.map(String);
    const key = unknown.keys[0]!;
    const known = KNOWN_KEYS[parent.join('.')] ?? [];
    const setting = `servers[${index}].${[...parent, key].join('.')}`;
    const suggestion = nearestKey(key, known);
    const others = unknown.keys.length > 1 ? ` (also unknown: ${unknown.keys.slice(1).join(', ')})` : '';
    const advice = suggestion ? `did you mean "${suggestion}"?` : `known options: ${known.join(', ')}.`;
    // The key is named, never its value: a misplaced password would otherwise be repeated.
    return new ConfigError(`${setting} (server ${label}) is not a known option; ${advice}${others}`, { setting });
  }
  const issue = issues[0]!;
  const field = issue.path.join('.') || '(server)';
  return new ConfigError(`servers[${index}].${field} (server ${label}): ${issue.message}`, { setting: `servers[${index}].${field}` });
}

/**
 * The known key nearest to `key`: the same letters in another case, a listed alias, one that starts with the other,
 * or the closest by edit distance (transpositions count as one edit) within a third of the key's length (at least 2).
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const alias = ALIASES[lower];
  if (alias && known.includes(alias)) return alias;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const other = candidate.toLowerCase();
    const distance = other === lower ? 0 : other.startsWith(lower) || lower.startsWith(other) ? 1 : editDistance(lower, other);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.ceil(key.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance; keys are short (the caller caps nothing, so it is bounded here). */
function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Infinity;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The credentials with `pass` as a non-enumerable property: readable by the transport, absent from JSON.stringify,
 * util.inspect, spreads and structured logs of the configuration.
 */
function hidePassword(auth: NonNullable<SmtpServerConfig['auth']>): NonNullable<ResolvedSmtpServerConfig['auth']> {
  const out = { user: auth.user, ...(auth.method ? { method: auth.method } : {}) } as NonNullable<ResolvedSmtpServerConfig['auth']>;
  Object.defineProperty(out, 'pass', { value: auth.pass, enumerable: false });
  return out;
}

const TLS_SECRETS = ['key', 'pfx', 'passphrase'] as const;

/** A copy of the TLS options with the private key and its passphrase non-enumerable, like `auth.pass`. */
function hideTlsSecrets(tlsOptions: ConnectionOptions): ConnectionOptions {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(tlsOptions)) {
    if ((TLS_SECRETS as readonly string[]).includes(key)) Object.defineProperty(out, key, { value, enumerable: false });
    else out[key] = value;
  }
  return out as ConnectionOptions;
}

/** The TLS options with their hidden secrets enumerable again, for handing to Node (which copies options by spreading). */
export function revealTlsOptions(tlsOptions: ConnectionOptions | undefined): ConnectionOptions | undefined {
  if (!tlsOptions) return undefined;
  const out: Record<string, unknown> = { ...tlsOptions };
  for (const key of TLS_SECRETS) if (tlsOptions[key] !== undefined) out[key] = tlsOptions[key];
  return out as ConnectionOptions;
}

/** Whether two resolved configurations are the same, secrets included (JSON alone would not see them). */
export function sameResolvedConfig(a: ResolvedSmtpServerConfig, b: ResolvedSmtpServerConfig): boolean {
  return (
    JSON.stringify(a) === JSON.stringify(b) &&
    a.auth?.pass === b.auth?.pass &&
    a.dkim?.privateKey === b.dkim?.privateKey &&
    TLS_SECRETS.every((key) => a.tls?.[key] === b.tls?.[key])
  );
}

/** What a scrubber must remove from anything this server's replies and errors say: the password and the DKIM key. */
export function serverSecrets(config: ResolvedSmtpServerConfig): ScrubbedCredential[] {
  const secrets: ScrubbedCredential[] = config.auth ? [config.auth] : [];
  if (config.dkim) for (const pass of dkimKeySecrets(config.dkim.privateKey)) secrets.push({ pass });
  return secrets;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
