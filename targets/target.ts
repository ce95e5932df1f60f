/** What every code-generation target provides to `tttc compile`. */
import type { Compiled } from '../compiler/pipeline.ts';
import type { Io } from '../core/signature.ts';

export interface GeneratedFile {
  /** Path relative to the output folder. */
  path: string;
  contents: string;
}

export interface TargetOptions {
  /** CUDA architecture, e.g. `sm_90`. */
  arch: string;
  /** Matmul operand precision: `f32`, or `bf16` with f32 state and accumulation. */
  dtype: 'f32' | 'bf16';
  /** Global I/O (CUDA): `f32` (absent), or `bf16` views and output (core/signature.ts `withIo`). */
  io?: Io;
}

export interface Target {
  name: string;
  description: string;
  emit(compiled: Compiled, options: TargetOptions): GeneratedFile[] | Promise<GeneratedFile[]>;
}

/** A file-name stem for generated code: the spec's file name without `.ttt`. */
export function stem(compiled: Compiled): string {
  return (compiled.file.split(/[\\/]/).pop() ?? 'layer').replace(/\.ttt$/, '').replace(/[^A-Za-z0-9_]/g, '_');
}
