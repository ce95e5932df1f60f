/** The `__global__` function: one thread block per (sequence, head) runs the shared C-like body. */
import type { ScheduledKernel } from '../../compiler/schedule/kernel.ts';
import type { KernelFeatures } from '../../compiler/kernel/features.ts';
import { lowerKernel } from '../../compiler/kernel/lower.ts';
import type { Kernel } from '../../compiler/kernel/ir.ts';
import type { Dialect } from '../clike/dialect.ts';
import { Lines } from '../clike/lines.ts';
import { type Memory, Printer, SCRATCH_ARRAY, WORKGROUP_ARRAY } from '../clike/print.ts';
import { identifier } from '../../core/mangle.ts';
import { WORKGROUP_BF16 } from './fragments.ts';
import { type KernelSignature, type Port, showPortShape } from '../../core/signature.ts';

/** Threads of a warp, which exchange values by shuffles. */
export const WARP = 32;

/**
 * How CUDA kernels are lowered: warps of 32 lanes; on-chip buffers row-major. XOR swizzles removed
 * the bank conflicts the kernel IR shows (TTT-Linear f32: worst 16-way, 2.06 wavefronts per request)
 * but ptxas then held an address per unrolled read: TTT-Linear went from 80 to 244 registers and
 * from 2 to 1 block per SM on sm_80. Until a GPU weighs conflicts against occupancy, CUDA keeps
 * the strided register tiles (which remove the stride conflicts) and row-major buffers.
 */
export const CUDA_FEATURES: KernelFeatures = { lanes: WARP, rowMajorOnChip: true };

/** The kernel's scalar parameters, before its tensors. */
export const SCALAR_PARAMETERS = ['H', 'T', 'start'] as const;

/**
 * Every port is a kernel parameter of its own; the uniforms are the scalar parameters. A port the
 * tensor list stores as bf16 is widened to f32 where read (exactly) and rounded to nearest even
 * where written; the kernel IR's ports are the signature's, so they are matched by parameter name.
 */
function memoryOf(tensors: readonly Port[]): Memory {
  const bf16 = new Set(tensors.filter((t) => t.bf16).map((t) => identifier(t)));
  return {
    // One block per sequence-head: the grid is B·H blocks.
    uniform: (n) => (n === 'BH' ? 'gridDim.x' : n),
    port: (p, index) => ({ array: identifier(p), index }),
    read: (p, element) => (bf16.has(identifier(p)) ? `__bfloat162float(${element})` : element),
    written: (p, value) => (bf16.has(identifier(p)) ? `__float2bfloat16_rn(${value})` : value),
  };
}

/** A port's element type in global memory. */
export const elementType = (t: Port) => (t.bf16 ? '__nv_bfloat16' : 'float');

/** Parameter declarations, each with its shape as a comment. */
function parameters(kernel: ScheduledKernel, tensors: readonly Port[]): [string, string][] {
  const list: [string, string][] = SCALAR_PARAMETERS.map((p) => [`const unsigned ${p}`, '']);
  for (const t of tensors)
    list.push([
      `${t.io === 'out' ? '' : 'const '}${elementType(t)}* __restrict__ ${identifier(t)}`,
      `${showPortShape(t)}${t.bf16 ? ', bf16' : ''}`,
    ]);
  if (kernel.scratchFloats > 0)
    list.push([`float* __restrict__ ${SCRATCH_ARRAY}`, `[B, H, ${kernel.scratchFloats}]: a slice per block`]);
  return list;
}

const indent = (lines: Lines) =>
  lines
    .toString()
    .trimEnd()
    .split('\n')
    .map((l) => (l ? `  ${l}` : l));

/** Why the kernel has its threads per block: the model's ratings where the scheduler chose them. */
function blockSizeNote(k: ScheduledKernel): string[] {
  const cycles = (x: number) => Math.round(x).toLocaleString('en-US');
  if (k.blockSizes)
    return [
      `// ${k.invocations} threads a block, chosen by the scheduler's model of an SM (compiler/schedule/workgroup-size.ts),`,
      '// in cycles per head and mini-batch with the SM full of heads / with one head alone:',
      ...k.blockSizes.map(
        (r) => `//   ${String(r.invocations).padStart(3)} threads: ${cycles(r.full)} / ${cycles(r.alone)}`,
      ),
      ...((k.tensorCores?.groupTiles ?? 1) > 1
        ? [
            `// (weighed with warps taking one tensor-core tile at a time; this kernel's take up to ${k.tensorCores!.groupTiles})`,
          ]
        : []),
    ];
  if (k.chunk.rows === 1)
    return [`// ${k.invocations} threads a block: one token a launch, whose latency is its time, takes the most.`];
  return [`// ${k.invocations} threads a block, as the threads option fixes them.`];
}

export function renderKernel(
  L: Lines,
  name: string,
  kernel: ScheduledKernel,
  signature: KernelSignature,
  tensors: readonly Port[],
  dialect: Dialect,
  /** The blocks per SM its launch bounds ask ptxas to allow (arch.ts `minBlocksPerSm`). */
  minBlocks: number,
  sourceLines: readonly string[],
  /** The kernel IR to print, when it is not the forward's (the checkpointing forward, the backward). */
  lowered: Kernel = lowerKernel(kernel, signature, sourceLines, CUDA_FEATURES),
): void {
  L.line(...blockSizeNote(kernel));
  // With a thread count alone (`__launch_bounds__(256)`) ptxas capped TTT-Linear at 40 registers and spilled.
  L.line(`__global__ void __launch_bounds__(${kernel.invocations}, ${minBlocks}) ${name}(`);
  const params = parameters(kernel, tensors).map(([decl, comment], i, all) => [
    `${decl}${i === all.length - 1 ? ') {' : ','}`,
    comment,
  ]);
  const width = Math.max(...params.map(([decl]) => decl.length));
  for (const [decl, comment] of params) L.line(`    ${comment ? `${decl.padEnd(width)}  // ${comment}` : decl}`);
  const body = new Lines();
  if (kernel.workgroupFloats > 0)
    body.line(
      `TTTC_DYNAMIC_SHARED(float, ${WORKGROUP_ARRAY});  // ${kernel.workgroupFloats} floats, placed by the scheduler`,
    );
  const bf16Slots = [...(kernel.prefetch?.values() ?? [])].some((s) => s.elementBytes === 2);
  const bf16Staging = kernel.tensorCores?.operands === 'bf16';
  if (bf16Staging || bf16Slots) {
    const what = [
      ...(bf16Staging ? ['tensor-core operands, staged as bf16'] : []),
      ...(bf16Slots ? ['bf16 rows read ahead'] : []),
    ];
    body.line(
      `__nv_bfloat16* const ${WORKGROUP_BF16} = reinterpret_cast<__nv_bfloat16*>(${WORKGROUP_ARRAY});  // ${what.join('; ')}`,
    );
  }
  body.line('// One block per (sequence, head); the grid is B * H blocks along x, which allows 2^31 - 1.');
  body.line('const size_t bh = blockIdx.x;', 'const unsigned tid = threadIdx.x;');
  new Printer(dialect, memoryOf(tensors)).kernel(lowered, body);
  L.line(...indent(body), '}');
}
