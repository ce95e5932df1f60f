/**
 * How a WGSL kernel's ports are packed into few storage buffers (WebGPU allows as few as 8 per
 * stage): per-token inputs, per-head weights, state in, output, state out, scratch. The renderer
 * and the runtime both read offsets from here, so they cannot disagree.
 */
import { size } from './shape.ts';
import type { KernelSignature, Port, Role } from './signature.ts';

/** The uniform struct's fields (u32 each), in order: the shader declares them, the runtime fills them. */
export const UNIFORM_FIELDS = ['B', 'H', 'T', 'start', 'BH', 'BHT', 'groups_x', 'pad'] as const;

export interface Region {
  role: Role;
  name: string;
  /** Elements per unit: per token (tokens), per head (weights) or per sequence-head (states). */
  width: number;
  /** Offset of the region in units of the buffer's count (B·H·T tokens, H heads, B·H sequences). */
  prefix: number;
}

export interface Layout {
  /** Views, the rate and a rule's per-token inputs, in the signature's order. */
  tokens: Region[];
  /** `scale` first (K constants, no count), then params per head. */
  scale: number;
  params: Region[];
  /** States, accumulators, then a rule's optimizer states, each region per sequence-head. */
  states: Region[];
  accums: Region[];
  opts: Region[];
  outputWidth: number;
}

function regions(ports: readonly Port[], start = 0): Region[] {
  let prefix = start;
  return ports.map((p) => {
    const r = { role: p.role, name: p.name, width: size(p.shape), prefix };
    prefix += r.width;
    return r;
  });
}

/** The first unit after a run of regions. */
const end = (rs: readonly Region[]) => rs.reduce((a, r) => Math.max(a, r.prefix + r.width), 0);

export function layoutOf(sig: KernelSignature): Layout {
  const inputs = (...roles: Role[]) => sig.inputs.filter((p) => roles.includes(p.role));
  const states = regions(inputs('state'));
  const accums = regions(inputs('accum'), end(states));
  return {
    tokens: regions(inputs('view', 'rate', 'state-rate', 'decay', 'momentum')),
    scale: inputs('scale').reduce((a, p) => a + size(p.shape), 0),
    params: regions(inputs('param')),
    states,
    accums,
    opts: regions(inputs('opt'), end(accums)),
    outputWidth: size(sig.outputs.find((p) => p.role === 'output')!.shape),
  };
}

/** The region of a port (matched by role and name, never by name alone). */
export function regionOf(list: readonly Region[], port: Pick<Port, 'role' | 'name'>): Region {
  const r = list.find((x) => x.role === port.role && x.name === port.name);
  if (!r) throw new Error(`no buffer region for the ${port.role} ${port.name}`);
  return r;
}

/** Floats per sequence-head of the state buffers (states, accumulators, optimizer states). */
export const stateFloats = (l: Layout) => [...l.states, ...l.accums, ...l.opts].reduce((a, r) => a + r.width, 0);
export const tokenFloats = (l: Layout) => l.tokens.reduce((a, r) => a + r.width, 0);
export const paramFloats = (l: Layout) => l.params.reduce((a, r) => a + r.width, 0);
