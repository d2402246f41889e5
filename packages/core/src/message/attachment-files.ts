import { constants, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { ConfigError } from '../errors/config-error.js';
import { ValidationError } from '../errors/validation-error.js';

export interface AttachmentFileRules {
  /** The agent's attachment folder. Only files inside it (after resolving symbolic links) can be read. */
  directory: string;
  /** Largest file read, in bytes. Pass what is left of the message budget to bound all attachments together. */
  maxBytes: number;
}

/** @internal For tests only: runs between the path check and the open, where a swapped-in symbolic link would strike. */
export interface AttachmentFileHooks {
  beforeOpen?: (resolvedPath: string) => void | Promise<void>;
}

const FOLDER = "the agent's attachment folder";
// Any URL scheme (`file:`, `http:`, `data:`), and a Windows drive letter (`C:`), which has the same shape.
const SCHEME = /^[a-z][a-z0-9+.-]*:/i;
// Controls (NUL ends the path at the system call), backslashes (a separator on Windows) and format characters.
const UNSAFE_CHARACTER = /[\p{Cc}\p{Cf}\\]/u;
const MAX_PATH_LENGTH = 1024;
const CHUNK_BYTES = 64 * 1024;
// No wait for a writer when the path is a FIFO; the open cannot follow a symbolic link swapped in as the last part.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/**
 * Reads `path`, relative to `rules.directory`, for an agent that attaches a file by name. A prompt-injected agent
 * must not attach a server file, so everything that could leave the folder is refused before a byte is read:
 *
 * - the path must be relative: absolute paths are refused even when they point inside the folder (the agent is
 *   never told where the folder is, and one form of path is one thing to check);
 * - no `..` segment (refused, not normalized), no URL scheme (`file:`, `http:`, `data:`), drive letter,
 *   backslash, NUL or other control character;
 * - symbolic links are followed only while they stay inside the folder (a link inside the folder to another file
 *   inside it works); a link, or a linked subdirectory, that leads out is refused;
 * - the file is opened with `O_NOFOLLOW | O_NONBLOCK` and the open handle is checked again — its path (through
 *   `/proc/self/fd` where there is one) and its device and inode against the path checked — so a link swapped in
 *   between the check and the open is refused too;
 * - only a regular file is read (not a directory, FIFO or device), only when its size is at most `maxBytes`, and
 *   never more than `maxBytes` bytes even if it grows while being read.
 *
 * Hard links are not detected: whoever can write to the folder decides what is in it.
 *
 * @param field the caller's field name, used in errors (e.g. `attachments[0].path`).
 * @throws ValidationError naming `field` when the path is refused, missing, not a regular file or too large; the
 *   message says what to do and never contains the folder's location on the server.
 * @throws ConfigError when the folder itself cannot be resolved, or `rules.maxBytes` is not a byte count.
 */
export async function readAttachmentFile(path: string, rules: AttachmentFileRules, field: string, hooks: AttachmentFileHooks = {}): Promise<Buffer<ArrayBuffer>> {
  checkRelativePath(path, field);
  assertByteCount(rules.maxBytes);
  const folder = await resolveFolder(rules.directory);
  const target = await resolveInside(folder, path, field);
  await hooks.beforeOpen?.(target);
  const handle = await openNoFollow(target, field);
  try {
    const stats = await handle.stat();
    await assertStillInside(handle.fd, stats, folder, target, field);
    assertReadable(stats, rules.maxBytes, field);
    return await readAtMost(handle, rules.maxBytes, field);
  } finally {
    await handle.close();
  }
}

function checkRelativePath(path: unknown, field: string): asserts path is string {
  const relative = `give a path relative to ${FOLDER}, such as "report.pdf" or "exports/report.pdf"`;
  if (typeof path !== 'string' || path.length === 0) throw ValidationError.of(field, `must be a file path; ${relative}`);
  if (path.length > MAX_PATH_LENGTH) throw ValidationError.of(field, `is longer than ${MAX_PATH_LENGTH} characters; ${relative}`);
  if (SCHEME.test(path)) throw ValidationError.of(field, `is a URL or drive path, but only files in ${FOLDER} can be attached; ${relative}`);
  if (UNSAFE_CHARACTER.test(path)) throw ValidationError.of(field, `contains a backslash or control character; separate folders with "/" and ${relative}`);
  if (path.startsWith('/')) throw ValidationError.of(field, `is an absolute path; ${relative}`);
  if (path.split('/').includes('..')) throw ValidationError.of(field, `contains a ".." segment, which could leave ${FOLDER}; ${relative}`);
}

function assertByteCount(maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new ConfigError(`the attachment maxBytes is ${String(maxBytes)} but must be a whole number of bytes, 0 or more`, { setting: 'maxBytes' });
  }
}

