/** The compiler API's options, checked and given their defaults; the CLI's flags map onto these. */
import type { FormRequest } from '../compiler/dualform/forms.ts';
import type { Io } from '../core/signature.ts';
import { TARGET_NAMES } from '../targets/index.ts';
import {
  MATMUL_PRECISION_CHOICES,
  MATMUL_PRECISIONS,
  type MatmulPrecision,
  THREAD_CHOICES,
} from '../targets/target.ts';

export interface CompileOptions {
  /** The spec's file name, used in diagnostics and generated code (default `layer.ttt`). */
  file?: string;
  /** Dim and mini-batch overrides, as `-D NAME=VALUE` gives them. */
  defines?: Record<string, number> | ReadonlyMap<string, number>;
  /** Code-generation targets: `ir`, `wgsl`, `cuda`, `ts` (default `['ir']`). */
  targets?: readonly string[];
  /** CUDA architecture, e.g. `sm_80` or `sm_90` (default `sm_90`). */
  arch?: string;
  /**
   * Matmul operands (CUDA; f32 state and accumulation): `f32` (default), `bf16` (rounded, on
   * tensor cores where a product fits), or `tf32x3` (tensor cores at f32's accuracy: each operand
   * split into two tf32 parts, three mma per step).
   */
  dtype?: MatmulPrecision;
  /**
   * Global I/O: `f32` (default), or `bf16` (CUDA): views and the output are stored as bf16, widened
   * to f32 on load and rounded to nearest even on store; states, params and arithmetic stay f32.
   */
  io?: Io;
  /**
   * Threads per block of the CUDA kernels that walk chunks (prefill, training): 32, 64, 128 or
   * 256; default: the scheduler chooses from the sizes.
   */
  threads?: number;
  /** Per-state form: `auto` (default), `dual` or `primal`. */
  form?: FormRequest;
}

/** The CUDA architecture a compile targets when none is given. */
export const DEFAULT_ARCH = 'sm_90';

/** A bad option (not a bad spec): an unknown target, a malformed arch, a non-integer define. */
export class OptionError extends Error {
  override name = 'OptionError';
}

export interface ResolvedOptions {
  file: string;
  defines: Map<string, number>;
  targets: string[];
  arch: string;
  dtype: MatmulPrecision;
  io: Io;
  threads?: number;
  form: FormRequest;
}

export function resolveOptions(options: CompileOptions): ResolvedOptions {
  const targets = [...new Set(options.targets ?? ['ir'])];
  if (targets.length === 0) throw new OptionError(`no targets given; targets: ${TARGET_NAMES.join(', ')}`);
  for (const t of targets)
    if (!TARGET_NAMES.includes(t)) throw new OptionError(`unknown target '${t}'; targets: ${TARGET_NAMES.join(', ')}`);
  const arch = options.arch ?? DEFAULT_ARCH;
  if (!/^sm_\d+a?$/.test(arch)) throw new OptionError(`arch must look like sm_80 or sm_90, got '${arch}'`);
  const dtype = options.dtype ?? 'f32';
  if (!MATMUL_PRECISIONS.includes(dtype))
    throw new OptionError(`dtype must be ${MATMUL_PRECISION_CHOICES}, got '${dtype}'`);
  const io = options.io ?? 'f32';
  if (io !== 'f32' && io !== 'bf16') throw new OptionError(`io must be f32 or bf16, got '${io}'`);
  // WGSL kernels read and write f32 (WGSL has no bf16 type); refused rather than silently ignored.
  const f32Only = targets.filter((t) => t === 'wgsl' || t === 'ts');
  // The matmul precision picks the CUDA kernels' products; with no CUDA target it would pick nothing.
  if (dtype !== 'f32' && !targets.includes('cuda'))
    throw new OptionError(
      `dtype ${dtype} picks the cuda target's matmul operands; the targets ${targets.join(', ')} compute in f32: add cuda, or leave dtype out`,
    );
  if (io === 'bf16' && f32Only.length)
    throw new OptionError(
      `io bf16 is for the cuda target; WGSL kernels (target ${f32Only.join(', ')}) read and write f32: compile them without it`,
    );
  const threads = options.threads;
  if (threads !== undefined) {
    if (!THREAD_CHOICES.includes(threads))
      throw new OptionError(`threads must be one of ${THREAD_CHOICES.join(', ')}, got '${threads}'`);
    // Like dtype: the block size is the CUDA kernels'; a WGSL workgroup keeps the device's size.
    if (!targets.includes('cuda'))
      throw new OptionError(
        `threads sets the cuda target's threads per block; the targets ${targets.join(', ')} have none: add cuda, or leave threads out`,
      );
  }
  const form = options.form ?? 'auto';
  if (!['auto', 'dual', 'primal'].includes(form))
    throw new OptionError(`form must be auto, dual or primal, got '${form}'`);
  const defines = new Map(options.defines instanceof Map ? options.defines : Object.entries(options.defines ?? {}));
  for (const [name, value] of defines)
    if (!Number.isSafeInteger(value)) throw new OptionError(`define ${name} must be an integer, got ${value}`);
  return { file: options.file ?? 'layer.ttt', defines, targets, arch, dtype, io, form, ...(threads && { threads }) };
}
