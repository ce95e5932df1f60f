// Node-only: writing an output file without harming anything else. The bytes go to a fresh temporary
// file with an unpredictable name, created exclusively beside the target, which is then renamed
// over the target; only a regular file (or nothing) is ever replaced, and never one of the inputs.

import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** An output path that must not be written: a device, a directory, a symbolic link, an input. */
export class UnsafeOutputError extends Error {
  override name = 'UnsafeOutputError';
}

function describe(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isSymbolicLink()) return 'a symbolic link';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  if (s.isFIFO()) return 'a pipe';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Throws UnsafeOutputError unless `path` is absent or a regular file that is none of `inputs`
 * (compared by device and inode, so another name for the same file is caught too).
 * Returns the existing file's stats.
 */
export async function checkOutputPath(path: string, inputs: readonly string[] = []): Promise<Stats | undefined> {
  const existing = await lstatOrUndefined(path);
  if (!existing) return undefined;
  if (!existing.isFile())
    throw new UnsafeOutputError(`${path} is ${describe(existing)}; refusing to write over it (give a regular file)`);
  for (const input of inputs) {
    const s = await stat(input).catch(() => undefined);
    if (s && s.dev === existing.dev && s.ino === existing.ino)
      throw new UnsafeOutputError(`the output ${path} is the input ${input}; refusing to overwrite an input`);
  }
  return existing;
}

/** A fresh file beside `path` with a random name, created exclusively (never through a link). */
export async function createTemporaryBeside(path: string) {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
    return { temporary, handle };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new UnsafeOutputError(`cannot write ${path}: the folder ${dirname(path)} does not exist`);
    throw e;
  }
}

/** Writes `bytes` to `path` atomically and safely (see the file comment). */
export async function writeFileSafely(path: string, bytes: Uint8Array, inputs: readonly string[] = []): Promise<void> {
  const existing = await checkOutputPath(path, inputs);
  const { temporary, handle } = await createTemporaryBeside(path);
  try {
    await handle.writeFile(bytes);
    await handle.close();
    if (existing) await chmod(temporary, existing.mode & 0o7777);
    // Checked again just before the rename: the path may have changed while we wrote.
    await checkOutputPath(path, inputs);
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
}
