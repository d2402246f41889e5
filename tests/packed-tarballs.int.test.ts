import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// What a user gets from npm: every package packed the way `npm publish` packs it (prepack builds it), installed
// from the tarballs into a fresh app outside the repo (no workspace links, no source condition), then used from
// ESM, from CommonJS, from TypeScript (both module kinds) and through the CLI's bin. Third-party dependencies come
// from the registry (the npm cache first).

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES_DIR = join(REPO, 'packages');

interface PackageJson {
  name: string;
  version: string;
  private?: boolean;
  exports: Record<string, string | Record<string, unknown>>;
  bin?: Record<string, string>;
  overrides?: Record<string, string>;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

const packages = readdirSync(PACKAGES_DIR)
  .filter((dir) => existsSync(join(PACKAGES_DIR, dir, 'package.json')))
  .map((dir) => ({ dir, pkg: readJson<PackageJson>(join(PACKAGES_DIR, dir, 'package.json')) }))
  .filter(({ pkg }) => !pkg.private);

/** Every import specifier a user can write: `@agent-smtp/core`, `@agent-smtp/testing/store-contract`, … */
const entryPoints = packages.flatMap(({ pkg }) =>
  Object.keys(pkg.exports)
    .filter((subpath) => subpath !== './package.json')
    .map((subpath) => pkg.name + subpath.slice(1)),
);

// vitest refuses to be require()d, so the store contract (which imports it) is ESM-only at run time.
const ESM_ONLY = new Set(['@agent-smtp/testing/store-contract']);

/** The versions the repo tests with, so the app installs the same (and finds them in the npm cache). */
const installedVersion = (name: string): string => readJson<{ version: string }>(join(REPO, 'node_modules', name, 'package.json')).version;
// @types/json-schema: the AI SDK's declarations import 'json-schema' (skipLibCheck is off, so ours are checked too).
const THIRD_PARTY = ['zod', 'ai', '@langchain/core', '@modelcontextprotocol/sdk', 'vitest', '@types/node', '@types/json-schema'];

// Loaded 2-core machines: building six packages (with declarations) and installing takes minutes there.
const SETUP_TIMEOUT_MS = 420_000;
const STEP_TIMEOUT_MS = 120_000;

// What an enclosing `npm test` sets about the repo's own package and workspaces: npm in the app must not inherit it.
// (The user's npm configuration, such as npm_config_registry or npm_config_cache, is kept.)
const REPO_NPM_VARIABLES = /^npm_(lifecycle_|package_|command$|config_local_prefix$|config_workspaces?$|config_include_workspace_root$)/i;

/** Runs a command, failing with its output; without the repo's npm_* variables of an enclosing `npm test`. */
function run(command: string, args: string[], cwd: string, timeoutMs = STEP_TIMEOUT_MS): Promise<{ stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !REPO_NPM_VARIABLES.test(key)));
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { cwd, env: { ...env, NO_COLOR: '1' }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${error.message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
      else resolvePromise({ stdout, stderr });
    });
  });
}

const NPM_INSTALL_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

