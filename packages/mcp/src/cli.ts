#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  AgentSmtpError,
  ConfigError,
  createMailer,
  createTrackingHandler,
  DEFAULT_LIMITS,
  describeSmtpEnv,
  loadSmtpServersFromEnv,
  type Logger,
  type Mailer,
  redact,
  safeLogger,
  type SmtpServerConfig,
  type VerifyResult,
} from '@agent-smtp/core';
import { createMcpServer } from './create-mcp-server.js';
import { assertSafeBinding, MCP_TOKEN_ENV, type McpHttpServer, startMcpHttpServer } from './http-server.js';
import { createJsonLineLogger } from './json-line-logger.js';
import { createStdioServerTransport, maxRequestBytesFor } from './stdio-transport.js';
import { TRACKING_ENV, trackingFromEnv, type TrackingFromEnv } from './tracking-from-env.js';
import { VERSION } from './version.js';

const BIN = 'agent-smtp-mcp';
/** 100 MiB: a request twice that size still fits comfortably in one process. Larger files belong behind a link. */
const MAX_MESSAGE_BYTES_CEILING = 100 * 1024 * 1024;

export interface CliOptions {
  transport: 'stdio' | 'http';
  host: string;
  port: number;
  /** The mailer's `limits.maxMessageBytes`; the largest request either transport reads follows from it. */
  maxMessageBytes: number;
  /** Test the connection to every SMTP server before serving, and stop (exit 2) if one fails. */
  verify: boolean;
  help: boolean;
  version: boolean;
}

export interface CliIo {
  /** Where --help and --version go. Default: process.stdout. */
  stdout: (text: string) => void;
  /** Where logs (JSON lines), the HTTP URL and startup errors go. Default: process.stderr. */
  stderr: (text: string) => void;
  /** Aborting it shuts the server down as SIGINT/SIGTERM do (for callers that run `main` in-process). */
  signal?: AbortSignal;
}

/** Parses the command line (without `node` and the script). Throws `ConfigError` for anything it does not accept. */
export function parseCliArgs(argv: readonly string[]): CliOptions {
  let values: { transport?: string; host?: string; port?: string; 'max-message-bytes'?: string; verify?: boolean; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        transport: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'max-message-bytes': { type: 'string' },
        verify: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    }));
  } catch (err) {
    // parseArgs throws a TypeError (ERR_PARSE_ARGS_*) whose one-line message names the bad argument.
    const message = (err as Error).message.replace(/\.?$/, '.');
    throw new ConfigError(`${message} Run ${BIN} --help for the options.`, { cause: err });
  }

  const transport = values.transport ?? 'stdio';
  if (transport !== 'stdio' && transport !== 'http') {
    throw new ConfigError(`--transport is ${JSON.stringify(transport)} but must be stdio or http.`, { setting: '--transport' });
  }
  const portText = values.port ?? '8000';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65_535) {
    throw new ConfigError(`--port is ${JSON.stringify(portText)} but must be a port number from 0 to 65535 (0 picks a free port).`, {
      setting: '--port',
    });
  }
  const host = values.host ?? '127.0.0.1';
  if (host.trim() === '') throw new ConfigError('--host is empty: pass an address such as 127.0.0.1.', { setting: '--host' });
  const sizeText = values['max-message-bytes'] ?? String(DEFAULT_LIMITS.maxMessageBytes);
  const maxMessageBytes = Number(sizeText);
  if (!/^\d+$/.test(sizeText) || maxMessageBytes < 1024 || maxMessageBytes > MAX_MESSAGE_BYTES_CEILING) {
    throw new ConfigError(
      `--max-message-bytes is ${JSON.stringify(sizeText)} but must be a whole number of bytes from 1024 to ${MAX_MESSAGE_BYTES_CEILING} (default ${DEFAULT_LIMITS.maxMessageBytes}).`,
      { setting: '--max-message-bytes' },
    );
  }
  return { transport, host, port, maxMessageBytes, verify: values.verify ?? false, help: values.help ?? false, version: values.version ?? false };
}

