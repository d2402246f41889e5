import { type ChildProcess, spawn } from 'node:child_process';
import { describeSmtpEnv } from '@agent-smtp/core';
import { type SmtpSink, startSmtpSink } from '@agent-smtp/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_ARGS, REPO_ROOT, waitFor } from './__fixtures__/cli-fixtures.js';
import { main, parseCliArgs } from './cli.js';

let sink: SmtpSink | undefined;
let client: Client | undefined;
const children: ChildProcess[] = [];

afterEach(async () => {
  await client?.close();
  client = undefined;
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  await sink?.close();
  sink = undefined;
});

function sinkEnv(s: SmtpSink): Record<string, string> {
  return { PATH: process.env.PATH!, SMTP_HOST: '127.0.0.1', SMTP_PORT: String(s.port), SMTP_USE_TLS: 'false', SMTP_FROM_EMAIL: 'agent@example.com' };
}

interface Run {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runCli(args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

describe('parseCliArgs', () => {
  it('defaults to stdio on 127.0.0.1:8000', () => {
    expect(parseCliArgs([])).toEqual({ transport: 'stdio', host: '127.0.0.1', port: 8000, maxMessageBytes: 10 * 1024 * 1024, verify: false, help: false, version: false });
    expect(parseCliArgs(['--verify']).verify).toBe(true);
    expect(parseCliArgs(['--max-message-bytes', '100000']).maxMessageBytes).toBe(100_000);
    expect(parseCliArgs(['--transport', 'http', '--host', '::1', '--port=0'])).toMatchObject({ transport: 'http', host: '::1', port: 0 });
    expect(parseCliArgs(['-h']).help).toBe(true);
  });

  it.each([
    [['--transport', 'sse'], '--transport'],
    [['--port', '70000'], '--port'],
    [['--port', '80a'], '--port'],
    [['--port', '-1'], undefined],
    [['--max-message-bytes', '10MB'], '--max-message-bytes'],
    [['--max-message-bytes', '12'], '--max-message-bytes'],
    [['--nope'], undefined],
    [['extra'], undefined],
  ])('refuses %j with a ConfigError', (argv, setting) => {
    let caught: unknown;
    try {
      parseCliArgs(argv);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'CONFIG_ERROR', ...(setting ? { setting } : {}) });
  });
});

describe('main (in-process)', () => {
  function capture(): { io: { stdout: (t: string) => void; stderr: (t: string) => void }; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    return { io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) }, out, err };
  }

  it('--help prints usage and every environment variable, including AGENT_SMTP_MCP_TOKEN', async () => {
    const { io, out, err } = capture();
    expect(await main(['--help'], {}, io)).toBe(0);
    const help = out.join('');
    expect(help).toContain('--transport');
    expect(help).toContain('--port');
    for (const row of describeSmtpEnv()) expect(help).toContain(row.variable);
    expect(help).toContain('AGENT_SMTP_MCP_TOKEN');
    expect(err).toEqual([]);
  });

  it('--version prints the package version', async () => {
    const { io, out } = capture();
    expect(await main(['--version'], {}, io)).toBe(0);
    expect(out.join('')).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 with one line for a bad --port', async () => {
    const { io, out, err } = capture();
    expect(await main(['--transport', 'http', '--port', 'abc'], { SMTP_HOST: '127.0.0.1' }, io)).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^agent-smtp-mcp: --port is "abc".*\n$/);
    expect(out).toEqual([]);
  });

  it('never prints a password in a configuration error', async () => {
    const { io, err } = capture();
    expect(await main([], { SMTP_HOST: '127.0.0.1', SMTP_PASSWORD: 's3cret-pa55word' }, io)).toBe(2);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain('SMTP_USERNAME');
    expect(err[0]).not.toContain('s3cret-pa55word');
  });

  it('runs the HTTP transport until aborted, then exits 0', async () => {
    sink = await startSmtpSink();
    const { io, err } = capture();
    const stop = new AbortController();
    const running = main(['--transport', 'http', '--port', '0'], sinkEnv(sink), { ...io, signal: stop.signal });
    const url = await waitFor(() => /listening on (http:\S+\/mcp)/.exec(err.join(''))?.[1], 'the URL line');
    client = new Client({ name: 'in-process', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'in-process main', body: 'x' } });
    expect((await sink.waitForMessages(1))[0]!.subject).toBe('in-process main');
    await client.close();
    client = undefined;
    stop.abort();
    expect(await running).toBe(0);
  });
});

