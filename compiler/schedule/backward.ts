/**
 * Schedules a backward kernel from the derived backward of one chunk (compiler/backward/derive.ts)
 * with the forward's scheduler (layout.ts): one workgroup per (sequence, head) walks the chunks in
 * reverse, keeping the cotangents of the carried values in homes as the forward keeps the values.
 * Per chunk: the checkpoint (what the chunk started from) and the per-token inputs, the cotangent
 * of `output` among them, are staged; the products of the backward program computed; gradients
 * of per-token inputs written and those of per-chunk inputs summed; the carried cotangents replaced.
 */
import { chunkInputKey, programKey } from '../../core/mangle.ts';
import { type ChunkBackward, gradName } from '../backward/derive.ts';
import { WALK } from '../dualform/derive.ts';
import { ruleTokenRoles } from '../signature.ts';
import { chooseBuffers } from './fusion.ts';
import type { Carried, ScheduledKernel, Stage, TargetLimits } from './kernel.ts';
import { layOut } from './layout.ts';
import { assertKernelRenders } from './rule-support.ts';

const scheduled = new WeakMap<ChunkBackward, Map<string, ScheduledKernel>>();

/** The program input a backward kernel's carried cotangent is: the gradient of `state.S`, `accum.S`, `opt.S`. */
export const backwardHomeKey = (kind: Carried, name: string) => chunkInputKey({ role: kind, name, grad: true });

export function scheduleBackward(backward: ChunkBackward, limits: TargetLimits): ScheduledKernel {
  assertKernelRenders(backward.forward, 'fused backward kernel (WGSL, CUDA)');
  const byLimits = scheduled.get(backward) ?? new Map<string, ScheduledKernel>();
  scheduled.set(backward, byLimits);
  const key = JSON.stringify(limits);
  const known = byLimits.get(key);
  if (known) return known;
  const kernel = scheduleOnce(backward, limits);
  byLimits.set(key, kernel);
  return kernel;
}

/** The chunk-program inputs the forward carries from chunk to chunk: `state.S`, `accum.S`, `opt.S`. */
export function carriedInputs(backward: ChunkBackward): Map<string, { kind: Carried; state: string }> {
  const layer = backward.forward.layer;
  const carried: Carried[] = layer.update.rules.momentum ? ['state', 'accum', 'opt'] : ['state', 'accum'];
  return new Map(
    layer.states.flatMap((s) =>
      carried.map((kind) => [programKey({ role: kind, name: s.name }), { kind, state: s.name }]),
    ),
  );
}

function scheduleOnce(backward: ChunkBackward, limits: TargetLimits): ScheduledKernel {
  const chunk = backward.forward;
  const layer = chunk.layer;
  const p = backward.program;
  const gradOf = (input: string) => p.outputs.find((o) => o.name === gradName(input))!.node;
  const carriedKeys = carriedInputs(backward);
  const carried: Carried[] = layer.update.rules.momentum ? ['state', 'accum', 'opt'] : ['state', 'accum'];
  // Staged once per chunk: the per-token inputs (rows) and the checkpoint (read by many products).
  const staged = new Set([
    ...layer.views.map((v) => programKey({ role: 'view', name: v.name })),
    programKey({ role: 'rate', name: 'lr' }),
    ...ruleTokenRoles(layer).map(([role, name]) => programKey({ role, name })),
    chunkInputKey({ role: 'output', name: 'output', grad: true }),
    ...carriedKeys.keys(),
  ]);
  const buffered = chooseBuffers(p, new Set(p.outputs.map((o) => o.node)), staged, limits.workgroupBytes / 4);
  // A carried cotangent's new value is buffered before any is replaced: each may read the old
  // ones at other elements (through a transpose), which the update would race with.
  for (const key of carriedKeys.keys()) {
    const node = p.nodes[gradOf(key)];
    if (node.op.kind !== 'input') buffered.add(node.id);
  }

  const stages: Stage[] = p.nodes.filter((n) => buffered.has(n.id)).map((n) => ({ kind: 'compute', node: n.id }));
  for (const input of backward.differentiable) {
    if (carriedKeys.has(input)) continue;
    if (input === WALK.commit) {
      // The commit is scale_{K-1} read by the chunk that ends a mini-batch; a constant scale has no gradient.
      if (layer.update.scale.kind === 'position')
        stages.push({
          kind: 'gradient',
          node: gradOf(input),
          input,
          port: programKey({ role: 'scale', name: 'scale' }),
        });
      continue;
    }
    stages.push({ kind: 'gradient', node: gradOf(input), input, port: input });
  }
  for (const s of layer.states) {
    const node = (kind: Carried) => gradOf(programKey({ role: kind, name: s.name }));
    stages.push({
      kind: 'update',
      state: s.name,
      stateNode: node('state'),
      accumNode: node('accum'),
      ...(carried.includes('opt') ? { optNode: node('opt') } : {}),
    });
  }
  return layOut(chunk, p, limits, { buffered, stages, carried, homeKey: backwardHomeKey });
}
