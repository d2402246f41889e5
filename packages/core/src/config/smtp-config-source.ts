/**
 * Where a server configuration was written: in code (`createMailer({ servers })`), in environment variables
 * (`SMTP_HOST`, or `SMTP_HOST_<n>` with `suffix` `_<n>`), or as a stored account (`saveSmtpConfig`). Messages about a
 * misconfiguration name the settings of that source, so a user who set `SMTP_USE_SSL` is not told about `secure`.
 */
export type SmtpConfigSource = { kind: 'code' } | { kind: 'env'; suffix: string } | { kind: 'stored' };

const SOURCE = Symbol.for('agent-smtp.config.source');

/**
 * Records the source on the configuration object. Non-enumerable, so equality in tests, JSON and logs see the
 * configuration only; a spread copy loses it (copy it with `copyConfigSource`) and the configuration counts as code.
 */
export function markConfigSource<T extends object>(config: T, source: SmtpConfigSource): T {
  Object.defineProperty(config, SOURCE, { value: source, enumerable: false, configurable: true });
  return config;
}

/** The source recorded on `config`; `code` when none was. */
export function configSourceOf(config: object): SmtpConfigSource {
  return ((config as Record<symbol, unknown>)[SOURCE] as SmtpConfigSource | undefined) ?? { kind: 'code' };
}

/** Gives `to` the source recorded on `from` (for a copy made by spreading). */
export function copyConfigSource<T extends object>(from: object, to: T): T {
  const source = (from as Record<symbol, unknown>)[SOURCE] as SmtpConfigSource | undefined;
  return source ? markConfigSource(to, source) : to;
}

/** How a message names the settings a TLS or port mistake is fixed with, in the words of the config's source. */
export interface SmtpSettingNames {
  /** `secure: true`, `SMTP_USE_SSL=true`, `security: "tls"`. */
  secure(on: boolean): string;
  /** `port: 465`, `SMTP_PORT=465`. */
  port(port: number): string;
  /** The setting that holds the host name: `host`, `SMTP_HOST`. */
  host: string;
  /** How to trust a private certificate authority, or undefined where the source has no setting for it. */
  ca: string | undefined;
  /** How to name the certificate's host when connecting by IP address, or undefined where the source has none. */
  servername: string | undefined;
}

export function settingNamesFor(source: SmtpConfigSource): SmtpSettingNames {
  switch (source.kind) {
    case 'env': {
      const s = source.suffix;
      return {
        secure: (on) => `SMTP_USE_SSL${s}=${on}`,
        port: (port) => `SMTP_PORT${s}=${port}`,
        host: `SMTP_HOST${s}`,
        // The variables have no CA setting; Node's own variable adds a CA to every TLS connection of the process.
        ca: 'NODE_EXTRA_CA_CERTS=/path/to/ca.pem (read when Node starts)',
        servername: undefined,
      };
    }
    case 'stored':
      return {
        secure: (on) => `security: "${on ? 'tls' : 'starttls'}"`,
        port: (port) => `port: ${port}`,
        host: 'host',
        ca: undefined,
        servername: undefined,
      };
    case 'code':
      return {
        secure: (on) => `secure: ${on}`,
        port: (port) => `port: ${port}`,
        host: 'host',
        ca: 'tls.ca (the CA certificate, PEM)',
        servername: 'tls.servername',
      };
  }
}
