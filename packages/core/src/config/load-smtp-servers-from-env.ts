import { ConfigError } from '../errors/config-error.js';
import { markConfigSource } from './smtp-config-source.js';
import type { SmtpServerConfig } from './smtp-server-config.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The variables existing SMTP MCP servers read. Each field lists its canonical name first, then aliases;
 * the canonical name wins when both are set. A numbered server uses the same names with `_<n>` appended.
 */
const VARIABLES = {
  host: ['SMTP_HOST'],
  port: ['SMTP_PORT'],
  username: ['SMTP_USERNAME', 'SMTP_USER'],
  password: ['SMTP_PASSWORD', 'SMTP_PASS'],
  useTls: ['SMTP_USE_TLS'],
  useSsl: ['SMTP_USE_SSL', 'SMTP_SECURE'],
  timeout: ['SMTP_TIMEOUT'],
  maxRetries: ['SMTP_MAX_RETRIES'],
  from: ['SMTP_FROM_EMAIL'],
  name: ['SMTP_NAME'],
  priority: ['SMTP_PRIORITY'],
} as const satisfies Record<string, readonly string[]>;

type Field = keyof typeof VARIABLES;

const ALL_NAMES: readonly string[] = Object.values(VARIABLES).flat();

// `maxRetries` joins SmtpServerConfig in another change; until then the extra field rides along.
type SmtpServerFromEnv = SmtpServerConfig & { maxRetries?: number };

/** One variable that is set, with the exact name it was read from (an alias or a numbered form). */
interface Setting {
  variable: string;
  value: string;
}

export interface SmtpEnvVariable {
  variable: string;
  description: string;
  example: string;
}

/**
 * Reads SMTP servers from environment variables: `SMTP_HOST`, `SMTP_PORT`, `SMTP_USERNAME`, … for one server,
 * and `SMTP_HOST_<n>`, `SMTP_PORT_<n>`, … for more. The unnumbered server comes first, then numbered ones by n.
 * Returns `[]` when no host is set, so the caller decides whether that is an error.
 *
 * Throws `ConfigError` whose `setting` is the variable to fix; no message ever contains a password.
 */
export function loadSmtpServersFromEnv(env: Env = process.env): SmtpServerConfig[] {
  const numbered = findNumberedServers(env);
  const hasUnnumbered = isSet(env.SMTP_HOST);
  if (!hasUnnumbered && numbered.length > 0) rejectUnnumberedWithoutHost(env);

  const servers: SmtpServerFromEnv[] = [];
  if (hasUnnumbered) servers.push(readServer(env, '', 'primary'));
  for (const n of numbered) servers.push(readServer(env, `_${n}`, `smtp-${n}`));
  rejectDuplicateNames(servers, ['', ...numbered.map((n) => `_${n}`)].slice(hasUnnumbered ? 0 : 1));

  // Several servers with no priority: keep the configured order, so the first listed is the primary.
  if (servers.length > 1) {
    servers.forEach((server, index) => {
      server.priority ??= servers.length - index;
    });
  }
  return servers as SmtpServerConfig[];
}

/** One row per variable, for docs tables and the CLI's `--help`. */
export function describeSmtpEnv(): SmtpEnvVariable[] {
  return [
    {
      variable: 'SMTP_HOST',
      description: 'Host name or IP address of the SMTP server. Without it (and without SMTP_HOST_<n>) no server is configured.',
      example: 'smtp.example.com',
    },
    { variable: 'SMTP_PORT', description: 'Port, 1 to 65535. Default: 465 when SMTP_USE_SSL is true, else 587.', example: '587' },
    { variable: 'SMTP_USERNAME', description: 'Login name; setting it turns on authentication. Alias: SMTP_USER.', example: 'agent@example.com' },
    { variable: 'SMTP_USER', description: 'Alias of SMTP_USERNAME (SMTP_USERNAME wins when both are set).', example: 'agent@example.com' },
    {
      variable: 'SMTP_PASSWORD',
      description: 'Password or app password; needs SMTP_USERNAME. Never shown in error messages. Alias: SMTP_PASS.',
      example: 'app-password',
    },
    { variable: 'SMTP_PASS', description: 'Alias of SMTP_PASSWORD (SMTP_PASSWORD wins when both are set).', example: 'app-password' },
    {
      variable: 'SMTP_USE_TLS',
      description:
        'STARTTLS (usually port 587): true requires the upgrade, false never upgrades, unset upgrades when the server offers it. ' +
        'Booleans accept true/false, 1/0, yes/no, on/off.',
      example: 'true',
    },
    {
      variable: 'SMTP_USE_SSL',
      description: 'Implicit TLS from the first byte (usually port 465). Cannot be combined with SMTP_USE_TLS=true. Alias: SMTP_SECURE.',
      example: 'false',
    },
    { variable: 'SMTP_SECURE', description: 'Alias of SMTP_USE_SSL (SMTP_USE_SSL wins when both are set).', example: 'false' },
    {
      variable: 'SMTP_TIMEOUT',
      description: 'Connection, greeting and socket timeout in seconds (fractions allowed). Default: 10 s to connect and greet, 60 s idle socket.',
      example: '30',
    },
    { variable: 'SMTP_MAX_RETRIES', description: 'Retries of a transient failure on this server within one send; a whole number from 0 to 20. Default: 1.', example: '3' },
    { variable: 'SMTP_FROM_EMAIL', description: 'Sender used when a message has no from address.', example: 'agent@example.com' },
    {
      variable: 'SMTP_NAME',
      description: 'Name shown in status and send results. Default: primary (numbered servers: smtp-<n>).',
      example: 'primary',
    },
    {
      variable: 'SMTP_PRIORITY',
      description:
        'Higher is tried first; may be negative. Default with several servers: in configured order (the first is highest); with one: 0.',
      example: '10',
    },
    {
      variable: 'SMTP_<VARIABLE>_<n>',
      description:
        'Numbered form of every variable above configures another server (n = 1, 2, 3…, gaps allowed). SMTP_HOST_<n> must be set ' +
        'for each n used. Servers are ordered SMTP_HOST first, then by n.',
      example: 'SMTP_HOST_2=smtp.backup.example.com',
    },
  ];
}