describe('agent-smtp-mcp as a process', () => {
  it('serves MCP over stdio: lists tools and sends email through SMTP_HOST', async () => {
    const { pid, stderr: stderrOf } = await connectStdio();

    const { tools } = await client!.listTools();
    expect(tools).toHaveLength(8);
    const result = (await client!.callTool({
      name: 'send_email',
      arguments: { to: ['ada@example.com', 'grace@example.com'], subject: 'Over stdio', body: 'Hello from a child process.' },
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const [received] = await sink!.waitForMessages(1);
    expect(received!.subject).toBe('Over stdio');
    expect(received!.envelope.to).toEqual(['ada@example.com', 'grace@example.com']);
    expect(received!.envelope.from).toBe('agent@example.com');

    // Closing the client ends the child's stdin; the CLI must shut down on its own (no SIGTERM needed).
    await client!.close();
    client = undefined;
    expect(() => process.kill(pid, 0)).toThrow();
    const stderr = stderrOf();
    // The client sends SIGTERM only if the child outlives stdin by 2 s; the log says which way it stopped.
    expect(stderr).toContain('"reason":"stdin closed"');
    // Logs went to stderr as JSON lines; stdout carried nothing but the protocol (or the client would have failed).
    const logs = stderr.trim().split('\n').filter(Boolean);
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expect(() => JSON.parse(line), line).not.toThrow();
    expect(stderr).toContain('email sent');
  });

  async function connectStdio(args: string[] = []): Promise<{ client: Client; stderr: () => string; pid: number }> {
    sink = await startSmtpSink();
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [...NODE_ARGS, '--transport', 'stdio', ...args],
      env: sinkEnv(sink),
      cwd: REPO_ROOT,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    client = new Client({ name: 'stdio-test', version: '1.0.0' });
    await client.connect(transport);
    return { client, stderr: () => stderr, pid: transport.pid! };
  }

  function attachment(bytes: number): { filename: string; content_base64: string } {
    return { filename: 'data.bin', content_base64: Buffer.alloc(bytes, 7).toString('base64') };
  }

  it('delivers an 8 MiB attachment over stdio, though its JSON line passes the MCP SDK\'s 10 MB read buffer', async () => {
    const { client: c } = await connectStdio();
    const result = (await c.callTool(
      { name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Big file', body: 'Attached.', attachments: [attachment(8 * 1024 * 1024)] } },
      undefined,
      { timeout: 60_000 },
    )) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const [received] = await sink!.waitForMessages(1);
    expect(received!.attachments.map((a) => a.size)).toEqual([8 * 1024 * 1024]);
  }, 90_000);

  it('answers requests over its limits with error results the model can act on, and keeps serving', async () => {
    // 100 kB messages: requests up to 2 x 100000 + 64 KiB = 265,536 bytes are read.
    const { client: c, stderr } = await connectStdio(['--max-message-bytes', '100000']);
    const overRequest = (await c.callTool({
      name: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'Too big to read', body: 'x', attachments: [attachment(300_000)] },
    })) as CallToolResult;
    expect(overRequest.isError).toBe(true);
    const overRequestText = (overRequest.content[0] as { text: string }).text;
    expect(overRequestText).toMatch(/^Error VALIDATION_ERROR: The request is 390\.\d KiB, over the 259\.\d KiB this server reads in one call/);
    expect(overRequestText).toContain('Nothing was sent');
    // Within what is read, but over the message limit: the mailer's own refusal, naming the limit.
    const overMessage = (await c.callTool({
      name: 'send_email',
      arguments: { to: 'ada@example.com', subject: 'Too big to send', body: 'x', attachments: [attachment(150_000)] },
    })) as CallToolResult;
    expect(overMessage.isError).toBe(true);
    // In the tool's terms: the field it has, and the size; not the programmer's option name.
    expect((overMessage.content[0] as { text: string }).text).toContain('content_base64: is at least 150000 bytes, over the 100000-byte message limit');

    const ok = (await c.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Still here', body: 'x', attachments: [attachment(50_000)] } })) as CallToolResult;
    expect(ok.isError).toBeFalsy();
    await c.close();
    client = undefined;
    // The client closed stdin and waited for the exit: everything the server sent is in.
    expect(sink!.messages.map((m) => m.subject)).toEqual(['Still here']);
    expect(stderr()).toContain('Refused a 390.');
    expect(stderr()).toContain('"reason":"stdin closed"');
  });

  it('exits 1 with a one-line reason when a message over the limit names no id to answer, stdin still open', async () => {
    sink = await startSmtpSink();
    const run = runCli(['--max-message-bytes', '1024'], sinkEnv(sink));
    // Not JSON at all, so no id: the client that sent it would wait forever for an answer.
    run.child.stdin!.write(`${'x'.repeat(200_000)}\n`);
    expect(await run.exit).toEqual({ code: 1, signal: null });
    const reasons = run.stderr().split('\n').filter((line) => line.startsWith('agent-smtp-mcp:'));
    expect(reasons).toEqual([expect.stringMatching(/^agent-smtp-mcp: received a 195\.3 KiB message on stdin, over the 66\.0 KiB limit .*could not read its id/)]);
    for (const line of run.stderr().trim().split('\n').filter((l) => !l.startsWith('agent-smtp-mcp:'))) expect(() => JSON.parse(line), line).not.toThrow();
    expect(run.stdout()).toBe('');
  });

  it('serves Streamable HTTP, prints the URL on stderr, and exits 0 on SIGTERM', async () => {
    sink = await startSmtpSink();
    const run = runCli(['--transport', 'http', '--port', '0'], sinkEnv(sink));
    const url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(run.stderr())?.[1], 'the URL line');
    client = new Client({ name: 'http-cli-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    await client.callTool({ name: 'send_email', arguments: { to: 'ada@example.com', subject: 'Over HTTP from the CLI', body: 'x' } });
    expect((await sink.waitForMessages(1))[0]!.subject).toBe('Over HTTP from the CLI');
    await client.close();
    client = undefined;
    expect(run.stdout()).toBe('');

    run.child.kill('SIGTERM');
    expect(await run.exit).toEqual({ code: 0, signal: null });
  });

  it('refuses --host 0.0.0.0 without AGENT_SMTP_MCP_TOKEN: exit 2, one line', async () => {
    sink = await startSmtpSink();
    const run = runCli(['--transport', 'http', '--host', '0.0.0.0', '--port', '0'], sinkEnv(sink));
    expect(await run.exit).toEqual({ code: 2, signal: null });
    const lines = run.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^agent-smtp-mcp: .*AGENT_SMTP_MCP_TOKEN/);
    expect(run.stdout()).toBe('');
  });

  it('exits 2 with one line naming SMTP_HOST when no server is configured', async () => {
    const run = runCli([], { PATH: process.env.PATH! });
    expect(await run.exit).toEqual({ code: 2, signal: null });
    const lines = run.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^agent-smtp-mcp: .*SMTP_HOST/);
    expect(run.stderr()).not.toMatch(/\n\s+at /);
  });
});
