import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// `npm run demo` is a newcomer's first run: it must work with no configuration, and when something is wrong it
// must say what to change in one line, not with a stack trace and an error object.
const DEMO = fileURLToPath(new URL('../examples/demo/demo.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

async function runDemo(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // The way `npm run demo` runs it (tsx, source condition), with only the variables given: none inherited.
  const child = spawn(process.execPath, ['--conditions=@agent-smtp/source', '--import', 'tsx', DEMO], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH!, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
  return { code, stdout, stderr };
}

/** A port on 127.0.0.1 that refuses connections: one the system just gave out and was closed again. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('npm run demo', () => {
  it('sends through the built-in dev sink with no configuration', async () => {
    const run = await runDemo({});
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('No SMTP_HOST set: started the dev SMTP sink');
    expect(run.stdout).toContain('subject:     Your order A-1042 has shipped');
    expect(run.stderr).toBe('');
  });

  it.each([
    ['an unreachable server', async () => ({ SMTP_HOST: '127.0.0.1', SMTP_PORT: String(await closedPort()) }), /^demo: No SMTP server accepted the message \(primary[^:]*: connect ECONNREFUSED .*\)\. Check that SMTP_HOST and SMTP_PORT name an SMTP server this machine can reach/],
    [
      'an unreachable numbered server',
      async () => ({ SMTP_HOST_2: '127.0.0.1', SMTP_PORT_2: String(await closedPort()) }),
      /^demo: .*Check that SMTP_HOST_2 and SMTP_PORT_2 name an SMTP server this machine can reach, or unset SMTP_HOST_2 /,
    ],
    ['a bad SMTP_PORT', async () => ({ SMTP_HOST: '127.0.0.1', SMTP_PORT: 'abc' }), /^demo: SMTP_PORT is "abc" but must be a port number .* Fix that variable/],
    ['a bad DEMO_TO', async () => ({ DEMO_TO: 'nobody' }), /^demo: DEMO_TO is not usable: .*"nobody" is not a valid email address.* Fix DEMO_TO\.$/],
  ])('with %s: exits 1 with one line on stderr saying what to fix', async (_, env, line) => {
    const run = await runDemo(await env());
    expect(run.code).toBe(1);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines, run.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(line);
    // No stack trace and no error object: nothing indented, no braces of an inspected object.
    expect(run.stdout + run.stderr).not.toMatch(/^\s+at |\{$|attempts:/m);
  });
});