/** The sorted suffixes n of every SMTP_HOST_n; throws on a numbered variable without its host. */
function findNumberedServers(env: Env): number[] {
  const hosts = new Set<number>();
  const others: { variable: string; n: number }[] = [];
  for (const variable of Object.keys(env)) {
    if (!isSet(env[variable])) continue;
    const match = matchNumbered(variable);
    if (!match) continue;
    if (!/^[1-9]\d*$/.test(match.suffix)) {
      throw new ConfigError(
        `${variable} is not a valid numbered variable: the suffix must be a positive integer without leading zeros, such as ${match.base}_1.`,
        { setting: variable },
      );
    }
    const n = Number(match.suffix);
    if (match.base === 'SMTP_HOST') hosts.add(n);
    else others.push({ variable, n });
  }
  for (const { variable, n } of others) {
    if (!hosts.has(n)) {
      throw new ConfigError(
        `${variable} is set but SMTP_HOST_${n} is not: set SMTP_HOST_${n} to that server's host name, or remove ${variable}.`,
        { setting: variable },
      );
    }
  }
  return [...hosts].sort((a, b) => a - b);
}

// Names identify servers in status, results and useServer(); resolveSmtpServerConfigs would refuse a duplicate
// too, but only naming servers[i], not the variable to change.
function rejectDuplicateNames(servers: readonly SmtpServerFromEnv[], suffixes: readonly string[]): void {
  const seen = new Map<string, string>();
  servers.forEach((server, i) => {
    const variable = `SMTP_NAME${suffixes[i]}`;
    const earlier = seen.get(server.name!);
    if (earlier !== undefined) {
      throw new ConfigError(`${variable} gives the name "${server.name}", which ${earlier} already uses: give each server a unique name.`, {
        setting: variable,
      });
    }
    seen.set(server.name!, suffixes[i] === '' ? 'the SMTP_HOST server' : `the SMTP_HOST${suffixes[i]} server`);
  });
}

function matchNumbered(variable: string): { base: string; suffix: string } | undefined {
  for (const base of ALL_NAMES) {
    if (!variable.startsWith(`${base}_`)) continue;
    const suffix = variable.slice(base.length + 1);
    if (/^\d+$/.test(suffix)) return { base, suffix };
  }
  return undefined;
}

// Unnumbered variables are not defaults for numbered servers; silently ignoring them would surprise.
function rejectUnnumberedWithoutHost(env: Env): void {
  for (const variable of ALL_NAMES) {
    if (variable !== 'SMTP_HOST' && isSet(env[variable])) {
      throw new ConfigError(
        `${variable} is set but SMTP_HOST is not: unnumbered variables configure the SMTP_HOST server and are not defaults for ` +
          `numbered servers. Set SMTP_HOST, or use ${variable}_<n> for each numbered server.`,
        { setting: variable },
      );
    }
  }
}