/** `--help`: usage, options, and every environment variable the CLI reads. */
export function helpText(): string {
  const rows = [
    ...describeSmtpEnv(),
    {
      variable: MCP_TOKEN_ENV,
      description:
        'HTTP transport: bearer token clients must send as "Authorization: Bearer <token>" to /mcp. ' +
        'Required to bind to anything but 127.0.0.1, ::1 or localhost. Use a long random value (openssl rand -hex 32).',
      example: '3f9c…',
    },
    {
      variable: TRACKING_ENV.url,
      description:
        `HTTP transport: track opens and clicks and add one-click unsubscribe, with the routes served at this URL's path by this server. ` +
        `The public HTTPS URL a proxy forwards to it; the routes need no token. Needs ${TRACKING_ENV.secret}. Not with stdio.`,
      example: 'https://mail.example.com/t',
    },
    {
      variable: TRACKING_ENV.secret,
      description: 'HTTP transport: the key that signs tracking links, 32+ random bytes (openssl rand -base64 32). Needs ' + TRACKING_ENV.url + '.',
      example: 'q2V…=',
    },
    {
      variable: TRACKING_ENV.previousSecret,
      description: `Optional: the secret ${TRACKING_ENV.secret} had before a rotation, so links in mail already sent keep working.`,
      example: 'Zx8…=',
    },
  ];
  const width = Math.max(...rows.map((r) => r.variable.length)) + 2;
  const env = rows
    .map((r) => {
      const lines = wrap(`${r.description} Example: ${r.example}`, 100 - width);
      return lines.map((line, i) => `  ${(i === 0 ? r.variable : '').padEnd(width)}${line}`).join('\n');
    })
    .join('\n');
  return `${BIN} ${VERSION}: email tools for AI agents over MCP (stdio or Streamable HTTP), sending through your SMTP server.

Usage:
  ${BIN} [--transport stdio|http] [--host <address>] [--port <port>] [--max-message-bytes <bytes>] [--verify]

Options:
  --transport <stdio|http>  stdio (default): MCP over stdin/stdout, for Claude Desktop and other local clients.
                            http: stateless Streamable HTTP at POST /mcp, plus GET /health.
  --host <address>          HTTP: interface to bind. Default 127.0.0.1. Anything but loopback needs ${MCP_TOKEN_ENV}.
  --port <port>             HTTP: port to bind. Default 8000; 0 picks a free port.
  --max-message-bytes <n>   Largest email (text and attachments, decoded) send_email accepts. Default ${DEFAULT_LIMITS.maxMessageBytes} (10 MiB).
                            A request may be up to 2 x this + 64 KiB (base64 and JSON escaping); a larger one is
                            answered with an error and not read.
  --verify                  Test the connection to (and login at) every SMTP server before serving; exit 2 if one
                            fails. Without it the same test runs in the background and its result is logged.
  -h, --help                Show this help.
  -v, --version             Print the version.

Environment:
${env}

Logs are JSON lines on stderr; in stdio mode stdout carries the protocol only.
Exit codes: 0 stopped (SIGINT, SIGTERM, or stdin closed in stdio mode); 2 bad configuration (or, with --verify, an
SMTP server that failed its connection test); 1 other failure,
such as a stdio message that could not be read or answered (one line on stderr says why).
`;
}