let tmp: string;
let app: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'agent-smtp-packed-'));
  const packs = join(tmp, 'packs');
  app = join(tmp, 'app');
  await mkdir(packs);
  await mkdir(app);

  // One `npm pack` for every workspace package: each prepack builds its package first.
  const workspaces = packages.flatMap(({ dir }) => ['--workspace', `packages/${dir}`]);
  await run('npm', ['pack', ...workspaces, '--pack-destination', packs, '--loglevel=error'], REPO, SETUP_TIMEOUT_MS);
  // npm names a tarball after the package: @agent-smtp/core 0.0.0 -> agent-smtp-core-0.0.0.tgz
  const packed = packages.map(({ pkg }) => ({ name: pkg.name, filename: `${pkg.name.replace(/^@/, '').replace('/', '-')}-${pkg.version}.tgz` }));
  expect(readdirSync(packs).sort()).toEqual(packed.map((p) => p.filename).sort());

  const root = readJson<PackageJson>(join(REPO, 'package.json'));
  const appPackage = {
    name: 'packed-tarballs-app',
    private: true,
    dependencies: {
      ...Object.fromEntries(packed.map((p) => [p.name, `file:${join(packs, p.filename)}`])),
      ...Object.fromEntries(THIRD_PARTY.map((name) => [name, installedVersion(name)])),
    },
    // The same registry gaps as the repo's (see its package.json).
    overrides: root.overrides,
  };
  await writeFile(join(app, 'package.json'), JSON.stringify(appPackage, null, 2));
  await run('npm', ['install', ...NPM_INSTALL_FLAGS], app, SETUP_TIMEOUT_MS);
}, SETUP_TIMEOUT_MS * 2);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('packed tarballs installed in a fresh app', { timeout: STEP_TIMEOUT_MS }, () => {
  it('installs from the tarballs, not from links into the repo', () => {
    for (const { pkg } of packages) {
      const installed = join(app, 'node_modules', pkg.name);
      expect(existsSync(installed), pkg.name).toBe(true);
      expect(resolve(installed, 'package.json')).not.toContain(REPO);
      expect(readFileSync(join(installed, 'package.json'), 'utf8')).toBe(readFileSync(join(PACKAGES_DIR, dirOf(pkg.name), 'package.json'), 'utf8'));
    }
  });

  it('ships LICENSE, README, and every file that package.json, the source maps and the bin name', () => {
    const missing: string[] = [];
    for (const { pkg } of packages) {
      const installed = join(app, 'node_modules', pkg.name);
      const need = (path: string, why: string) => {
        if (!existsSync(join(installed, path))) missing.push(`${pkg.name}: ${path} (${why})`);
      };
      need('LICENSE', 'license');
      need('README.md', 'readme');
      for (const [subpath, target] of Object.entries(pkg.exports)) {
        for (const file of exportTargets(target)) need(file, `exports["${subpath}"]`);
      }
      for (const file of Object.values(pkg.bin ?? {})) need(file, 'bin');
      const maps = readdirSync(join(installed, 'dist')).filter((file) => file.endsWith('.map'));
      expect(maps.length, `${pkg.name} ships source maps`).toBeGreaterThan(0);
      for (const map of maps) {
        const { sources } = readJson<{ sources: string[] }>(join(installed, 'dist', map));
        for (const source of sources) need(join('dist', source), `dist/${map}`);
      }
      // Tests and their fixtures stay in the repo.
      expect(listFiles(join(installed, 'src')).filter((file) => /\.test\.ts$|__fixtures__/.test(file)), pkg.name).toEqual([]);
    }
    expect(missing).toEqual([]);
  });

  it('imports every entry point from ESM, and sends a Markdown email to the dev sink', async () => {
    await writeFile(
      join(app, 'esm.mjs'),
      `const entries = ${JSON.stringify(entryPoints)};
const exported = {};
for (const entry of entries) exported[entry] = Object.keys(await import(entry)).sort();
${SEND_SCRIPT}
const { createMailer } = await import('@agent-smtp/core');
const { startSmtpSink } = await import('@agent-smtp/testing');
console.log(JSON.stringify({ exported, sent: await sendOne(createMailer, startSmtpSink) }));
`,
    );
    const result = JSON.parse((await run(process.execPath, ['esm.mjs'], app)).stdout) as ScriptResult;
    for (const entry of entryPoints) expect(result.exported[entry]?.length, entry).toBeGreaterThan(0);
    expect(result.exported['@agent-smtp/core']).toEqual(expect.arrayContaining(['createMailer', 'createMailService', 'createMailTools']));
    expect(result.exported['@agent-smtp/testing/store-contract']).toEqual(['newOutboxRecord', 'runStoreContract', 'sampleStoredEmail']);
    expect(result.sent).toEqual(SENT);
  });

  it('requires every entry point from CommonJS (the store contract says to import it), and sends a Markdown email', async () => {
    await writeFile(
      join(app, 'cjs.cjs'),
      `const entries = ${JSON.stringify(entryPoints)};
const exported = {};
const refused = {};
for (const entry of entries) {
  try { exported[entry] = Object.keys(require(entry)).sort(); } catch (error) { refused[entry] = String(error.message); }
}
${SEND_SCRIPT}
sendOne(require('@agent-smtp/core').createMailer, require('@agent-smtp/testing').startSmtpSink)
  .then((sent) => console.log(JSON.stringify({ exported, refused, sent })));
`,
    );
    const result = JSON.parse((await run(process.execPath, ['cjs.cjs'], app)).stdout) as ScriptResult & { refused: Record<string, string> };
    for (const entry of entryPoints.filter((e) => !ESM_ONLY.has(e))) expect(result.exported[entry]?.length, entry).toBeGreaterThan(0);
    expect(Object.keys(result.refused)).toEqual([...ESM_ONLY]);
    expect(result.refused['@agent-smtp/testing/store-contract']).toMatch(/Vitest cannot be imported in a CommonJS module using require\(\)\. Please use "import" instead/);
    expect(result.exported['@agent-smtp/core']).toEqual(expect.arrayContaining(['createMailer', 'createMailService', 'createMailTools']));
    expect(result.sent).toEqual(SENT);
  });

  it('type-checks TypeScript using every entry point, as an ES module and as CommonJS', async () => {
    const imports = entryPoints.map((entry, i) => `import * as entry${i} from '${entry}';`).join('\n');
    const uses = `export const entries = [${entryPoints.map((_, i) => `entry${i}`).join(', ')}];
export async function main(): Promise<string> {
  const { createMailer } = entry${entryPoints.indexOf('@agent-smtp/core')};
  const { startSmtpSink } = entry${entryPoints.indexOf('@agent-smtp/testing')};
  const sink = await startSmtpSink();
  const mailer = createMailer({ servers: [sink.serverConfig()], defaults: { from: 'agent@example.com' }, env: {} });
  const result = await mailer.send({ to: 'ada@example.com', subject: 'Hi', markdown: '**hello**' });
  // @ts-expect-error: a status the SDK does not have
  const impossible: typeof result.status = 'bounced-twice';
  await mailer.close();
  await sink.close();
  return result.messageId + String(impossible);
}
`;
    await writeFile(join(app, 'use-esm.mts'), `${imports}\n${uses}`);
    await writeFile(join(app, 'use-cjs.cts'), `${imports}\n${uses}`);
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
        files: ['use-esm.mts', 'use-cjs.cts'],
      }),
    );
    // The repo's TypeScript, run on the app: resolution starts from the app's files, so it sees only the app's node_modules.
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const { stdout } = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], app);
    const ours = stdout.split('\n').filter((file) => file.includes('/node_modules/@agent-smtp/'));
    // Each module kind read its own declarations: .d.ts for import, .d.cts for require.
    expect(ours.filter((file) => file.endsWith('/dist/index.d.ts')).length).toBe(packages.length);
    expect(ours.filter((file) => file.endsWith('/dist/index.d.cts')).length).toBe(packages.length);
    expect(ours.filter((file) => file.includes('/src/'))).toEqual([]);
  });

  it('runs the agent-smtp-mcp bin with npx', async () => {
    const { stdout } = await run('npx', ['--no-install', 'agent-smtp-mcp', '--help'], app);
    expect(stdout).toMatch(/agent-smtp-mcp/);
    expect(stdout).toMatch(/SMTP_HOST/);
  });
});

interface ScriptResult {
  exported: Record<string, string[]>;
  sent: unknown;
}

// One send through the built bundles: pool, pipeline (marked renders the Markdown), outbox and the sink's parser.
const SEND_SCRIPT = `async function sendOne(createMailer, startSmtpSink) {
  const sink = await startSmtpSink();
  const mailer = createMailer({ servers: [sink.serverConfig()], defaults: { from: 'agent@example.com' }, env: {} });
  try {
    const result = await mailer.send({ to: 'ada@example.com', subject: 'Packed', markdown: '**hello** from the tarball' });
    const [message] = await sink.waitForMessages(1);
    return { status: result.status, to: message.envelope.to, subject: message.subject, html: /<strong>hello<\\/strong>/.test(message.html ?? '') };
  } finally {
    await mailer.close();
    await sink.close();
  }
}`;
const SENT = { status: 'sent', to: ['ada@example.com'], subject: 'Packed', html: true };

function exportTargets(target: unknown): string[] {
  if (typeof target === 'string') return [target];
  if (target && typeof target === 'object') return Object.values(target).flatMap(exportTargets);
  return [];
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

function dirOf(name: string): string {
  return packages.find(({ pkg }) => pkg.name === name)!.dir;
}
