/** What every code-generation target provides to `tttc compile`. */
import type { Compiled } from '../compiler/pipeline.ts';
import type { Io } from '../core/signature.ts';

export interface GeneratedFile {
  /** Path relative to the output folder. */
  path: string;
  contents: string;
}

/**
 * What matmul operands a kernel computes with: `f32` (FFMA), `bf16` (every operand rounded to bf16,
 * the products that fit on bf16 tensor cores), or `tf32x3` (f32 operands; the products that fit
 * on tf32 tensor cores, each operand split into two tf32 parts and summed from three mma, which
 * keeps f32's accuracy within a small factor; the rest on FFMA). State and accumulation are f32.
 */
export type MatmulPrecision = 'f32' | 'bf16' | 'tf32x3';
export const MATMUL_PRECISIONS: readonly MatmulPrecision[] = ['f32', 'bf16', 'tf32x3'];
/** The choices as an error message lists them: `f32, bf16 or tf32x3`. */
export const MATMUL_PRECISION_CHOICES = `${MATMUL_PRECISIONS.slice(0, -1).join(', ')} or ${MATMUL_PRECISIONS.at(-1)}`;

export interface TargetOptions {
  /** CUDA architecture, e.g. `sm_90`. */
  arch: string;
  /** Matmul operand precision (MatmulPrecision; CUDA). */
  dtype: MatmulPrecision;
  /** Global I/O (CUDA): `f32` (absent), or `bf16` views and output (core/signature.ts `withIo`). */
  io?: Io;
  /**
   * Threads per block of the CUDA kernels that walk chunks of several tokens (prefill, and the
   * training kernels), one of THREAD_CHOICES; absent: the scheduler chooses from the sizes
   * (compiler/schedule/workgroup-size.ts). The decode kernel keeps the most.
   */
  threads?: number;
}

/**
 * The threads per block `threads` may fix: powers of two from a warp (warps split a block's rows
 * and tensor-core tiles evenly) up to the most the scheduler weighs itself (above 256 the launch
 * bounds would leave a thread too few registers).
 */
export const THREAD_CHOICES: readonly number[] = [32, 64, 128, 256];

export interface Target {
  name: string;
  description: string;
  emit(compiled: Compiled, options: TargetOptions): GeneratedFile[] | Promise<GeneratedFile[]>;
}

/** A file-name stem for generated code: the spec's file name without `.ttt`. */
export function stem(compiled: Compiled): string {
  return (compiled.file.split(/[\\/]/).pop() ?? 'layer').replace(/\.ttt$/, '').replace(/[^A-Za-z0-9_]/g, '_');
}
