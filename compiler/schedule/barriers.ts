/**
 * Barrier placement: a stage needs a barrier before it only when it reads memory written since the
 * last barrier, or writes memory read or written since then (memory is shared between buffers
 * whose lives do not overlap, so hazards are tracked on address ranges, not on nodes).
 */
import { programKey } from '../../core/mangle.ts';
import type { Program } from '../ir/ir.ts';
import { size } from '../ir/ir.ts';
import type { Carried, Home, Homes, Placement, Stage } from './kernel.ts';
import { stageReads } from './reads.ts';

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
  homes: ReadonlyMap<string, Homes>;
  stateSize: ReadonlyMap<string, number>;
  /** The carried value each home input of the program (by its key) is. */
  homeInputs: ReadonlyMap<string, { kind: Carried; name: string }>;
}

function rangeOf(p: Placement | Home, elements: number, name: string): Range {
  if (p.space === 'global') return { space: `global:${name}`, from: 0, to: elements };
  return { space: p.space, from: p.offset, to: p.offset + elements };
}

/** What a stage reads (through every inlined node) and writes. */
export function accesses(m: MemoryMap, s: Stage): { reads: Range[]; writes: Range[] } {
  const reads: Range[] = [];
  for (const id of stageReads(s, m.program, (x) => m.buffers.has(x))) {
    const n = m.program.nodes[id];
    const placed = m.buffers.get(id);
    const key = n.op.kind === 'input' ? n.op.name : '';
    const home = m.homeInputs.get(key);
    if (placed) reads.push(rangeOf(placed, size(n.shape), ''));
    else if (home) reads.push(rangeOf(m.homes.get(home.name)![home.kind]!, m.stateSize.get(home.name)!, key));
  }
  if (s.kind === 'compute')
    return { reads, writes: [rangeOf(m.buffers.get(s.node)!, size(m.program.nodes[s.node].shape), '')] };
  if (s.kind === 'output') return { reads, writes: [] };
  // Two gradients of one port (a row's scale and the commit's) are added to the same elements.
  if (s.kind === 'gradient') return { reads, writes: [{ space: `gradient:${s.port}`, from: 0, to: 1 }] };
  const h = m.homes.get(s.state)!;
  const n = m.stateSize.get(s.state)!;
  const key = (role: Carried) => programKey({ role, name: s.state });
  const writes = [rangeOf(h.state, n, key('state')), rangeOf(h.accum, n, key('accum'))];
  if (h.opt) writes.push(rangeOf(h.opt, n, key('opt')));
  return { reads, writes };
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
