import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';
import { readAttachmentFile, type AttachmentFileRules } from './attachment-files.js';

const FIELD = 'attachments[0].path';
const SECRET = 'outside-secret-7f3a';
const MAX_BYTES = 64;

let root: string;
let folder: string;
let rules: AttachmentFileRules;

// root/outside.txt, root/outside-dir/{data.txt,outside-fifo} hold what must never be read; root/folder is the agent's.
beforeAll(async () => {
  root = await fs.promises.mkdtemp(join(tmpdir(), 'attachment-files-'));
  folder = join(root, 'folder');
  rules = { directory: folder, maxBytes: MAX_BYTES };
  const outsideDir = join(root, 'outside-dir');
  await fs.promises.mkdir(join(folder, 'sub'), { recursive: true });
  await fs.promises.mkdir(outsideDir);
  await fs.promises.writeFile(join(root, 'outside.txt'), SECRET);
  await fs.promises.writeFile(join(outsideDir, 'data.txt'), SECRET);
  await fs.promises.writeFile(join(folder, 'hello.txt'), 'hello');
  await fs.promises.writeFile(join(folder, 'sub', 'nested.txt'), 'nested');
  await fs.promises.writeFile(join(folder, 'exact.bin'), Buffer.alloc(MAX_BYTES, 1));
  await fs.promises.writeFile(join(folder, 'big.bin'), Buffer.alloc(MAX_BYTES + 1, 1));
  await fs.promises.writeFile(join(folder, 'huge.bin'), Buffer.alloc(1024 * 1024, 1));
  await fs.promises.writeFile(join(folder, 'empty.txt'), '');
  await fs.promises.symlink('hello.txt', join(folder, 'link-inside.txt'));
  await fs.promises.symlink('sub', join(folder, 'link-sub'));
  await fs.promises.symlink(join(root, 'outside.txt'), join(folder, 'link-out.txt'));
  await fs.promises.symlink('../../outside.txt', join(folder, 'sub', 'relative-link-out.txt'));
  await fs.promises.symlink(outsideDir, join(folder, 'link-dir'));
  await fs.promises.symlink('/dev/zero', join(folder, 'link-zero'));
  await fs.promises.symlink('/etc/passwd', join(folder, 'link-passwd'));
  await fs.promises.symlink('loop-b', join(folder, 'loop-a'));
  await fs.promises.symlink('loop-a', join(folder, 'loop-b'));
  await fs.promises.symlink(join(folder, 'hello.txt'), join(folder, 'absolute-link-inside.txt'));
  execFileSync('mkfifo', [join(folder, 'fifo')]);
  execFileSync('mkfifo', [join(outsideDir, 'outside-fifo')]);
});

afterAll(async () => {
  await fs.promises.rm(root, { recursive: true, force: true });
});

// Every way this module or a later change could take bytes from a file: a refused case must call none of them.
// The "reads a file" test below shows these spies do see the module's reads, so a read past a refusal would fail.
type Spy = { mock: { calls: unknown[][] } };
let readSpies: Spy[];
let openSpy: Spy & { mock: { results: { value: unknown }[] } };
let handleProto: Record<string, unknown>;

beforeEach(async () => {
  const probe = await fs.promises.open(join(folder, 'hello.txt'), 'r');
  handleProto = Object.getPrototypeOf(probe) as Record<string, unknown>;
  await probe.close();
  const handleReads = ['read', 'readv', 'readFile', 'readLines', 'createReadStream', 'readableWebStream'].filter((name) => typeof handleProto[name] === 'function');
  readSpies = [
    ...handleReads.map((name) => vi.spyOn(handleProto as Record<string, () => unknown>, name)),
    vi.spyOn(fs.promises, 'readFile'),
    vi.spyOn(fs, 'readFile'),
    vi.spyOn(fs, 'readFileSync'),
    vi.spyOn(fs, 'read'),
    vi.spyOn(fs, 'readSync'),
    vi.spyOn(fs, 'createReadStream'),
  ];
  openSpy = vi.spyOn(fs.promises, 'open');
});

afterEach(() => {
  vi.restoreAllMocks();
});

function readCalls(): number {
  return readSpies.reduce((sum, spy) => sum + spy.mock.calls.length, 0);
}

function openedPaths(): string[] {
  return openSpy.mock.calls.map((call) => String(call[0]));
}

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'read without refusal',
    (error: unknown) => error,
  );
}

