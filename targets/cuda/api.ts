/** The names of one generated layer's files and C symbols, all derived from the spec's file stem. */
export interface CudaApi {
  stem: string;
  header: string;
  source: string;
  torchSource: string;
  python: string;
  /** The prefill kernel; `decodeKernel` is its one-row variant, launched for calls of one token. */
  kernel: string;
  decodeKernel: string;
  args: string;
  forward: string;
  scratchBytes: string;
  lastError: string;
  /** Prefix of the header's macros, e.g. `TTTC_TTT_LINEAR`. */
  macro: string;
}

export function apiOf(stem: string): CudaApi {
  const prefix = `tttc_${stem}`;
  return {
    stem,
    header: `${stem}.h`,
    source: `${stem}.cu`,
    torchSource: `${stem}_torch.cpp`,
    python: `${stem}.py`,
    kernel: `${prefix}_kernel`,
    decodeKernel: `${prefix}_decode_kernel`,
    args: `${prefix}_args`,
    forward: `${prefix}_forward`,
    scratchBytes: `${prefix}_scratch_bytes`,
    lastError: `${prefix}_last_error`,
    macro: prefix.toUpperCase(),
  };
}
