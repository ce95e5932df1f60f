/**
 * A WGSL inner-loop kernel rendered ahead of time, with everything the runtime needs to bind and
 * size its buffers: what the WGSL target produces and `tttc compile --target ts` embeds in a
 * generated module. Plain JSON.
 */
import type { Layout } from './packing.ts';
import type { KernelSignature } from './signature.ts';

/**
 * The pipeline-overridable constant a subgroup variant of a kernel reads as its lanes per row sum:
 * a power of two, at most 32 and at most the adapter's smallest subgroup.
 */
export const SUBGROUP_WIDTH = 'subgroup_width';

/** One compute shader and the global scratch each of its workgroups needs (0: no scratch buffer bound). */
export interface WgslShader {
  code: string;
  scratchFloats: number;
}

/**
 * A kernel's WGSL: `code` runs on any adapter; `subgroup`, where present, is the same kernel with
 * its row sums split across subgroup lanes, for a device with the `subgroups` feature (its
 * SUBGROUP_WIDTH must be set). Same bindings (scratch as its own `scratchFloats` says) and results.
 */
export interface WgslSource extends WgslShader {
  subgroup?: WgslShader;
}

export interface WgslKernelManifest extends WgslSource {
  signature: KernelSignature;
  /** The compute shader; its buffer offsets are the layout's. */
  code: string;
  layout: Layout;
  /** The device limits the kernel was scheduled for: an adapter must offer at least these. */
  scheduledFor: { workgroupBytes: number; invocations: number };
  /**
   * The same kernel for calls of one token (decode): its mini-batch program has one row, not K,
   * so a token does not pay for a whole mini-batch. Same layout and limits.
   */
  decode?: WgslSource;
}

/**
 * The WGSL kernels of a backward call (targets/wgsl/backward.ts): the forward that also saves its
 * checkpoints, then the backward that reads them. Buffers as `backwardBindings` lists them.
 */
export interface WgslBackwardManifest {
  /** The forward's signature and layout; the backward's ports derive from them (compiler/backward/signature.ts). */
  signature: KernelSignature;
  layout: Layout;
  /** Rows per chunk: with K and the call's start and T, the chunks a call walks (core/walk.ts). */
  rows: number;
  forward: WgslSource;
  backward: WgslSource;
  scheduledFor: { workgroupBytes: number; invocations: number };
}