function readServer(env: Env, suffix: string, defaultName: string): SmtpServerFromEnv {
  const get = (field: Field): Setting | undefined => {
    for (const base of VARIABLES[field]) {
      const variable = `${base}${suffix}`;
      const value = env[variable];
      if (isSet(value)) return { variable, value };
    }
    return undefined;
  };
  const canonical = (field: Field): string => `${VARIABLES[field][0]}${suffix}`;

  const server: SmtpServerFromEnv = { name: get('name')?.value.trim() ?? defaultName, host: parseHost(get('host')!) };
  // Messages about this server (a TLS mismatch, a certificate) then name SMTP_USE_SSL<suffix>, not `secure`.
  markConfigSource(server, { kind: 'env', suffix });

  const port = get('port');
  if (port) server.port = parsePort(port);

  const ssl = get('useSsl');
  const tls = get('useTls');
  const secure = ssl && parseBoolean(ssl);
  const starttls = tls && parseBoolean(tls);
  if (secure === true && starttls === true) {
    throw new ConfigError(
      `${tls!.variable} and ${ssl!.variable} are both true: pick one, ${ssl!.variable}=true for implicit TLS (port 465) ` +
        `or ${tls!.variable}=true for STARTTLS (port 587).`,
      { setting: tls!.variable },
    );
  }
  if (secure !== undefined) server.secure = secure;
  if (starttls !== undefined) server.starttls = starttls ? 'required' : 'disabled';

  const username = get('username');
  const password = get('password');
  if (password && !username) {
    // Name the variables only: the value is a secret.
    throw new ConfigError(
      `${password.variable} is set but ${canonical('username')} is not: set ${canonical('username')} to the login name, ` +
        `or remove ${password.variable}.`,
      { setting: password.variable },
    );
  }
  if (username) server.auth = { user: username.value.trim(), pass: password?.value ?? '' };

  const timeout = get('timeout');
  if (timeout) {
    const ms = parseTimeoutMs(timeout);
    server.timeouts = { connectionMs: ms, greetingMs: ms, socketMs: ms };
  }

  const retries = get('maxRetries');
  if (retries) server.maxRetries = parseRetries(retries);

  const from = get('from');
  if (from) server.from = parseFrom(from);

  const priority = get('priority');
  if (priority) server.priority = parsePriority(priority);

  return server;
}

function isSet(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== '';
}

/** Never call with a password setting: the message repeats the value. */
function invalid(setting: Setting, expected: string): ConfigError {
  const shown = setting.value.length > 80 ? `${setting.value.slice(0, 80)}…` : setting.value;
  return new ConfigError(`${setting.variable} is ${JSON.stringify(shown)} but must be ${expected}`, { setting: setting.variable });
}

function parseHost(setting: Setting): string {
  const host = setting.value.trim();
  const at = host.lastIndexOf('@');
  if (at !== -1) {
    // `user:password@host` or a URL with credentials: whatever precedes the last @ may be a password, so it is
    // neither repeated nor measured, only the part after it is shown.
    const after = host.slice(at + 1);
    const shown = after.length > 80 ? `${after.slice(0, 80)}…` : after;
    const suffix = setting.variable.slice('SMTP_HOST'.length);
    throw new ConfigError(
      `${setting.variable} contains credentials ("…@${shown}") but must be a host name or IP address only, such as ` +
        `"smtp.example.com": put the login in SMTP_USERNAME${suffix} and SMTP_PASSWORD${suffix}, and the port in SMTP_PORT${suffix}.`,
      { setting: setting.variable },
    );
  }
  if (/\s|\//.test(host)) {
    throw invalid(setting, 'a host name or IP address only, such as "smtp.example.com" (put the port in SMTP_PORT).');
  }
  return host;
}

function parsePort(setting: Setting): number {
  const text = setting.value.trim();
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65_535) {
    throw invalid(setting, 'a port number from 1 to 65535, usually 587 (STARTTLS) or 465 (SSL).');
  }
  return port;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

function parseBoolean(setting: Setting): boolean {
  const text = setting.value.trim().toLowerCase();
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  throw invalid(setting, 'true or false (1/0, yes/no and on/off also work).');
}

function parseTimeoutMs(setting: Setting): number {
  const text = setting.value.trim();
  const ms = Math.round(Number(text) * 1000);
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text) || !Number.isSafeInteger(ms) || ms < 1) {
    throw invalid(setting, 'a number of seconds greater than 0, such as 30 or 2.5.');
  }
  return ms;
}

function parseRetries(setting: Setting): number {
  const text = setting.value.trim();
  const retries = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(retries) || retries > 20) {
    throw invalid(setting, 'a whole number of retries from 0 to 20, such as 3.');
  }
  return retries;
}

function parseFrom(setting: Setting): string {
  const from = setting.value.trim();
  if (!from.includes('@')) throw invalid(setting, 'an email address, such as "agent@example.com".');
  return from;
}

function parsePriority(setting: Setting): number {
  const text = setting.value.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(text)) {
    throw invalid(setting, 'a number (higher is tried first), such as 10 or -1.');
  }
  return Number(text);
}
