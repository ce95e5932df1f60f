/**
 * Builds a generated CUDA layer as a host executable with g++ (or $CXX) against tttc's CUDA
 * header, cached by a digest of everything that goes into it: sources, headers, compiler, flags.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { driverSource } from './driver.ts';
import type { CudaCpuProgram } from './program.ts';

const execFileAsync = promisify(execFile);

/** `fast`: optimised; `asan`: AddressSanitizer (bounds); `tsan`: ThreadSanitizer (races between barriers). */
export type CudaCpuMode = 'fast' | 'asan' | 'tsan';

export const MODE_FLAGS: Record<CudaCpuMode, readonly string[]> = {
  fast: ['-O1'],
  asan: ['-O1', '-g', '-fsanitize=address', '-fno-omit-frame-pointer'],
  tsan: ['-O1', '-g', '-fsanitize=thread'],
};

/**
 * The header folder that stands in for CUDA's: cuda_runtime.h, cuda_bf16.h, c10/cuda shims. It sits
 * beside this file in the sources; once bundled into dist/, the package root is found above it.
 */
export const INCLUDE_DIR = findIncludeDir(dirname(fileURLToPath(import.meta.url)));

function findIncludeDir(here: string): string {
  const beside = resolve(here, 'include');
  if (existsSync(join(beside, 'tttc_cuda_cpu.h'))) return beside;
  for (let dir = here; ; dir = dirname(dir)) {
    const inPackage = join(dir, 'runtime/cuda-cpu/include');
    if (existsSync(join(inPackage, 'tttc_cuda_cpu.h'))) return inPackage;
    if (dirname(dir) === dir) return beside;
  }
}

export class CudaCpuBuildError extends Error {}

/** node_modules/.cache/tttc beside the runtime when there is one, else $XDG_CACHE_HOME/tttc. */
export function cacheRoot(): string {
  if (process.env.TTTC_CACHE_DIR) return process.env.TTTC_CACHE_DIR;
  const modules = resolve(dirname(fileURLToPath(import.meta.url)), '../../node_modules');
  if (existsSync(modules)) return join(modules, '.cache', 'tttc');
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tttc');
}

function headerTexts(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort()
    .map((f) => `${f.slice(dir.length)}\n${readFileSync(f, 'utf8')}`);
}

export interface Built {
  executable: string;
  /** Whether this call compiled it (false: it came from the cache). */
  compiled: boolean;
  seconds: number;
}

/** Compiles the program's source and a driver into one executable, or finds it in the cache. */
export async function buildProgram(p: CudaCpuProgram, mode: CudaCpuMode): Promise<Built> {
  const started = performance.now();
  const compiler = process.env.CXX ?? 'g++';
  const arch = Number(/\d+/.exec(p.arch)?.[0]);
  if (!Number.isInteger(arch)) throw new CudaCpuBuildError(`cannot emulate CUDA architecture '${p.arch}'`);
  const driver = driverSource(p);
  const flags = ['-std=c++17', `-DTTTC_CUDA_CPU_ARCH=${arch}`, ...MODE_FLAGS[mode]];
  const digest = createHash('sha256')
    .update(JSON.stringify({ compiler, flags, driver, headers: headerTexts(INCLUDE_DIR), files: p.files }))
    .digest('hex')
    .slice(0, 24);
  const dir = join(cacheRoot(), 'cuda-cpu', digest);
  const executable = join(dir, 'run');
  if (existsSync(executable)) return { executable, compiled: false, seconds: (performance.now() - started) / 1000 };

  // Built beside the final folder and renamed into place, so concurrent builds never see half a build.
  const work = `${dir}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  mkdirSync(work, { recursive: true });
  try {
    for (const f of p.files) writeFileSync(join(work, f.path), f.contents);
    writeFileSync(join(work, 'driver.cpp'), driver);
    const args = [...flags, '-I', INCLUDE_DIR, '-I', work, join(work, 'driver.cpp')];
    try {
      await execFileAsync(compiler, [...args, '-o', join(work, 'run')], { maxBuffer: 1 << 24 });
    } catch (e) {
      const x = e as { stderr?: string; message: string };
      throw new CudaCpuBuildError(`${compiler} could not build ${p.source} for the CPU:\n${x.stderr ?? x.message}`);
    }
    try {
      renameSync(work, dir);
    } catch {
      if (!existsSync(executable)) throw new CudaCpuBuildError(`cannot place the build in ${dir}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { executable, compiled: true, seconds: (performance.now() - started) / 1000 };
}
