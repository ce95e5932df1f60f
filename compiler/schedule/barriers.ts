/**
 * Barrier placement: a stage needs a barrier before it only when it reads memory written since the
 * last barrier, or writes memory read or written since then (memory is shared between buffers
 * whose lives do not overlap, so hazards are tracked on address ranges, not on nodes).
 */
import type { Program } from '../ir/ir.ts';
import { size } from '../ir/ir.ts';
import type { Home, Placement, Stage } from './kernel.ts';

/** An address range in one memory space; `global:NAME` spaces are the state tensors kept in place. */
export interface Range {
  space: string;
  from: number;
  to: number;
}

export type Barrier = 'none' | 'workgroup' | 'storage';

const overlaps = (a: Range, b: Range) => a.space === b.space && a.from < b.to && b.from < a.to;
const hits = (xs: readonly Range[], ys: readonly Range[]) => xs.some((x) => ys.some((y) => overlaps(x, y)));

export interface MemoryMap {
  program: Program;
  buffers: ReadonlyMap<number, Placement>;
  homes: ReadonlyMap<string, { state: Home; accum: Home }>;
  stateSize: ReadonlyMap<string, number>;
}

function rangeOf(p: Placement | Home, elements: number, name: string): Range {
  if (p.space === 'global') return { space: `global:${name}`, from: 0, to: elements };
  return { space: p.space, from: p.offset, to: p.offset + elements };
}

/** What a stage reads (through every inlined node) and writes. */
export function accesses(m: MemoryMap, s: Stage): { reads: Range[]; writes: Range[] } {
  const reads: Range[] = [];
  const seen = new Set<number>();
  // An explicit stack: chains of inlined nodes can be thousands deep.
  const visit = (...roots: number[]): void => {
    const stack = [...roots];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const n = m.program.nodes[id];
      const placed = m.buffers.get(id);
      if (placed) {
        reads.push(rangeOf(placed, size(n.shape), ''));
        continue;
      }
      if (n.op.kind === 'input') {
        const [kind, name] = n.op.name.split('.');
        if (kind === 'state' || kind === 'accum')
          reads.push(rangeOf(m.homes.get(name)![kind], m.stateSize.get(name)!, `${kind}.${name}`));
      }
      stack.push(...n.args);
    }
  };
  if (s.kind === 'compute') {
    visit(...m.program.nodes[s.node].args);
    return { reads, writes: [rangeOf(m.buffers.get(s.node)!, size(m.program.nodes[s.node].shape), '')] };
  }
  if (s.kind === 'output') {
    visit(s.node);
    return { reads, writes: [] };
  }
  visit(s.stateNode);
  visit(s.accumNode);
  const h = m.homes.get(s.state)!;
  const n = m.stateSize.get(s.state)!;
  return { reads, writes: [rangeOf(h.state, n, `state.${s.state}`), rangeOf(h.accum, n, `accum.${s.state}`)] };
}

/** The barrier after each stage; the last always has one, since the next chunk reads the new state. */
export function placeBarriers(m: MemoryMap, stages: readonly Stage[]): Barrier[] {
  const access = stages.map((s) => accesses(m, s));
  const barriers: Barrier[] = stages.map(() => 'none');
  let reads: Range[] = [];
  let writes: Range[] = [];
  const close = (i: number) => {
    barriers[i] = [...reads, ...writes].some((r) => r.space !== 'workgroup') ? 'storage' : 'workgroup';
    reads = [];
    writes = [];
  };
  access.forEach((a, i) => {
    if (i > 0 && (hits(a.reads, writes) || hits(a.writes, writes) || hits(a.writes, reads))) close(i - 1);
    reads.push(...a.reads);
    writes.push(...a.writes);
  });
  close(stages.length - 1);
  return barriers;
}
