import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_ARGS, REPO_ROOT, waitFor } from './__fixtures__/cli-fixtures.js';
import { helpText, main } from './cli.js';
import { trackingFromEnv } from './tracking-from-env.js';

// agent-smtp-mcp with AGENT_SMTP_TRACKING_URL and AGENT_SMTP_TRACKING_SECRET: tracked mail, and the routes served.

const SECRET = 'tracking-secret-0123456789-abcdefghij-XYZ';
const OLD_SECRET = 'previous-secret-0123456789-abcdefghij-XYZ';
const PUBLIC_URL = 'https://mail.example.com/t';

let sink: SmtpSink | undefined;
let client: Client | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  await client?.close();
  client = undefined;
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((resolve) => child!.once('exit', resolve));
  }
  child = undefined;
  await sink?.close();
  sink = undefined;
});

function sinkEnv(port: number, extra: Record<string, string> = {}): Record<string, string> {
  return { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(port), SMTP_USE_TLS: 'false', SMTP_FROM_EMAIL: 'agent@example.com', ...extra };
}

function capture(signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), ...(signal ? { signal } : {}) }, out, err };
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location }));
    });
    req.on('error', reject);
    req.end();
  });
}

function spawnCli(args: string[], env: Record<string, string>): { stderr: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: REPO_ROOT, env: { PATH: process.env.PATH!, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child!.once('close', (code, signal) => resolve({ code, signal })));
  return { stderr: () => stderr, exit };
}

