/** The `run` convention's tensors packed into a WGSL kernel's buffers, as core/packing.ts lays them out. */
import { runKey } from '../../core/mangle.ts';
import { type Layout, paramFloats, type Region, stateFloats, tokenFloats } from '../../core/packing.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { InnerLoopInputs } from '../inner-loop.ts';

/** Views, the rate and a rule's per-token inputs, [B·H·T] per unit of width each; `extra` floats per token after them. */
export function packTokens(layout: Layout, inp: InnerLoopInputs, extra = 0): Float32Array<ArrayBuffer> {
  const BHT = inp.B * inp.H * inp.T;
  const tokens = new Float32Array(Math.max(1, BHT * (tokenFloats(layout) + extra)));
  const tokenData = (r: Region): Float64Array => {
    if (r.role === 'view') return inp.views.get(r.name)!.data;
    if (r.role === 'rate') return inp.lr!.data;
    const t = inp.tokens?.get(runKey(r));
    if (!t) throw new Error(`the kernel reads the per-token input '${runKey(r)}', which the inputs lack`);
    return t.data;
  };
  for (const r of layout.tokens) tokens.set(tokenData(r), BHT * r.prefix);
  return tokens;
}

/** The scale, then each param [H, ...]. */
export function packWeights(layout: Layout, inp: InnerLoopInputs): Float32Array<ArrayBuffer> {
  const weights = new Float32Array(Math.max(1, layout.scale + inp.H * paramFloats(layout)));
  if (layout.scale) weights.set(inp.scale!.data, 0);
  for (const r of layout.params) weights.set(inp.params.get(r.name)!.data, layout.scale + inp.H * r.prefix);
  return weights;
}

/** The carried tensors of a call (or their cotangents or gradients), [B, H, ...] each, by state name. */
export interface Carried {
  states: ReadonlyMap<string, Tensor>;
  accums: ReadonlyMap<string, Tensor>;
  opts?: ReadonlyMap<string, Tensor>;
}

/** States, accumulators and optimizer states, [B·H] per unit of width each. */
export function packStates(layout: Layout, BH: number, carried: Carried): Float32Array<ArrayBuffer> {
  const stateIn = new Float32Array(BH * stateFloats(layout));
  for (const r of layout.states) stateIn.set(carried.states.get(r.name)!.data, BH * r.prefix);
  for (const r of layout.accums) stateIn.set(carried.accums.get(r.name)!.data, BH * r.prefix);
  for (const r of layout.opts) {
    const t = carried.opts?.get(r.name);
    if (!t) throw new Error(`the kernel carries the optimizer state '${runKey(r)}', which the inputs lack`);
    stateIn.set(t.data, BH * r.prefix);
  }
  return stateIn;
}
