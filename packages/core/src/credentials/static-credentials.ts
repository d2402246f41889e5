import { loadSmtpServersFromEnv } from '../config/load-smtp-servers-from-env.js';
import { resolveSmtpServerConfigs, type SmtpServerConfig } from '../config/smtp-server-config.js';
import { copyConfigSource } from '../config/smtp-config-source.js';
import { ConfigError } from '../errors/config-error.js';
import { type CredentialProvider, type CredentialScope, hidePassword } from './credential-provider.js';

/**
 * The same servers for every owner and agent: the single-tenant setup. Validated now (a `ConfigError` names the
 * server and field). `configId` picks one server by name.
 */
export function staticCredentials(servers: readonly SmtpServerConfig[]): CredentialProvider {
  const resolved = resolveSmtpServerConfigs(servers);
  // Frozen and built once: every resolve returns these same arrays, so a pool cache never rebuilds for nothing.
  const all: readonly SmtpServerConfig[] = Object.freeze(servers.map((server, i) => copyConfigSource(server, hidePassword({ ...server, name: resolved[i]!.name }))));
  const byName = new Map(all.map((server) => [server.name!, Object.freeze([server]) as readonly SmtpServerConfig[]]));
  return {
    async resolve(scope: CredentialScope) {
      if (scope.configId === undefined) return all;
      const one = byName.get(scope.configId);
      if (!one) {
        throw new ConfigError(`configId is "${scope.configId}" but no configured server has that name; servers: ${[...byName.keys()].join(', ')}.`, {
          setting: 'configId',
        });
      }
      return one;
    },
    onChange() {
      return () => {};
    },
  };
}

/**
 * The servers in the environment variables existing SMTP MCP servers use (`SMTP_HOST`, `SMTP_PORT`,
 * `SMTP_USERNAME`, `SMTP_PASSWORD`, … and `SMTP_HOST_2`, … for more; see `describeSmtpEnv()`), for every owner.
 * Read once, now: a `ConfigError` names the variable to fix.
 */
export function envCredentials(env: Readonly<Record<string, string | undefined>> = process.env): CredentialProvider {
  const servers = loadSmtpServersFromEnv(env);
  if (servers.length === 0) {
    throw new ConfigError('No SMTP server is configured in the environment: set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD).', {
      setting: 'SMTP_HOST',
    });
  }
  return staticCredentials(servers);
}
