/**
 * A WGSL inner-loop kernel rendered ahead of time, with everything the runtime needs to bind and
 * size its buffers: what the WGSL target produces and `tttc compile --target ts` embeds in a
 * generated module. Plain JSON.
 */
import type { Layout } from './packing.ts';
import type { KernelSignature } from './signature.ts';

export interface WgslKernelManifest {
  signature: KernelSignature;
  /** The compute shader; its buffer offsets are the layout's. */
  code: string;
  layout: Layout;
  /** Floats of global scratch per workgroup; 0 when the kernel binds no scratch buffer. */
  scratchFloats: number;
  /** The device limits the kernel was scheduled for: an adapter must offer at least these. */
  scheduledFor: { workgroupBytes: number; invocations: number };
  /**
   * The same kernel for calls of one token (decode): its mini-batch program has one row, not K,
   * so a token does not pay for a whole mini-batch. Same layout and limits.
   */
  decode?: { code: string; scratchFloats: number };
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
  forward: { code: string; scratchFloats: number };
  backward: { code: string; scratchFloats: number };
  scheduledFor: { workgroupBytes: number; invocations: number };
}
