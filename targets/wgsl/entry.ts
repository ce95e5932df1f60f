/**
 * What every WGSL kernel module ends with: its workgroup storage, the helpers its body calls, and
 * the entry point around the printed body. With subgroups, also the directives that must open the
 * module and the check that gives row sums their lanes (see SUBGROUP_PROLOGUE).
 */
import type { Kernel } from '../../compiler/kernel/ir.ts';
import { everyExpr } from '../../compiler/kernel/ir.ts';
import type { KernelFeatures } from '../../compiler/kernel/features.ts';
import type { TargetLimits } from '../../compiler/schedule/kernel.ts';
import { SUBGROUP_WIDTH, type WgslSource } from '../../core/manifest.ts';
import { Lines } from '../clike/lines.ts';
import { WORKGROUP_ARRAY } from '../clike/print.ts';
import { WGSL_ERF } from './dialect.ts';

/** The effective lanes per row sum: the pipeline's subgroup width, or 1 where the check fails. */
const ROW_LANES = 'row_lanes';

/** The lowering's features for the subgroup variant: row sums over `row_lanes` lanes, at most 32. */
export const WGSL_SUBGROUP_FEATURES: KernelFeatures = { runtimeLanes: { width: ROW_LANES, max: 32 } };

/** Whether a lowered kernel exchanges values between lanes (then it needs the subgroup directives). */
export const exchangesLanes = (k: Kernel): boolean => everyExpr(k.body).some((e) => e.kind === 'shuffle-xor');

/**
 * Module-scope lines of a kernel that exchanges lanes. The exchanges sit in loops whose bounds
 * depend on the invocation (lanes of one group always take the same trips), which WGSL's
 * uniformity analysis cannot see, so its subgroup-uniformity check is turned off.
 */
const SUBGROUP_DIRECTIVES = [
  'enable subgroups;',
  'diagnostic(off, subgroup_uniformity);',
  '',
  `// Lanes per row sum, set by the runtime from the adapter's smallest subgroup (a power of two, at most 32).`,
  `override ${SUBGROUP_WIDTH}: u32;`,
  'var<workgroup> lanes_unmapped: atomic<u32>;',
];

/** Workgroup storage the subgroup check's variable takes (WebGPU counts each variable in 16-byte units). */
export const SUBGROUP_WORKGROUP_BYTES = 16;

/** A printed kernel: its lowered IR and its module text. */
export interface PrintedKernel {
  lowered: Kernel;
  code: string;
}

/**
 * A kernel's portable WGSL and, where its row sums can split across subgroup lanes, its subgroup
 * variant. Both share one schedule unless the portable one leaves no room for the subgroup check's
 * workgroup variable; the variant is then scheduled for that much less. A kernel whose lowering
 * with subgroups exchanges no lanes is its portable code, so it is lowered once.
 */
export function wgslVariants<K extends { workgroupFloats: number; scratchFloats: number }>(
  limits: TargetLimits,
  scheduleFor: (limits: TargetLimits) => K,
  print: (kernel: K, features: KernelFeatures) => PrintedKernel,
): { kernel: K; source: WgslSource } {
  const kernel = scheduleFor(limits);
  const first = print(kernel, WGSL_SUBGROUP_FEATURES);
  if (!exchangesLanes(first.lowered))
    return { kernel, source: { code: first.code, scratchFloats: kernel.scratchFloats } };
  const roomy = limits.workgroupBytes - kernel.workgroupFloats * 4 >= SUBGROUP_WORKGROUP_BYTES;
  const subgroupKernel = roomy
    ? kernel
    : scheduleFor({ ...limits, workgroupBytes: limits.workgroupBytes - SUBGROUP_WORKGROUP_BYTES });
  const subgroup = roomy ? first : print(subgroupKernel, WGSL_SUBGROUP_FEATURES);
  return {
    kernel,
    source: {
      code: print(kernel, {}).code,
      scratchFloats: kernel.scratchFloats,
      ...(exchangesLanes(subgroup.lowered)
        ? { subgroup: { code: subgroup.code, scratchFloats: subgroupKernel.scratchFloats } }
        : {}),
    },
  };
}

/**
 * Row sums exchange partial sums with subgroupShuffleXor, which needs invocation tid ^ m in this
 * invocation's subgroup, at that subgroup lane, for every m below the width. WebGPU does not
 * promise how invocations map to subgroups, so the workgroup checks it first (in uniform control
 * flow) and, where it does not hold, sums each row in one lane (`row_lanes` = 1).
 */
const SUBGROUP_PROLOGUE = [
  `var lanes_mapped = subgroup_size >= ${SUBGROUP_WIDTH};`,
  `for (var m: u32 = 1u; m < ${SUBGROUP_WIDTH}; m = m * 2u) {`,
  '  let partner = subgroupShuffleXor(tid, m);',
  '  lanes_mapped = lanes_mapped && partner == (tid ^ m);',
  '}',
  'if (!lanes_mapped) {',
  '  atomicStore(&lanes_unmapped, 1u);',
  '}',
  `let ${ROW_LANES}: u32 = select(${SUBGROUP_WIDTH}, 1u, workgroupUniformLoad(&lanes_unmapped) != 0u);`,
];

/**
 * The module: `header` (comments, then declarations), the kernel's workgroup array and helpers,
 * and `main` running `body` for workgroup (sequence-head) `bh`.
 */
export function wgslModule(header: { comments: string[]; declarations: string[] }, k: Kernel, body: Lines): string {
  const text = body.toString();
  const subgroups = exchangesLanes(k);
  const L = new Lines();
  L.line(...header.comments, '');
  if (subgroups) L.line(...SUBGROUP_DIRECTIVES, '');
  L.line(...header.declarations);
  if (k.workgroupFloats > 0) L.line(`var<workgroup> ${WORKGROUP_ARRAY}: array<f32, ${k.workgroupFloats}>;`);
  if (text.includes('tttc_erf')) L.line('', WGSL_ERF);
  L.line('', `@compute @workgroup_size(${k.invocations})`);
  const builtins = ['@builtin(workgroup_id) wid: vec3<u32>', '@builtin(local_invocation_index) tid: u32'];
  if (subgroups) builtins.push('@builtin(subgroup_size) subgroup_size: u32');
  L.open(`fn main(${builtins.join(', ')})`);
  L.line('let bh: u32 = wid.x + wid.y * u.groups_x;', 'if (bh >= u.BH) {', '  return;', '}');
  if (subgroups) L.line(...SUBGROUP_PROLOGUE);
  L.line(...text.trimEnd().split('\n'));
  L.close();
  return L.toString();
}

/** The WGSL of a rendered kernel (without what else the renderer returned). */
export const sourceOf = (k: WgslSource): WgslSource => ({
  code: k.code,
  scratchFloats: k.scratchFloats,
  ...(k.subgroup ? { subgroup: k.subgroup } : {}),
});