describe('readAttachmentFile', () => {
  it('reads a file in the folder, and the read spies see it', async () => {
    await expect(readAttachmentFile('hello.txt', rules, FIELD)).resolves.toEqual(Buffer.from('hello'));
    expect(readCalls()).toBeGreaterThan(0);
  });

  it.each([
    ['a file in a subfolder', 'sub/nested.txt', 'nested'],
    ['a path starting with ./', './hello.txt', 'hello'],
    ['a doubled slash', 'sub//nested.txt', 'nested'],
    ['a link inside the folder to a file inside it', 'link-inside.txt', 'hello'],
    ['an absolute link that stays inside the folder', 'absolute-link-inside.txt', 'hello'],
    ['a linked subfolder inside the folder', 'link-sub/nested.txt', 'nested'],
    ['an empty file', 'empty.txt', ''],
  ])('reads %s', async (_name, path, content) => {
    await expect(readAttachmentFile(path, rules, FIELD)).resolves.toEqual(Buffer.from(content));
  });

  it('reads a file of exactly maxBytes', async () => {
    await expect(readAttachmentFile('exact.bin', rules, FIELD)).resolves.toEqual(Buffer.alloc(MAX_BYTES, 1));
  });

  // The path as the model wrote it: refused by its shape, before the file system is asked anything.
  const MALFORMED_PATHS: readonly string[] = [
    '',
    '/etc/passwd',
    '//etc/passwd',
    '/',
    '..',
    '../outside.txt',
    'sub/../../outside.txt',
    'sub/../hello.txt',
    'sub/..',
    './../outside.txt',
    'file:///etc/passwd',
    'FILE:/etc/passwd',
    'file:hello.txt',
    'http://127.0.0.1/x',
    'http://169.254.169.254/latest/meta-data',
    'https://example.com/report.pdf',
    'data:text/plain;base64,aGVsbG8=',
    'ftp://example.com/x',
    'jar:file:///x!/y',
    'C:\\Windows\\win.ini',
    'c:/Windows/win.ini',
    'C:hello.txt',
    '..\\outside.txt',
    'sub\\..\\..\\outside.txt',
    '\\\\server\\share\\x',
    'hello.txt\0.png',
    '\0',
    'hello.txt\n',
    'sub/\r/nested.txt',
    '\u202Etxt.exe',
    'a'.repeat(5000),
  ];

  it.each(MALFORMED_PATHS.map((path) => [JSON.stringify(path).slice(0, 60), path]))('refuses %s without opening anything', async (_name, path) => {
    const error = await refusal(readAttachmentFile(path, rules, FIELD));
    expect(ValidationError.isInstance(error) && error.field).toBe(FIELD);
    expect(openedPaths()).toEqual([]);
    expect(readCalls()).toBe(0);
  });

  it('refuses an absolute path even when it points inside the folder', async () => {
    const error = await refusal(readAttachmentFile(join(folder, 'hello.txt'), rules, FIELD));
    expect(ValidationError.isInstance(error) && error.message).toMatch(/absolute path; give a path relative to the agent's attachment folder/);
    expect(readCalls()).toBe(0);
  });

  // Well-formed relative paths that reach something that must not be read: refused after resolving, never read.
  const UNREADABLE_PATHS: readonly [name: string, path: string, message: RegExp][] = [
    ['a link to a file outside', 'link-out.txt', /leads outside/],
    ['a relative link out of a subfolder', 'sub/relative-link-out.txt', /leads outside/],
    ['a linked folder outside', 'link-dir/data.txt', /leads outside/],
    ['a FIFO outside through a linked folder', 'link-dir/outside-fifo', /leads outside/],
    ['a link to /dev/zero', 'link-zero', /leads outside/],
    ['a link to /etc/passwd', 'link-passwd', /leads outside/],
    ['a link loop', 'loop-a', /loop of symbolic links/],
    ['a FIFO in the folder', 'fifo', /not a regular file/],
    ['the folder itself', '.', /not a regular file/],
    ['a subfolder', 'sub', /not a regular file/],
    ['a subfolder with a trailing slash', 'sub/', /not a regular file/],
    ['a file over maxBytes', 'big.bin', /is 65 bytes, more than the 64 bytes allowed/],
    ['a missing file', 'missing.txt', /no such file in the agent's attachment folder/],
    ['a file under a file', 'hello.txt/x', /no such file/],
    ['a cloud metadata address taken as a name', '169.254.169.254/latest/meta-data', /no such file/],
    ['a home folder shorthand', '~/.ssh/id_rsa', /no such file/],
    ['percent-encoded dots', '%2e%2e/outside.txt', /no such file/],
  ];

  it.each(UNREADABLE_PATHS)('refuses %s without reading a byte', async (_name, path, message) => {
    const error = await refusal(readAttachmentFile(path, rules, FIELD));
    expect(ValidationError.isInstance(error) && error.field).toBe(FIELD);
    expect(error instanceof Error && error.message).toMatch(message);
    expect(readCalls()).toBe(0);
    expect(openedPaths().filter((opened) => !opened.startsWith(join(folder, '')))).toEqual([]);
  });

  it("never puts the folder's location or a file's content in a message", async () => {
    const paths = [...MALFORMED_PATHS, join(folder, 'hello.txt'), ...UNREADABLE_PATHS.map(([, path]) => path)];
    const messages = await Promise.all(paths.map(async (path) => String((await refusal(readAttachmentFile(path, rules, FIELD))) as Error)));
    expect(messages.filter((message) => message.includes(root) || message.includes(SECRET) || !message.startsWith(`ValidationError: ${FIELD}: `))).toEqual([]);
  });

  it('refuses with maxBytes as the remaining total, 0 included', async () => {
    const error = await refusal(readAttachmentFile('hello.txt', { directory: folder, maxBytes: 4 }, FIELD));
    expect(error instanceof Error && error.message).toMatch(/is 5 bytes, more than the 4 bytes allowed/);
    await expect(readAttachmentFile('empty.txt', { directory: folder, maxBytes: 0 }, FIELD)).resolves.toEqual(Buffer.alloc(0));
    expect(readCalls()).toBe(1);
  });

  it('reads no more than maxBytes + 1 bytes when the file is larger than stat said (it grew)', async () => {
    const stat = handleProto.stat as (this: unknown) => Promise<fs.Stats>;
    vi.spyOn(handleProto as { stat: () => Promise<fs.Stats> }, 'stat').mockImplementation(async function (this: unknown) {
      const stats = await stat.call(this);
      return Object.assign(Object.create(Object.getPrototypeOf(stats) as object) as fs.Stats, stats, { size: 1 });
    });
    const read = readSpies[0] as Spy;
    expect(handleProto.read).toBe(read);
    const error = await refusal(readAttachmentFile('huge.bin', rules, FIELD));
    expect(error instanceof Error && error.message).toMatch(/grew past the 64 bytes allowed/);
    const requested = read.mock.calls.reduce((sum, call) => sum + Number(call[2]), 0);
    expect(requested).toBe(MAX_BYTES + 1);
  });

  describe('a link swapped in between the check and the open', () => {
    beforeEach(async () => {
      await fs.promises.writeFile(join(folder, 'race.txt'), 'inside');
      await fs.promises.mkdir(join(folder, 'race-dir'), { recursive: true });
      await fs.promises.writeFile(join(folder, 'race-dir', 'data.txt'), 'inside');
    });

    afterEach(async () => {
      await fs.promises.rm(join(folder, 'race.txt'), { force: true });
      await fs.promises.rm(join(folder, 'race-dir'), { recursive: true, force: true });
    });

    it('refuses the file itself replaced by a link out (O_NOFOLLOW)', async () => {
      const beforeOpen = async (resolved: string) => {
        await fs.promises.rm(resolved);
        await fs.promises.symlink(join(root, 'outside.txt'), resolved);
      };
      const error = await refusal(readAttachmentFile('race.txt', rules, FIELD, { beforeOpen }));
      expect(ValidationError.isInstance(error) && error.message).toMatch(/leads outside/);
      await expect(openSpy.mock.results[0]?.value).rejects.toMatchObject({ code: 'ELOOP' });
      expect(await fs.promises.readlink(join(folder, 'race.txt'))).toBe(join(root, 'outside.txt'));
      expect(readCalls()).toBe(0);
    });

    it('refuses a folder on the path replaced by a link out (checked on the open handle)', async () => {
      const beforeOpen = async () => {
        await fs.promises.rm(join(folder, 'race-dir'), { recursive: true });
        await fs.promises.symlink(join(root, 'outside-dir'), join(folder, 'race-dir'));
      };
      const error = await refusal(readAttachmentFile('race-dir/data.txt', rules, FIELD, { beforeOpen }));
      expect(ValidationError.isInstance(error) && error.message).toMatch(/leads outside/);
      // The open did follow the swapped link: only the check on the handle stood between it and the read.
      expect(openedPaths()).toEqual([join(folder, 'race-dir', 'data.txt')]);
      expect(readCalls()).toBe(0);
    });

    it('reads a regular file that replaced the checked one inside the folder (no false refusal)', async () => {
      const beforeOpen = async (resolved: string) => {
        await fs.promises.rm(resolved);
        await fs.promises.writeFile(resolved, 'replaced');
      };
      await expect(readAttachmentFile('race.txt', rules, FIELD, { beforeOpen })).resolves.toEqual(Buffer.from('replaced'));
    });
  });

  it('throws a ConfigError without the location when the folder does not exist', async () => {
    const error = await refusal(readAttachmentFile('hello.txt', { directory: join(root, 'no-such-folder'), maxBytes: MAX_BYTES }, FIELD));
    expect(ConfigError.isInstance(error) && error.setting).toBe('directory');
    expect(error instanceof Error && error.message.includes(root)).toBe(false);
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('throws a ConfigError for maxBytes %s', async (maxBytes) => {
    const error = await refusal(readAttachmentFile('hello.txt', { directory: folder, maxBytes }, FIELD));
    expect(ConfigError.isInstance(error) && error.setting).toBe('maxBytes');
    expect(readCalls()).toBe(0);
  });
});
