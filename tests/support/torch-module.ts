/**
 * The generated PyTorch binding as the torch tests use it: `tttc compile --target cuda`'s files in
 * one folder per spec and sizes, shared by every test and test file that compiles the same spec at
 * the same sizes, so that each extension (the slow part: host C++ of the forward and the fused
 * backward) is built once and cached under node_modules/.cache/tttc.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Compiled } from '../../compiler/pipeline.ts';
import { cacheRoot, INCLUDE_DIR } from '../../runtime/cuda-cpu/build.ts';
import { cudaTarget } from '../../targets/cuda/target.ts';
import type { TargetOptions } from '../../targets/target.ts';
import { pythonWithTorch } from './python.ts';
import { repoRoot } from './specs.ts';

/** Writes `contents` by a rename, so a test file running beside this one never reads half a file. */
function writeWhole(path: string, contents: string): void {
  if (existsSync(path) && readFileSync(path, 'utf8') === contents) return;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

/**
 * The folder of the generated files, named by a digest of the C++ sources alone, so that a change
 * to the Python modules (rewritten when they differ) does not rebuild the extension.
 */
export async function torchModuleDir(
  c: Compiled,
  options: TargetOptions = { arch: 'sm_90', dtype: 'f32' },
): Promise<string> {
  const files = await cudaTarget.emit(c, options);
  const sources = files.filter((f) => !f.path.endsWith('.py'));
  const digest = createHash('sha256').update(JSON.stringify(sources)).digest('hex').slice(0, 16);
  const dir = join(cacheRoot(), 'torch-modules', digest);
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeWhole(join(dir, f.path), f.contents);
  return dir;
}

/** The environment the binding needs on CPU tensors, with its builds cached beside tttc's. */
export function torchEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TTTC_CUDA_CPU_INCLUDE: INCLUDE_DIR,
    TORCH_EXTENSIONS_DIR: join(cacheRoot(), 'torch-extensions'),
    PYTHONDONTWRITEBYTECODE: '1',
  };
}

/** Runs a script (relative to the repository) with python and torch; returns its stdout. */
export function runTorchPython(script: string, ...args: string[]): string {
  return execFileSync(pythonWithTorch(), [join(repoRoot, script), ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: torchEnv(),
  });
}
