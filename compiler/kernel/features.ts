/** What the target's invocations can do beyond the C-like basics. */
export interface KernelFeatures {
  /** Invocations in a group that exchange values by lane shuffles (a CUDA warp: 32); absent: none. */
  lanes?: number;
  /**
   * Keep every on-chip buffer row-major rather than XOR-swizzled against bank conflicts: a swizzle
   * read inside an unrolled loop costs an address register per iteration (see CUDA_FEATURES).
   */
  rowMajorOnChip?: boolean;
  /**
   * Lane exchange in groups whose width is known only at run time (WebGPU subgroups): `width`
   * names it, a power of two at most `max`; the target binds it, as 1 where its lanes cannot
   * exchange (every row is then summed by one lane). Row sums split across a group's lanes.
   */
  runtimeLanes?: { width: string; max: number };
}
