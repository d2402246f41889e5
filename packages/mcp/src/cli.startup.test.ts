import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_ARGS, REPO_ROOT, waitFor } from './__fixtures__/cli-fixtures.js';
import { main } from './cli.js';

// What agent-smtp-mcp checks before and as it starts: a sender address, and one connection test per server.

const sinks: SmtpSink[] = [];
const silent: net.Server[] = [];
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
  for (const sink of sinks.splice(0)) await sink.close();
  for (const server of silent.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function sinkWith(options: Parameters<typeof startSmtpSink>[0] = {}): Promise<SmtpSink> {
  const sink = await startSmtpSink(options);
  sinks.push(sink);
  return sink;
}

/** A TCP server that accepts and never greets: an SMTP server's test against it waits until the test lets it end. */
async function silentServer(): Promise<{ port: number; connected: Promise<net.Socket> }> {
  let onConnection!: (socket: net.Socket) => void;
  const connected = new Promise<net.Socket>((resolve) => (onConnection = resolve));
  const server = net.createServer(onConnection);
  silent.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, connected };
}

function capture(signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), ...(signal ? { signal } : {}) }, out, err };
}

/** The JSON log lines about connection tests, parsed. */
function connectionTestLines(err: string[]): { msg: string; server: string; host: string; port: number; code?: string }[] {
  return err
    .join('')
    .split('\n')
    .filter((line) => line.includes('smtp connection test'))
    .map((line) => JSON.parse(line));
}

function plainEnv(port: number, extra: Record<string, string> = {}): Record<string, string> {
  return { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(port), SMTP_USE_TLS: 'false', ...extra };
}

describe('agent-smtp-mcp without a sender address', () => {
  it.each([
    ['no username', {}],
    ['a username that is not an address', { SMTP_USERNAME: 'robot', SMTP_PASSWORD: 'pw' }],
  ])('%s: exits 2 at startup with one line naming SMTP_FROM_EMAIL', async (_, extra) => {
    const { io, out, err } = capture();
    expect(await main(['--transport', 'http', '--port', '0'], plainEnv(2525, extra), io)).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^agent-smtp-mcp: No sender address is configured: set SMTP_FROM_EMAIL .*\n$/);
    expect(err[0]).not.toContain('pw');
    expect(out).toEqual([]);
  });

  it('as a process: exit 2 and the one line, nothing else', async () => {
    child = spawn(process.execPath, NODE_ARGS, { cwd: REPO_ROOT, env: { PATH: process.env.PATH!, ...plainEnv(2525) }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child!.once('close', (exitCode) => resolve(exitCode)));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^agent-smtp-mcp: No sender address is configured: set SMTP_FROM_EMAIL/)]);
  });

  it('starts when the username is an address, and sends from it', async () => {
    const sink = await sinkWith({ auth: { user: 'robot@example.com', pass: 'pw' } });
    const stop = new AbortController();
    const { io, err } = capture(stop.signal);
    const running = main(['--transport', 'http', '--port', '0'], plainEnv(sink.port, { SMTP_USERNAME: 'robot@example.com', SMTP_PASSWORD: 'pw' }), io);
    const url = await waitFor(() => /listening on (http:\S+\/mcp)/.exec(err.join(''))?.[1], 'the URL line');
    client = new Client({ name: 'startup', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const result = (await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'From the login', body: 'x' } })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect((await sink.waitForMessages(1))[0]!.envelope.from).toBe('robot@example.com');
    await client.close();
    client = undefined;
    stop.abort();
    expect(await running).toBe(0);
  });
});