/**
 * Runs the CLI: resolves with the exit code once the server has stopped (or at once for --help, --version and
 * startup errors). Startup errors print one line, `agent-smtp-mcp: <message>`, and give 2 for configuration faults.
 */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
  io: CliIo = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
): Promise<number> {
  const fail = (err: unknown): number => {
    io.stderr(`${BIN}: ${oneLine(err)}\n`);
    return AgentSmtpError.isInstance(err) ? 2 : 1;
  };

  let options: CliOptions;
  try {
    options = parseCliArgs(argv);
  } catch (err) {
    return fail(err);
  }
  if (options.help) {
    io.stdout(helpText());
    return 0;
  }
  if (options.version) {
    io.stdout(`${VERSION}\n`);
    return 0;
  }

  const logger = createJsonLineLogger(io.stderr);
  const log = safeLogger(logger);
  const token = env[MCP_TOKEN_ENV] || undefined;
  const stop = waitForStop(io.signal, options.transport === 'stdio');
  let mailer: Mailer | undefined;
  let http: McpHttpServer | undefined;
  let closeMcp: (() => Promise<void>) | undefined;
  try {
    // Checked before the mailer exists, so the one line printed is about the binding, whatever else is wrong.
    if (options.transport === 'http') assertSafeBinding(options.host, token);
    const tracking = options.transport === 'http' ? trackingFromEnv(env) : refuseTrackingOverStdio(env);
    // createMailer says the same, but addressed to a programmer (`servers`); a CLI user sets variables.
    const servers = loadSmtpServersFromEnv(env);
    if (servers.length === 0) {
      throw new ConfigError(
        `No SMTP server is configured: set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM_EMAIL) in the environment.`,
        { setting: 'SMTP_HOST' },
      );
    }
    assertSender(servers);
    mailer = createMailer({
      logger,
      env,
      limits: { maxMessageBytes: options.maxMessageBytes },
      ...(tracking ? { tracking: { baseUrl: tracking.baseUrl, keys: tracking.keys } } : {}),
    });
    // --verify tests before serving, so a client never meets a server that cannot send; otherwise the test must not
    // hold up the start (a slow server can take its whole connection timeout), and its result is only logged.
    // Advice names the variables each server was set with: SMTP_HOST_2 for "smtp-2" (or its SMTP_NAME_2).
    const suffixes = envSuffixes(env, servers);
    if (options.verify) logConnectionTests(assertConnections(await mailer.testConnection(), suffixes), mailer, log, suffixes);
    if (options.transport === 'stdio') {
      const server = createMcpServer({ mailer, logger });
      const transport = createStdioServerTransport({ maxMessageBytes: options.maxMessageBytes });
      let closing = false;
      server.server.onerror = (err) => log.warn({ err }, 'MCP protocol error');
      // The transport closes on its own only when it can no longer serve (a message it could not answer, a broken
      // pipe). Staying up would leave a process that reads nothing and answers nothing: stop, and say why.
      server.server.onclose = () => {
        if (!closing) stop.fail(transport.failure?.message ?? 'the MCP stdio transport closed unexpectedly');
      };
      await server.connect(transport);
      closeMcp = () => {
        closing = true;
        return server.close();
      };
      log.info({ transport: 'stdio', version: VERSION, servers: mailer.status().servers.map((s) => s.name) }, 'agent-smtp MCP server ready');
      if (!options.verify) void testConnectionsInBackground(mailer, log, suffixes);
    } else {
      http = await startMcpHttpServer({
        mailer,
        host: options.host,
        port: options.port,
        token,
        logger,
        maxRequestBytes: maxRequestBytesFor(options.maxMessageBytes),
        ...(tracking ? { tracking: trackingRoutes(tracking, mailer, logger) } : {}),
      }).catch((err: unknown) => {
        throw listenFailure(err, options);
      });
      const tracked = tracking ? `, tracking: ${tracking.baseUrl} served at ${tracking.basePath}` : '';
      io.stderr(`${BIN}: listening on ${http.url} (health: ${http.healthUrl}, auth: ${token ? 'bearer token' : 'none, loopback only'}${tracked})\n`);
      if (!options.verify) void testConnectionsInBackground(mailer, log, suffixes);
    }
  } catch (err) {
    stop.dispose();
    await mailer?.close().catch(() => undefined);
    return fail(err);
  }

  const { reason, failure } = await stop.promise;
  log.info({ reason }, 'shutting down');
  await http?.close();
  await closeMcp?.();
  await mailer.close();
  if (failure === undefined) return 0;
  io.stderr(`${BIN}: ${oneLine(failure)}\n`);
  return 1;
}

/**
 * The tracking handler over the mailer's store. The CLI's store lives in memory: events and unsubscribes last until
 * the process stops, which the log says once (a durable store needs startMcpHttpServer in code).
 */
function trackingRoutes(tracking: TrackingFromEnv, mailer: Mailer, logger: Logger): { handler: ReturnType<typeof createTrackingHandler>; basePath: string } {
  safeLogger(logger).warn(
    { baseUrl: tracking.baseUrl, basePath: tracking.basePath },
    'tracking: opens, clicks and unsubscribes are kept in memory and lost when this process stops; for lasting suppressions run startMcpHttpServer with a database store',
  );
  return { handler: createTrackingHandler({ store: mailer.store, keys: tracking.keys, basePath: tracking.basePath, logger }), basePath: tracking.basePath };
}

