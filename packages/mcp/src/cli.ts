#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AgentSmtpError, ConfigError, createMailer, describeSmtpEnv, loadSmtpServersFromEnv, type Mailer, redact, safeLogger } from '@agent-smtp/core';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createMcpServer } from './create-mcp-server.js';
import { assertSafeBinding, MCP_TOKEN_ENV, type McpHttpServer, startMcpHttpServer } from './http-server.js';
import { createJsonLineLogger } from './json-line-logger.js';
import { VERSION } from './version.js';

const BIN = 'agent-smtp-mcp';

export interface CliOptions {
  transport: 'stdio' | 'http';
  host: string;
  port: number;
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
  let values: { transport?: string; host?: string; port?: string; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        transport: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
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
  return { transport, host, port, help: values.help ?? false, version: values.version ?? false };
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
  ${BIN} [--transport stdio|http] [--host <address>] [--port <port>]

Options:
  --transport <stdio|http>  stdio (default): MCP over stdin/stdout, for Claude Desktop and other local clients.
                            http: stateless Streamable HTTP at POST /mcp, plus GET /health.
  --host <address>          HTTP: interface to bind. Default 127.0.0.1. Anything but loopback needs ${MCP_TOKEN_ENV}.
  --port <port>             HTTP: port to bind. Default 8000; 0 picks a free port.
  -h, --help                Show this help.
  -v, --version             Print the version.

Environment:
${env}

Logs are JSON lines on stderr; in stdio mode stdout carries the protocol only.
Exit codes: 0 stopped (SIGINT, SIGTERM, or stdin closed in stdio mode); 2 bad configuration; 1 other failure.
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
    // createMailer says the same, but addressed to a programmer (`servers`); a CLI user sets variables.
    if (loadSmtpServersFromEnv(env).length === 0) {
      throw new ConfigError(
        `No SMTP server is configured: set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM_EMAIL) in the environment.`,
        { setting: 'SMTP_HOST' },
      );
    }
    mailer = createMailer({ logger, env });
    if (options.transport === 'stdio') {
      const server = createMcpServer({ mailer });
      server.server.onerror = (err) => log.warn({ err }, 'MCP protocol error');
      await server.connect(new StdioServerTransport());
      closeMcp = () => server.close();
      log.info({ transport: 'stdio', version: VERSION, servers: mailer.status().servers.map((s) => s.name) }, 'agent-smtp MCP server ready');
    } else {
      http = await startMcpHttpServer({ mailer, host: options.host, port: options.port, token, logger });
      io.stderr(`${BIN}: listening on ${http.url}/mcp (health: ${http.url}/health, auth: ${token ? 'bearer token' : 'none, loopback only'})\n`);
    }
  } catch (err) {
    stop.dispose();
    await mailer?.close().catch(() => undefined);
    return fail(err);
  }

  const reason = await stop.promise;
  log.info({ reason }, 'shutting down');
  await http?.close();
  await closeMcp?.();
  await mailer.close();
  return 0;
}

/** Resolves on SIGINT, SIGTERM, an abort, or (stdio) the end of stdin; a second signal then kills the process. */
function waitForStop(signal: AbortSignal | undefined, watchStdin: boolean): { promise: Promise<string>; dispose: () => void } {
  let dispose = (): void => {};
  const promise = new Promise<string>((resolve) => {
    const done = (reason: string) => () => {
      dispose();
      resolve(reason);
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
  return { promise, dispose: () => dispose() };
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const text = message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return AgentSmtpError.isInstance(err) && err instanceof ConfigError && err.setting?.startsWith('SMTP_') ? `${text} See ${BIN} --help.` : text;
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
