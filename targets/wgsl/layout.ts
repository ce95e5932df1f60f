/**
 * How the WGSL kernel's tensors are packed into few storage buffers (WebGPU allows as few as 8
 * per stage): per-token inputs, per-head weights, state in, output, state out, scratch.
 * The renderer and the runtime both read offsets from here, so they cannot disagree.
 */
import type { CheckedLayer } from '../../compiler/check/checked.ts';
import { size } from '../../compiler/ir/ir.ts';

/** The uniform struct's fields (u32 each), in order: the shader declares them, the runtime fills them. */
export const UNIFORM_FIELDS = ['B', 'H', 'T', 'start', 'BH', 'BHT', 'groups_x', 'pad'] as const;

export interface Region {
  name: string;
  /** Elements per unit: per token (tokens), per head (weights) or per sequence-head (states). */
  width: number;
  /** Offset of the region in units of the buffer's count (B·H·T tokens, H heads, B·H sequences). */
  prefix: number;
}

export interface Layout {
  tokens: Region[];
  /** `scale` first (K constants, no count), then params per head. */
  scale: number;
  params: Region[];
  /** States then accumulators, each region per sequence-head. */
  states: Region[];
  accums: Region[];
  outputWidth: number;
}

function regions(items: { name: string; width: number }[], start = 0): Region[] {
  let prefix = start;
  return items.map((i) => {
    const r = { ...i, prefix };
    prefix += i.width;
    return r;
  });
}

export function layoutOf(layer: CheckedLayer, K: number, outputWidth: number): Layout {
  const tokens = regions([
    ...layer.views.map((v) => ({ name: v.name, width: size(v.shape) })),
    ...(layer.update.lr.kind === 'token' ? [{ name: 'lr', width: 1 }] : []),
  ]);
  const stateItems = layer.states.map((s) => ({ name: s.name, width: size(s.shape) }));
  const states = regions(stateItems);
  const total = stateItems.reduce((a, s) => a + s.width, 0);
  return {
    tokens,
    scale: layer.update.scale.kind === 'position' ? K : 0,
    params: regions(layer.params.map((p) => ({ name: p.name, width: size(p.shape) }))),
    states,
    accums: regions(stateItems, total),
    outputWidth,
  };
}

/** Floats per sequence-head of the state buffers (states and accumulators). */
export const stateFloats = (l: Layout) => l.accums.reduce((a, r) => a + r.width, 0) * 2;
export const tokenFloats = (l: Layout) => l.tokens.reduce((a, r) => a + r.width, 0);
export const paramFloats = (l: Layout) => l.params.reduce((a, r) => a + r.width, 0);