/**
 * Over stdio nothing serves the tracking routes: every link in sent mail would lead nowhere. Refused rather than
 * ignored, so that whoever set the variables learns they do nothing here.
 */
function refuseTrackingOverStdio(env: Record<string, string | undefined>): undefined {
  const set = Object.values(TRACKING_ENV).filter((name) => (env[name] ?? '').trim() !== '');
  if (set.length === 0) return undefined;
  throw new ConfigError(
    `${set.join(' and ')} ${set.length > 1 ? 'are' : 'is'} set, but the tracking routes are served only with --transport http: over stdio the links in sent mail would lead nowhere. ` +
      `Run with --transport http, or unset ${set.join(' and ')}.`,
    { setting: set[0]! },
  );
}

/**
 * Every send needs a From address, and the tools take none from the model: without SMTP_FROM_EMAIL or a username
 * that is an address (the same rule the mailer applies), every send_email would fail. Say so now, not at the first send.
 */
function assertSender(servers: readonly SmtpServerConfig[]): void {
  if (servers.some((s) => s.from || s.auth?.user.includes('@'))) return;
  throw new ConfigError(
    'No sender address is configured: set SMTP_FROM_EMAIL to the address emails come from (e.g. agent@example.com); ' +
      'without it the SMTP_USERNAME is used, but only when it is an email address.',
    { setting: 'SMTP_FROM_EMAIL' },
  );
}

/** Tests every server once and logs the results; never throws (a mailer closed meanwhile reports nothing). */
async function testConnectionsInBackground(mailer: Mailer, log: Logger, suffixes: ReadonlyMap<string, string>): Promise<void> {
  try {
    logConnectionTests(await mailer.testConnection(), mailer, log, suffixes);
  } catch (err) {
    // Only a mailer closed under the test (a stop during startup) gets here: there is nothing left to report on.
    log.debug({ err }, 'smtp connection test did not finish');
  }
}

/** One log line per server: where it is, and whether the test passed (else what it said and what to check). */
function logConnectionTests(results: readonly VerifyResult[], mailer: Mailer, log: Logger, suffixes: ReadonlyMap<string, string>): void {
  const servers = new Map(mailer.status().servers.map((s) => [s.name, s]));
  for (const r of results) {
    const where = { server: r.name, host: servers.get(r.name)?.host, port: servers.get(r.name)?.port, latencyMs: r.latencyMs };
    if (r.ok) log.info(where, 'smtp connection test passed');
    else log.warn({ ...where, code: r.error?.code, error: r.error?.message }, `smtp connection test failed: ${connectionAdvice(r, suffixes.get(r.name) ?? '')}`);
  }
}

/** --verify: one line naming each server that failed, what it said, and what to check. */
function assertConnections(results: readonly VerifyResult[], suffixes: ReadonlyMap<string, string>): readonly VerifyResult[] {
  const failed = results.filter((r) => !r.ok);
  if (failed.length === 0) return results;
  const each = failed.map((r) => `SMTP server "${r.name}" failed its connection test (${r.error?.code ?? 'ERROR'}: ${r.error?.message ?? 'no reason given'}): ${connectionAdvice(r, suffixes.get(r.name) ?? '')}`);
  throw new ConfigError(`${each.join('; ')}. Fix it, or start without --verify to serve anyway.`, { setting: '--verify' });
}

/**
 * The suffix each server's variables carry, by server name: '' for SMTP_HOST, `_<n>` for SMTP_HOST_<n>. The
 * servers come in the order loadSmtpServersFromEnv reads them: the unnumbered one first, then numbered ones by n.
 */
function envSuffixes(env: Record<string, string | undefined>, servers: readonly SmtpServerConfig[]): ReadonlyMap<string, string> {
  const numbered = Object.keys(env)
    .map((key) => /^SMTP_HOST_(\d+)$/.exec(key))
    .filter((m): m is RegExpExecArray => m !== null && (env[m[0]] ?? '').trim() !== '')
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b)
    .map((n) => `_${n}`);
  const suffixes = (env.SMTP_HOST ?? '').trim() !== '' ? ['', ...numbered] : numbered;
  return new Map(servers.map((s, i) => [s.name ?? '', suffixes[i] ?? '']));
}

