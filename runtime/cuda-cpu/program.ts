/**
 * A generated CUDA layer as the CPU runtime needs it: the source files `tttc compile --target cuda`
 * writes, and the launcher's C interface (its functions and the fields of its argument struct,
 * each tied to a tensor of the `run` convention). Plain JSON; nothing here reads the source.
 */
import type { Axis, KernelSignature, Role } from '../../core/signature.ts';

/** Which tensor of the `run` convention a field of the argument struct holds. */
export type CudaTensorRole =
  | 'view'
  | 'lr'
  | 'scale'
  | 'param'
  | 'state'
  | 'accum'
  | 'output'
  | 'state_out'
  | 'accum_out'
  /** A rule's per-token input (`lr.S`, `decay`, `momentum`), named by its run key. */
  | 'token'
  /** A rule's optimizer state, named by its state, before and after the call. */
  | 'opt'
  | 'opt_out'
  /** What each chunk started from, saved by a forward for its backward. */
  | 'checkpoint'
  /** A backward's cotangent of the call's output `port`, and its gradient of the call's input `port`. */
  | 'cotangent'
  | 'gradient';

export interface CudaTensorField {
  role: CudaTensorRole;
  /** The view, param or state name; `lr`, `scale` or `output` for those; a token input's run key. */
  name: string;
  /** The field of the argument struct. */
  field: string;
  /** The call-dependent leading axes, then the fixed shape. */
  lead: readonly Axis[];
  shape: readonly number[];
  written: boolean;
  /** Stored as bf16 (io bf16): passed as bf16 bits, rounded to nearest even; absent: float32. */
  bf16?: true;
  /** For a cotangent or gradient: the call's tensor it belongs to. */
  of?: { role: Role; name: string };
}

export interface CudaCpuProgram {
  signature: KernelSignature;
  /** The emulated device, e.g. `sm_90`: its shared-memory limits are the launcher's to check. */
  arch: string;
  files: readonly { path: string; contents: string }[];
  /** The file with the kernel and launcher (compiled as C++) and the header declaring the API. */
  source: string;
  header: string;
  /** The argument struct's type and its scalar fields. */
  argsType: string;
  sizes: { B: string; H: string; T: string; start: string };
  tensors: readonly CudaTensorField[];
  /** Workspace: the struct's pointer and size fields and the function giving its size for (B, H). */
  scratch: { pointer: string; bytes: string; size: string };
  /** `int forward(const args*, cudaStream_t)` and `const char* last_error(void)`. */
  forward: string;
  lastError: string;
  /** Rows per chunk of the mini-batch program, when a tensor has a chunk axis: with K, the chunks of a call. */
  rows?: number;
}