async function resolveFolder(directory: string): Promise<string> {
  try {
    return await fs.realpath(directory);
  } catch (cause) {
    // The location goes to the operator through `cause`, not into a message the agent may see.
    throw new ConfigError('the attachment folder does not exist or cannot be read', { setting: 'directory', cause });
  }
}

/** The real path of `path` under `folder`, refused unless it is inside it. */
async function resolveInside(folder: string, path: string, field: string): Promise<string> {
  let target: string;
  try {
    target = await fs.realpath(join(folder, path));
  } catch (error) {
    throw fileError(error, field);
  }
  if (target === folder) throw notAFile(field);
  if (!isInside(folder, target)) throw leavesFolder(field);
  return target;
}

async function openNoFollow(target: string, field: string): Promise<FileHandle> {
  try {
    return await fs.open(target, OPEN_FLAGS);
  } catch (error) {
    // ELOOP: the last part became a symbolic link after the check.
    if (errorCode(error) === 'ELOOP') throw leavesFolder(field);
    throw fileError(error, field);
  }
}

/**
 * The open file is the one checked: an intermediate folder swapped for a link after the check is followed by the
 * open, so the handle's own path and the path's device and inode are compared with what was checked.
 */
async function assertStillInside(fd: number, opened: Stats, folder: string, target: string, field: string): Promise<void> {
  const handlePath = await pathOfDescriptor(fd);
  if (handlePath !== undefined && handlePath !== target) throw leavesFolder(field);
  let now: string;
  let atPath: Stats;
  try {
    now = await fs.realpath(target);
    atPath = await fs.stat(now);
  } catch {
    throw leavesFolder(field);
  }
  if (now !== target || !isInside(folder, now) || atPath.dev !== opened.dev || atPath.ino !== opened.ino) throw leavesFolder(field);
}

/** Where the kernel says an open descriptor leads (Linux), or undefined where it cannot tell. */
async function pathOfDescriptor(fd: number): Promise<string | undefined> {
  try {
    return await fs.readlink(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

function assertReadable(stats: Stats, maxBytes: number, field: string): void {
  if (!stats.isFile()) throw notAFile(field);
  if (stats.size > maxBytes) throw tooLarge(stats.size, maxBytes, field);
}

/** Reads to the end, but never more than `maxBytes + 1` bytes: the size seen by `stat` may grow while reading. */
async function readAtMost(handle: FileHandle, maxBytes: number, field: string): Promise<Buffer<ArrayBuffer>> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1 - total));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) break;
    chunks.push(buffer.subarray(0, bytesRead));
    total += bytesRead;
    if (total > maxBytes) throw ValidationError.of(field, `grew past the ${maxBytes} bytes allowed while being read; attach a smaller file`);
  }
  return Buffer.concat(chunks, total);
}

function isInside(folder: string, target: string): boolean {
  return target.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

function fileError(error: unknown, field: string): unknown {
  switch (errorCode(error)) {
    case 'ENOENT':
    case 'ENOTDIR':
      return ValidationError.of(field, `no such file in ${FOLDER}; check the name and give a path relative to that folder`);
    case 'ELOOP':
      return ValidationError.of(field, `leads through a loop of symbolic links; attach a file stored in ${FOLDER} itself`);
    case 'ENAMETOOLONG':
      return ValidationError.of(field, `is too long a path; give a shorter path relative to ${FOLDER}`);
    case 'EACCES':
    case 'EPERM':
      return ValidationError.of(field, `cannot be read (permission denied); attach another file from ${FOLDER}`);
    default:
      return error;
  }
}

function leavesFolder(field: string): ValidationError {
  return ValidationError.of(field, `leads outside ${FOLDER} through a symbolic link; attach a file stored in the folder itself`);
}

function notAFile(field: string): ValidationError {
  return ValidationError.of(field, `is not a regular file (a folder, pipe or device); give the path of a file in ${FOLDER}`);
}

function tooLarge(size: number, maxBytes: number, field: string): ValidationError {
  return ValidationError.of(field, `is ${size} bytes, more than the ${maxBytes} bytes allowed; attach a smaller file or send a link to it instead`);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}