describe('agent-smtp-mcp connection test at startup', () => {
  it('logs one line per server, serving before the tests end', async () => {
    const sink = await sinkWith();
    const hung = await silentServer();
    const stop = new AbortController();
    const { io, err } = capture(stop.signal);
    // A greeting timeout far beyond the test: only the test's own hang-up ends the second server's connection test.
    const env = {
      ...plainEnv(sink.port, { SMTP_FROM_EMAIL: 'agent@example.com' }),
      ...{ SMTP_HOST_2: '127.0.0.1', SMTP_PORT_2: String(hung.port), SMTP_USE_TLS_2: 'false', SMTP_TIMEOUT_2: '600' },
    };
    const running = main(['--transport', 'http', '--port', '0'], env, io);

    const url = await waitFor(() => /listening on (http:\S+\/mcp)/.exec(err.join(''))?.[1], 'the URL line');
    const socket = await hung.connected;
    // The second server has not said a word, so its test cannot have ended, and the server already answers calls.
    client = new Client({ name: 'startup', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const status = (await client.callTool({ name: 'get_smtp_status', arguments: {} })) as CallToolResult;
    expect(status.isError).toBeFalsy();
    expect(connectionTestLines(err)).toEqual([]);

    // Now the silent server hangs up: its test fails, and each server gets its line.
    socket.destroy();
    const lines = await waitFor(() => (connectionTestLines(err).length >= 2 ? connectionTestLines(err) : undefined), 'two connection test lines');
    expect(lines).toHaveLength(2);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'smtp connection test passed', server: 'primary', host: '127.0.0.1', port: sink.port }));
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'smtp connection test failed: the server could not be reached or did not answer; check SMTP_HOST_2 and SMTP_PORT_2',
        server: 'smtp-2',
        port: hung.port,
      }),
    );
    await client.close();
    client = undefined;
    stop.abort();
    expect(await running).toBe(0);
  });

  it('--verify: a refused login stops the start with exit 2 and one line naming SMTP_PASSWORD', async () => {
    const sink = await sinkWith({ auth: { user: 'robot', pass: 'the-right-password' } });
    const { io, out, err } = capture();
    const env = plainEnv(sink.port, { SMTP_USERNAME: 'robot', SMTP_PASSWORD: 'a-wrong-password', SMTP_FROM_EMAIL: 'agent@example.com' });
    expect(await main(['--transport', 'http', '--port', '0', '--verify'], env, io)).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^agent-smtp-mcp: SMTP server "primary" failed its connection test \(EAUTH: .*535.*\): the server refused the login; check SMTP_USERNAME and SMTP_PASSWORD\. Fix it, or start without --verify to serve anyway\.\n$/);
    expect(err[0]).not.toContain('a-wrong-password');
    expect(out).toEqual([]);
    expect(sink.stats.connections).toBeGreaterThan(0);
  });

  it('--verify: a server that passes starts, with its line logged before the listening line', async () => {
    const sink = await sinkWith();
    const stop = new AbortController();
    const { io, err } = capture(stop.signal);
    const running = main(['--transport', 'http', '--port', '0', '--verify'], plainEnv(sink.port, { SMTP_FROM_EMAIL: 'agent@example.com' }), io);
    await waitFor(() => (/listening on/.test(err.join('')) ? true : undefined), 'the URL line');
    const text = err.join('');
    expect(text.indexOf('smtp connection test passed')).toBeGreaterThan(-1);
    expect(text.indexOf('smtp connection test passed')).toBeLessThan(text.indexOf('listening on'));
    stop.abort();
    expect(await running).toBe(0);
  });

  it('without --verify a failed test is only logged: the server still starts', async () => {
    const sink = await sinkWith({ auth: { user: 'robot', pass: 'the-right-password' } });
    const stop = new AbortController();
    const { io, err } = capture(stop.signal);
    const env = plainEnv(sink.port, { SMTP_USERNAME: 'robot', SMTP_PASSWORD: 'a-wrong-password', SMTP_FROM_EMAIL: 'agent@example.com' });
    const running = main(['--transport', 'http', '--port', '0'], env, io);
    const [line] = await waitFor(() => (connectionTestLines(err).length ? connectionTestLines(err) : undefined), 'the connection test line');
    expect(line).toMatchObject({ msg: 'smtp connection test failed: the server refused the login; check SMTP_USERNAME and SMTP_PASSWORD', server: 'primary', code: 'EAUTH' });
    expect(err.join('')).toContain('listening on');
    expect(err.join('')).not.toContain('a-wrong-password');
    stop.abort();
    expect(await running).toBe(0);
  });
});

describe('agent-smtp-mcp startup faults that name what to change', () => {
  it('--verify: a numbered server’s refused login names SMTP_USERNAME_n and SMTP_PASSWORD_n', async () => {
    const sink = await sinkWith({ auth: { user: 'robot', pass: 'the-right-password' } });
    const { io, err } = capture();
    const env = {
      PATH: process.env.PATH,
      SMTP_HOST_2: '127.0.0.1',
      SMTP_PORT_2: String(sink.port),
      SMTP_USE_TLS_2: 'false',
      SMTP_USERNAME_2: 'robot',
      SMTP_PASSWORD_2: 'a-wrong-password',
      SMTP_FROM_EMAIL_2: 'agent@example.com',
    };
    expect(await main(['--transport', 'http', '--port', '0', '--verify'], env, io)).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain('SMTP server "smtp-2" failed');
    expect(err[0]).toContain('check SMTP_USERNAME_2 and SMTP_PASSWORD_2');
    expect(err[0]).not.toMatch(/SMTP_(USERNAME|PASSWORD)\b(?!_)/);
  });

  it('--port that another process holds says to choose another port, not only EADDRINUSE', async () => {
    const sink = await sinkWith();
    const held = net.createServer();
    silent.push(held);
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
    const port = (held.address() as net.AddressInfo).port;
    const { io, err } = capture();
    const code = await main(['--transport', 'http', '--port', String(port)], plainEnv(sink.port, { SMTP_FROM_EMAIL: 'agent@example.com' }), io);
    expect([1, 2]).toContain(code);
    const line = err.find((t) => t.startsWith('agent-smtp-mcp: '));
    expect(line).toBe(`agent-smtp-mcp: port ${port} is in use: choose another --port (0 picks a free one) or stop the process using it.\n`);
  });
});