describe('agent-smtp-mcp tracking configuration', () => {
  it('lists the tracking variables in --help', () => {
    const help = helpText();
    for (const name of ['AGENT_SMTP_TRACKING_URL', 'AGENT_SMTP_TRACKING_SECRET', 'AGENT_SMTP_TRACKING_SECRET_PREVIOUS']) expect(help).toContain(name);
  });

  it('derives key ids from the secrets, so a rotated-out secret keeps verifying the links it signed', () => {
    const before = trackingFromEnv({ AGENT_SMTP_TRACKING_URL: PUBLIC_URL, AGENT_SMTP_TRACKING_SECRET: OLD_SECRET })!;
    const after = trackingFromEnv({ AGENT_SMTP_TRACKING_URL: `${PUBLIC_URL}/`, AGENT_SMTP_TRACKING_SECRET: SECRET, AGENT_SMTP_TRACKING_SECRET_PREVIOUS: OLD_SECRET })!;
    expect(before).toMatchObject({ baseUrl: PUBLIC_URL, basePath: '/t' });
    expect(after).toMatchObject({ baseUrl: PUBLIC_URL, basePath: '/t' });
    expect(after.keys.current).not.toBe(before.keys.current);
    expect(after.keys.keys).toEqual({ [after.keys.current]: SECRET, [before.keys.current]: OLD_SECRET });
    expect(trackingFromEnv({})).toBeUndefined();
  });

  // Each: the environment, the variable the one line must name. Exit 2, one line, and no secret in it.
  const misconfigured: [string, string[], Record<string, string>, string][] = [
    ['a URL without a secret', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: PUBLIC_URL }, 'AGENT_SMTP_TRACKING_SECRET'],
    ['a secret without a URL', ['--transport', 'http'], { AGENT_SMTP_TRACKING_SECRET: SECRET }, 'AGENT_SMTP_TRACKING_URL'],
    ['only a previous secret', ['--transport', 'http'], { AGENT_SMTP_TRACKING_SECRET_PREVIOUS: OLD_SECRET }, 'AGENT_SMTP_TRACKING_URL and AGENT_SMTP_TRACKING_SECRET'],
    ['a short secret', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: PUBLIC_URL, AGENT_SMTP_TRACKING_SECRET: 'short-secret' }, 'AGENT_SMTP_TRACKING_SECRET is 12 characters'],
    ['a short previous secret', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: PUBLIC_URL, AGENT_SMTP_TRACKING_SECRET: SECRET, AGENT_SMTP_TRACKING_SECRET_PREVIOUS: 'old-short' }, 'AGENT_SMTP_TRACKING_SECRET_PREVIOUS is 9'],
    ['a plain-http public URL', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: 'http://mail.example.com/t', AGENT_SMTP_TRACKING_SECRET: SECRET }, 'AGENT_SMTP_TRACKING_URL is "http://mail.example.com/t" but must use https://'],
    ['a URL that is not one', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: 'mail.example.com/t', AGENT_SMTP_TRACKING_SECRET: SECRET }, 'AGENT_SMTP_TRACKING_URL is "mail.example.com/t"'],
    ['a URL with a query', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: `${PUBLIC_URL}?a=1`, AGENT_SMTP_TRACKING_SECRET: SECRET }, 'no query'],
    ['a URL without a path', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: 'https://mail.example.com', AGENT_SMTP_TRACKING_SECRET: SECRET }, 'The path "/" of AGENT_SMTP_TRACKING_URL would take over /mcp'],
    ['a URL on /mcp', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: 'https://mail.example.com/mcp', AGENT_SMTP_TRACKING_SECRET: SECRET }, 'would take over /mcp'],
    ['a URL on /health', ['--transport', 'http'], { AGENT_SMTP_TRACKING_URL: 'https://mail.example.com/health/t', AGENT_SMTP_TRACKING_SECRET: SECRET }, 'would take over /health'],
    ['tracking over stdio', [], { AGENT_SMTP_TRACKING_URL: PUBLIC_URL, AGENT_SMTP_TRACKING_SECRET: SECRET }, 'served only with --transport http'],
  ];
  it.each(misconfigured)('%s: exit 2 with one line naming it', async (_, args, extra, named) => {
    const { io, out, err } = capture();
    expect(await main([...args, '--port', '0'], sinkEnv(2525, extra), io)).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^agent-smtp-mcp: .*\n$/);
    expect(err[0]).toContain(named);
    for (const secret of [SECRET, OLD_SECRET, 'short-secret', 'old-short']) expect(err[0]).not.toContain(secret);
    expect(out).toEqual([]);
  });

  it('in-process: send_email rewrites links to AGENT_SMTP_TRACKING_URL, and the server answers them (302), logging no secret', async () => {
    sink = await startSmtpSink();
    const stop = new AbortController();
    const { io, err } = capture(stop.signal);
    const running = main(['--transport', 'http', '--port', '0'], sinkEnv(sink.port, { AGENT_SMTP_TRACKING_URL: PUBLIC_URL, AGENT_SMTP_TRACKING_SECRET: SECRET, AGENT_SMTP_TRACKING_SECRET_PREVIOUS: OLD_SECRET }), io);
    const url = await waitFor(() => /listening on (http:\S+\/mcp)/.exec(err.join(''))?.[1], 'the URL line');
    expect(err.join('')).toContain(`tracking: ${PUBLIC_URL} served at /t`);
    client = new Client({ name: 'in-process', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const result = (await client.callTool({
      name: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'Tracked', format: 'html', body: '<a href="https://example.com/doc">doc</a>' },
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const html = String((await sink.waitForMessages(1))[0]!.html);
    const click = new RegExp(`href="(${PUBLIC_URL}/c/[^"]+)"`).exec(html)![1]!;
    const { status, location } = await get(Number(new URL(url).port), new URL(click).pathname, { Host: 'mail.example.com' });
    expect({ status, location }).toEqual({ status: 302, location: 'https://example.com/doc' });
    await client.close();
    client = undefined;
    stop.abort();
    expect(await running).toBe(0);
    const log = err.join('');
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain(OLD_SECRET);
  });

  it('as a process: serves the tracking routes (a forged token gets 400), without a token and under the public Host', async () => {
    sink = await startSmtpSink();
    const run = spawnCli(['--transport', 'http', '--port', '0'], sinkEnv(sink.port, { AGENT_SMTP_TRACKING_URL: PUBLIC_URL, AGENT_SMTP_TRACKING_SECRET: SECRET }));
    const port = Number(await waitFor(() => /listening on http:\/\/127\.0\.0\.1:(\d+)\/mcp/.exec(run.stderr())?.[1], 'the URL line'));
    expect((await get(port, '/t/c/forged.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', { Host: 'mail.example.com' })).status).toBe(400);
    expect((await get(port, '/t/o/forged', { Host: 'mail.example.com' })).status).toBe(400);
    // /mcp keeps its DNS-rebinding check.
    expect((await get(port, '/health', { Host: 'mail.example.com' })).status).toBe(403);
    child!.kill('SIGTERM');
    expect(await run.exit).toEqual({ code: 0, signal: null });
    expect(run.stderr()).not.toContain(SECRET);
  });

  it('as a process: a missing secret fails startup with exit 2 and one line naming AGENT_SMTP_TRACKING_SECRET', async () => {
    const run = spawnCli(['--transport', 'http', '--port', '0'], sinkEnv(2525, { AGENT_SMTP_TRACKING_URL: PUBLIC_URL }));
    expect(await run.exit).toEqual({ code: 2, signal: null });
    const lines = run.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^agent-smtp-mcp: AGENT_SMTP_TRACKING_URL is set but AGENT_SMTP_TRACKING_SECRET is not: .* See agent-smtp-mcp --help\.$/);
  });
});
