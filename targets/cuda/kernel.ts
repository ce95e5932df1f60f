/** The `__global__` function: one thread block per (sequence, head) runs the shared C-like body. */
import type { ScheduledKernel } from '../../compiler/schedule/kernel.ts';
import type { Dialect } from '../clike/dialect.ts';
import { type Globals, KernelBody } from '../clike/kernel.ts';
import { Lines } from '../clike/lines.ts';
import { type KernelTensor, showTensorShape } from './tensors.ts';

/** The kernel's scalar parameters, before its tensors. */
export const SCALAR_PARAMETERS = ['H', 'T', 'start'] as const;

function globalsOf(tensors: readonly KernelTensor[]): Globals {
  const field = (role: KernelTensor['role'], name: string) => {
    const t = tensors.find((x) => x.role === role && x.name === name);
    if (!t) throw new Error(`the CUDA kernel has no ${role} tensor ${name}`);
    return t.field;
  };
  return {
    uniform: (n) => n,
    token: (name, flat) => `${field(name === 'lr' ? 'lr' : 'view', name)}[${flat}]`,
    scale: (flat) => `${field('scale', 'scale')}[${flat}]`,
    param: (name, flat) => `${field('param', name)}[${flat}]`,
    stateIn: (name, flat) => `${field('state', name)}[${flat}]`,
    accumIn: (name, flat) => `${field('accum', name)}[${flat}]`,
    stateOut: (name, flat) => `${field('state_out', name)}[${flat}]`,
    accumOut: (name, flat) => `${field('accum_out', name)}[${flat}]`,
    output: (flat) => `${field('output', 'output')}[${flat}]`,
    scratch: (flat) => `scratch[${flat}]`,
    workgroup: (flat) => `smem[${flat}]`,
  };
}

/** Parameter declarations, each with its shape as a comment. */
function parameters(kernel: ScheduledKernel, tensors: readonly KernelTensor[]): [string, string][] {
  const list: [string, string][] = SCALAR_PARAMETERS.map((p) => [`const unsigned ${p}`, '']);
  for (const t of tensors)
    list.push([`${t.written ? 'float' : 'const float'}* __restrict__ ${t.field}`, showTensorShape(t)]);
  if (kernel.scratchFloats > 0)
    list.push(['float* __restrict__ scratch', `[B, H, ${kernel.scratchFloats}]: a slice per block`]);
  return list;
}

const indent = (lines: Lines) =>
  lines
    .toString()
    .trimEnd()
    .split('\n')
    .map((l) => (l ? `  ${l}` : l));

export function renderKernel(
  L: Lines,
  name: string,
  kernel: ScheduledKernel,
  tensors: readonly KernelTensor[],
  dialect: Dialect,
  sourceLines: readonly string[],
): void {
  // One block per SM is enough (shared memory, not registers, limits the blocks per SM): it lets
  // ptxas use up to 255 registers (with `__launch_bounds__(256)` alone it capped TTT-Linear at 40 and spilled).
  L.line(`__global__ void __launch_bounds__(${kernel.invocations}, 1) ${name}(`);
  const params = parameters(kernel, tensors).map(([decl, comment], i, all) => [
    `${decl}${i === all.length - 1 ? ') {' : ','}`,
    comment,
  ]);
  const width = Math.max(...params.map(([decl]) => decl.length));
  for (const [decl, comment] of params) L.line(`    ${comment ? `${decl.padEnd(width)}  // ${comment}` : decl}`);
  const body = new Lines();
  if (kernel.workgroupFloats > 0)
    body.line(`TTTC_DYNAMIC_SHARED(float, smem);  // ${kernel.workgroupFloats} floats, placed by the scheduler`);
  body.line('// One block per (sequence, head); the grid is B * H blocks along x, which allows 2^31 - 1.');
  body.line('const size_t bh = blockIdx.x;', 'const unsigned tid = threadIdx.x;');
  new KernelBody(kernel, dialect, globalsOf(tensors), sourceLines).emit(body);
  L.line(...indent(body), '}');
}
