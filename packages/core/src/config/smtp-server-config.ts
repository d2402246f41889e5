import type { ConnectionOptions } from 'node:tls';
import { z } from 'zod/v4';
import { ConfigError } from '../errors/config-error.js';

/**
 * One SMTP server the pool may send through. Only `host` is required; everything else has a default
 * that suits a submission server (port 587, opportunistic STARTTLS, a pool of 5 connections).
 */
export interface SmtpServerConfig {
  /** Unique name used by `status()`, `useServer()` and the send result. Default: `host:port`. */
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
}

const positiveInt = z.number().int().positive();

export const smtpServerConfigSchema = z.object({
  name: z.string().min(1).max(200).optional(),
  host: z.string().min(1, 'is required (the SMTP server host name or IP address)'),
  port: z.number().int().min(1).max(65_535).optional(),
  secure: z.boolean().optional(),
  starttls: z.enum(['required', 'opportunistic', 'disabled']).optional(),
  auth: z.object({ user: z.string().min(1), pass: z.string(), method: z.enum(['PLAIN', 'LOGIN', 'CRAM-MD5']).optional() }).optional(),
  from: z.string().min(3).optional(),
  priority: z.number().finite().optional(),
  poolSize: positiveInt.max(100).optional(),
  rateLimit: z.object({ messages: positiveInt, perMs: positiveInt.optional() }).optional(),
  timeouts: z
    .object({ connectionMs: positiveInt.optional(), greetingMs: positiveInt.optional(), socketMs: positiveInt.optional() })
    .optional(),
  tls: z.record(z.string(), z.unknown()).optional(),
  maxRetries: z.number().int().min(0).max(20).optional(),
});

export const DEFAULT_TIMEOUTS = { connectionMs: 10_000, greetingMs: 10_000, socketMs: 60_000 } as const;

/**
 * Validates server configurations and fills in defaults. Throws `ConfigError` naming the server and field;
 * the error never repeats a password.
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
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join('.') || '(server)';
      const label = typeof config?.name === 'string' ? `"${config.name}"` : `#${index}`;
      throw new ConfigError(`servers[${index}].${field} (server ${label}): ${issue.message}`, { setting: `servers[${index}].${field}` });
    }
    const c = parsed.data;
    const secure = c.secure ?? false;
    const port = c.port ?? (secure ? 465 : 587);
    const name = c.name ?? `${c.host}:${port}`;
    if (seen.has(name)) {
      throw new ConfigError(`servers[${index}].name: "${name}" is used by two servers; give each server a unique name.`, {
        setting: `servers[${index}].name`,
      });
    }
    seen.add(name);
    return {
      name,
      host: c.host,
      port,
      secure,
      starttls: c.starttls ?? 'opportunistic',
      auth: c.auth,
      from: c.from,
      priority: c.priority ?? 0,
      poolSize: c.poolSize ?? 5,
      rateLimit: c.rateLimit ? { messages: c.rateLimit.messages, perMs: c.rateLimit.perMs ?? 1000 } : undefined,
      timeouts: { ...DEFAULT_TIMEOUTS, ...stripUndefined(c.timeouts ?? {}) },
      tls: config.tls,
      maxRetries: c.maxRetries ?? 1,
    };
  });
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
