/** The subset of pino's API the SDK logs through. A pino logger fits as it is; so does `console`-like glue. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};
/** The default: logs nothing. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

const SECRET_KEY = /pass|secret|token|authorization|cookie|private|credential|^key$|apikey|api_key/i;
const REDACTED = '[redacted]';

/**
 * Returns a copy of `value` with every secret-looking field (password, token, key, authorization, …)
 * replaced. Errors become `{ name, message, code, responseCode }` so a stack or a cause chain never leaks.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > 5) return '[…]';
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; responseCode?: unknown };
    return { name: e.name, message: e.message, code: e.code, responseCode: e.responseCode };
  }
  if (value instanceof Date) return value;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? REDACTED : redact(v, depth + 1);
  return out;
}

/** Wraps a user's logger so that everything the SDK logs through it is redacted first. */
export function safeLogger(logger: Logger | undefined): Logger {
  if (!logger) return silentLogger;
  const wrap =
    (level: keyof Logger) =>
    (obj: object, msg?: string): void => {
      logger[level](redact(obj) as object, msg);
    };
  return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}
