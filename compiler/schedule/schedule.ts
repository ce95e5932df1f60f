/** From the derived mini-batch program and a target's limits to a scheduled kernel. */
import { programKey } from '../../core/mangle.ts';
import type { ChunkProgram } from '../dualform/derive.ts';
import { assertKernelRenders } from './rule-support.ts';
import { chooseBuffers } from './fusion.ts';
import { ruleTokenRoles } from '../signature.ts';
import type { Carried, ScheduledKernel, Stage, TargetLimits } from './kernel.ts';
import { layOut } from './layout.ts';
import type { HomeKey } from './traffic.ts';

/** Scheduled kernels by program and limits: every target of one compile schedules a variant once. */
const scheduled = new WeakMap<ChunkProgram, Map<string, ScheduledKernel>>();

export function schedule(chunk: ChunkProgram, limits: TargetLimits): ScheduledKernel {
  assertKernelRenders(chunk, 'fused-kernel (WGSL, CUDA, TS)');
  const byLimits = scheduled.get(chunk) ?? new Map<string, ScheduledKernel>();
  scheduled.set(chunk, byLimits);
  const key = JSON.stringify(limits);
  const known = byLimits.get(key);
  if (known) return known;
  const kernel = scheduleOnce(chunk, limits);
  byLimits.set(key, kernel);
  return kernel;
}

/** The program input a forward kernel's carried value is: `state.S`, `accum.S`, `opt.S`. */
export const homeKey = (kind: Carried, name: string): HomeKey => programKey({ role: kind, name });

function scheduleOnce(chunk: ChunkProgram, limits: TargetLimits): ScheduledKernel {
  const p = chunk.program;
  const out = (name: string) => p.outputs.find((o) => o.name === name)!.node;
  const outputNode = out(programKey({ role: 'output', name: 'output' }));
  const carried: Carried[] = chunk.layer.update.rules.momentum ? ['state', 'accum', 'opt'] : ['state', 'accum'];
  const updates = chunk.layer.states.map((s) => ({
    state: s.name,
    stateNode: out(programKey({ role: 'state', name: s.name })),
    accumNode: out(programKey({ role: 'accum', name: s.name })),
    ...(carried.includes('opt') ? { optNode: out(programKey({ role: 'opt', name: s.name })) } : {}),
  }));
  const perToken = new Set([
    ...chunk.layer.views.map((v) => programKey({ role: 'view', name: v.name })),
    programKey({ role: 'rate', name: 'lr' }),
    ...ruleTokenRoles(chunk.layer).map(([role, name]) => programKey({ role, name })),
  ]);
  const buffered = chooseBuffers(p, new Set(p.outputs.map((o) => o.node)), perToken, limits.workgroupBytes / 4);

  // Stages: buffered nodes in program order (already topological), then the writes.
  const stages: Stage[] = [
    ...p.nodes.filter((n) => buffered.has(n.id)).map((n) => ({ kind: 'compute' as const, node: n.id })),
  ];
  stages.push({ kind: 'output', node: outputNode }, ...updates.map((u) => ({ kind: 'update' as const, ...u })));

  return layOut(chunk, p, limits, { buffered, stages, carried, homeKey });
}
