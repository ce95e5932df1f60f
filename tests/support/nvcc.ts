/** nvcc in the tests: the strict flags every build uses, and PTX builds cached across runs. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot } from '../../runtime/cuda-cpu/build.ts';
import type { GeneratedFile } from '../../targets/target.ts';

const execFileAsync = promisify(execFile);

/** Warnings are errors everywhere: nvcc's front end, ptxas and the host compiler. */
export const STRICT = ['-Werror', 'all-warnings', '-Xptxas', '-v,-Werror', '-Xcompiler', '-Wall,-Wextra,-Werror'];

/** `-c -O3` for one arch, with STRICT. */
export const strictFlags = (arch: string): string[] => [
  '-c',
  '-O3',
  `-gencode=arch=compute_${arch.slice(3)},code=${arch}`,
  ...STRICT,
];

/**
 * The PTX and nvcc's log (ptxas -v included) of `source` among `files`, built with `flags` and
 * cached under `namespace` by a digest of the files and flags; nvcc's failure fails the caller.
 */
export async function cachedPtxBuild(
  namespace: string,
  files: readonly GeneratedFile[],
  source: string,
  flags: readonly string[],
): Promise<{ ptx: string; log: string }> {
  const digest = createHash('sha256')
    .update(JSON.stringify({ flags, files: files.map((f) => [f.path, f.contents]) }))
    .digest('hex')
    .slice(0, 24);
  const dir = join(cacheRoot(), namespace, digest);
  const read = () => {
    const ptx = readdirSync(dir).find((f) => f.endsWith('.ptx'))!;
    return { ptx: readFileSync(join(dir, ptx), 'utf8'), log: readFileSync(join(dir, 'nvcc.log'), 'utf8') };
  };
  if (existsSync(join(dir, 'nvcc.log'))) return read();
  const work = `${dir}.${process.pid}`;
  mkdirSync(work, { recursive: true });
  try {
    for (const f of files) writeFileSync(join(work, f.path), f.contents);
    const { stdout, stderr } = await execFileAsync(
      'nvcc',
      [...flags, '--keep', '--keep-dir', work, '-o', join(work, 'kernel.o'), join(work, source)],
      { cwd: work, maxBuffer: 1 << 24 },
    );
    writeFileSync(join(work, 'nvcc.log'), stdout + stderr);
    for (const f of readdirSync(work)) if (!f.endsWith('.ptx') && f !== 'nvcc.log') rmSync(join(work, f));
    renameSync(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return read();
}