/** What to check, in the variables a CLI user sets for this server (`suffix` `_2` for SMTP_HOST_2). */
function connectionAdvice(result: VerifyResult, suffix: string): string {
  const code = result.error?.code;
  const v = (name: string): string => `${name}${suffix}`;
  if (code === 'EAUTH' || code === 'ENOAUTH') return `the server refused the login; check ${v('SMTP_USERNAME')} and ${v('SMTP_PASSWORD')}`;
  if (code === 'ETLS' || code === 'EREQUIRETLS' || /certificate|\bTLS\b|\bSSL\b|handshake|wrong version number/i.test(result.error?.message ?? '')) {
    return `TLS failed; check ${v('SMTP_PORT')} with ${v('SMTP_USE_TLS')} (587, STARTTLS) or ${v('SMTP_USE_SSL')} (465)`;
  }
  return `the server could not be reached or did not answer; check ${v('SMTP_HOST')} and ${v('SMTP_PORT')}`;
}

/** A port already taken says what to do about it, not only `listen EADDRINUSE`; other failures pass through. */
function listenFailure(err: unknown, options: CliOptions): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'EADDRINUSE') {
    return new ConfigError(
      `port ${options.port} is in use: choose another --port (0 picks a free one) or stop the process using it.`,
      { setting: '--port', cause: err },
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new ConfigError(`--host ${options.host} is not an address of this machine: pass one it has, such as 127.0.0.1.`, { setting: '--host', cause: err });
  }
  if (code === 'EACCES') {
    return new ConfigError(`port ${options.port} needs privileges this process lacks: choose a --port above 1023 (0 picks a free one).`, { setting: '--port', cause: err });
  }
  return err;
}

interface Stop {
  /** Why the server stops; `failure` is set when it stops because it can no longer serve (exit 1). */
  promise: Promise<{ reason: string; failure?: string }>;
  dispose: () => void;
  fail: (failure: string) => void;
}

/**
 * Resolves on SIGINT, SIGTERM, an abort, (stdio) the end of stdin, or `fail()`; a second signal then kills the
 * process.
 */
function waitForStop(signal: AbortSignal | undefined, watchStdin: boolean): Stop {
  let dispose = (): void => {};
  let fail = (_failure: string): void => {};
  const promise = new Promise<{ reason: string; failure?: string }>((resolve) => {
    const done = (reason: string) => () => {
      dispose();
      resolve({ reason });
    };
    fail = (failure) => {
      dispose();
      resolve({ reason: 'transport failed', failure });
    };
    const onInt = done('SIGINT');
    const onTerm = done('SIGTERM');
    const onAbort = done('aborted');
    const onEnd = done('stdin closed');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    signal?.addEventListener('abort', onAbort, { once: true });
    // The SDK's StdioServerTransport does not watch for the end of stdin; a client closes it to stop us.
    if (watchStdin) {
      process.stdin.once('end', onEnd);
      process.stdin.once('close', onEnd);
    }
    dispose = () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      signal?.removeEventListener('abort', onAbort);
      process.stdin.off('end', onEnd);
      process.stdin.off('close', onEnd);
    };
    if (signal?.aborted) onAbort();
  });
  return { promise, dispose: () => dispose(), fail: (failure) => fail(failure) };
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const text = message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return ConfigError.isInstance(err) && /^(SMTP_|AGENT_SMTP_TRACKING_)/.test(err.setting ?? '') ? `${text} See ${BIN} --help.` : text;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** True when this module is the program node was asked to run (npm's bin links are symlinks, so compare real paths). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return import.meta.url === pathToFileURL(entry).href;
  }
}

/** Runs the CLI as a program: exits with main's code, and reports a crash as one JSON line on stderr. */
export function runCli(): void {
  const crash = (err: unknown): void => {
    process.stderr.write(`${JSON.stringify({ level: 'error', time: new Date().toISOString(), msg: 'crashed', err: redact(err) })}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  main().then((code) => process.exit(code), crash);
}

if (isEntryPoint()) runCli();
