/**
 * `tttc compile`'s output: every file or none. All files are written into a fresh staging folder
 * (random name, created exclusively) inside the output folder, checked, then moved into place; a
 * file they replace is set aside first and put back if a later move fails. Nothing staged is left
 * behind, on success or failure.
 */
import { lstat, mkdir, mkdtemp, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { checkOutputPath, UnsafeOutputError } from '../runtime/safe-write.ts';
import type { GeneratedFile } from '../targets/target.ts';

/** What is at `path`; a symbolic link counts as `other` unless `follow` (as for the output folder itself). */
async function kindOf(path: string, follow = false): Promise<'missing' | 'directory' | 'other'> {
  try {
    return (await (follow ? stat : lstat)(path)).isDirectory() ? 'directory' : 'other';
  } catch (e) {
    // ENOTDIR: a file stands where a folder above it should be; the walk up finds and names it.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw e;
  }
}

/** The folders from `root` down to `dir` that do not exist yet, outermost first; throws if a file is in the way. */
async function missingFolders(root: string, dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; d !== root && d.startsWith(root + sep); d = dirname(d)) {
    const kind = await kindOf(d);
    if (kind === 'directory') break;
    if (kind === 'other') throw new UnsafeOutputError(`${d} is in the way: it is not a folder`);
    missing.unshift(d);
  }
  return missing;
}

/** Writes `files` under `dir` all or none; returns the paths written. */
export async function writeAllOrNone(
  dir: string,
  files: readonly GeneratedFile[],
  inputs: readonly string[] = [],
): Promise<string[]> {
  const paths = files.map((f) => {
    const rel = normalize(f.path);
    if (isAbsolute(rel) || rel === '..' || rel.startsWith('..' + sep))
      throw new UnsafeOutputError(`generated path '${f.path}' leaves the output folder`);
    return join(dir, rel);
  });
  const seen = new Set<string>();
  for (const p of paths) {
    if (seen.has(p)) throw new UnsafeOutputError(`two generated files would both be written to ${p}`);
    seen.add(p);
  }
  const rootKind = await kindOf(dir, true);
  if (rootKind === 'other') throw new UnsafeOutputError(`--out ${dir} is not a folder`);
  if (rootKind === 'missing') await mkdir(dir, { recursive: true });
  // Every target must be absent or a regular file that is no input, before anything is written.
  for (const p of paths) {
    await missingFolders(dir, dirname(p));
    await checkOutputPath(p, inputs);
  }

  const staging = await mkdtemp(join(dir, '.tttc-staging-'));
  const created: string[] = [];
  const moved: { path: string; aside?: string }[] = [];
  try {
    for (const [i, f] of files.entries()) await writeFile(join(staging, String(i)), f.contents, { flag: 'wx' });
    for (const [i, path] of paths.entries()) {
      for (const d of await missingFolders(dir, dirname(path))) {
        await mkdir(d);
        created.push(d);
      }
      const existing = await checkOutputPath(path, inputs);
      const aside = existing ? join(staging, `${i}.old`) : undefined;
      if (aside) await rename(path, aside);
      moved.push({ path, aside });
      await rename(join(staging, String(i)), path);
    }
  } catch (error) {
    for (const { path, aside } of moved.reverse()) {
      await rm(path, { force: true });
      if (aside) await rename(aside, path);
    }
    for (const d of created.reverse()) await rmdir(d).catch(() => undefined);
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return paths;
}
