/**
 * What a stage's code reads: from the stage's roots through every inlined (unbuffered) node; a
 * buffered node is read from its buffer, so a path ends there. The one traversal that buffer
 * lifetimes and barrier placement share; iterative, so a deep spec cannot overflow the stack.
 */
import type { Program } from '../ir/ir.ts';
import type { Stage } from './kernel.ts';

/** The nodes whose values a stage's code evaluates directly: a compute stage's operands, what the others write. */
export function stageRoots(s: Stage, p: Program): readonly number[] {
  if (s.kind === 'compute') return p.nodes[s.node].args;
  if (s.kind === 'output' || s.kind === 'gradient') return [s.node];
  return [s.stateNode, s.accumNode, ...(s.optNode === undefined ? [] : [s.optNode])];
}

/** Every node the stage reads, once each: buffered nodes, and the inlined nodes on the way to them. */
export function stageReads(s: Stage, p: Program, isBuffered: (id: number) => boolean): number[] {
  const seen = new Set<number>();
  const pending = [...stageRoots(s, p)];
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (!isBuffered(id)) pending.push(...p.nodes[id].args);
  }
  return [...seen];
}
